// The agent's clients, one session each (client-session.ts), and their liveness: a client whose connection closed
// has its running and queued jobs cancelled after a short grace (--client-grace-ms), a client silent although
// connected after --client-timeout-ms; final replies nobody collected are discarded after their time to live.
//
// A closed connection does not say whose it was (ZeroMQ hides routing), so on each close the clients with jobs are
// probed: a send to a client whose connection is gone fails at once (EHOSTUNREACH). Any message from the client
// ends the grace (it reconnected: a network blip).

import type { Frame } from '../protocol/frames';
import { ClientSession, SendFrames } from './client-session';

export interface ClientRegistryOptions {
  /** A connected client silent this long has its jobs cancelled. */
  timeoutMs: number;
  /** A client whose connection is gone has its jobs cancelled after this long. */
  graceMs: number;
  /** How long a final reply waits for its client. */
  ttlMs: number;
  send(identity: Buffer, frames: readonly Frame[]): Promise<string | null>;
  /** A message the client ignores, to find out whether it is still connected. */
  probe(): readonly Frame[];
  /** Cancels the client's jobs (except those started to outlive it); returns how many. */
  cancelJobs(client: string): number;
  /** The client has no session left: drop what else the agent remembers of it. */
  forget(client: string): void;
  log: (line: string) => void;
}

const REPROBE_AFTER_MS = 3_000;

export class ClientRegistry {
  private readonly sessions = new Map<string, ClientSession>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: ClientRegistryOptions) {
    const { timeoutMs, graceMs, ttlMs } = options;
    this.timer = setInterval(
      () => this.sweep(Date.now()),
      Math.max(50, Math.min(timeoutMs / 4, graceMs / 4, ttlMs / 4, 5_000)),
    );
    this.timer.unref();
  }

  /** The client's session, made on its first message. */
  session(client: string, identity: Buffer): ClientSession {
    let session = this.sessions.get(client);
    if (!session) {
      const send: SendFrames = (frames) => this.options.send(identity, frames);
      session = new ClientSession(client, send, this.options.log);
      this.sessions.set(client, session);
    }
    return session;
  }

  /** A message from the client: it is alive and connected. */
  seen(client: string, identity: Buffer): void {
    const session = this.session(client, identity);
    session.lastSeen = Date.now();
    session.goneSince = null;
  }

  all(): IterableIterator<ClientSession> {
    return this.sessions.values();
  }

  /** A connection closed: probe the clients with jobs to learn which are gone. */
  async connectionClosed(): Promise<void> {
    const probe = this.options.probe();
    const probed = [...this.sessions.values()].filter((session) => session.jobs.size > 0 && session.goneSince === null);
    await Promise.all(probed.map((session) => session.probe(probe)));
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sweep(now: number): void {
    const { timeoutMs, graceMs, ttlMs, log } = this.options;
    for (const [client, session] of this.sessions) {
      session.expire(now, ttlMs);
      // A probe sent just as the connection closed can still find it open: clients with jobs ping every second,
      // so one silent for a few seconds is probed again.
      if (session.jobs.size > 0 && session.goneSince === null && now - session.lastSeen > REPROBE_AFTER_MS) {
        void session.probe(this.options.probe());
      }
      const gone = session.goneSince !== null && now - session.goneSince >= graceMs;
      const silent = now - session.lastSeen >= timeoutMs;
      if (!gone && !silent) continue;
      if (session.jobs.size > 0) {
        const cancelled = this.options.cancelJobs(client);
        const why = gone
          ? `disconnected ${Math.round((now - session.goneSince!) / 1000)} s ago`
          : `silent for ${Math.round((now - session.lastSeen) / 1000)} s`;
        if (cancelled > 0) log(`client ${client} ${why}: cancelled ${cancelled} job(s)`);
      }
      if (session.idle) {
        this.sessions.delete(client);
        this.options.forget(client);
      }
    }
  }
}
