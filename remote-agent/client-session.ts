// What the agent remembers about one client (one routing id): its jobs, and the final replies of its ended jobs,
// kept until the client shows it has them. A reply lost to a disconnect is sent again when the client reconnects
// and asks; one that finds the client's queue full is retried; output that finds it full is dropped and counted,
// and the user is told how much.

import { AgentError, toWireError, WireError } from '../protocol/errors';
import type { Frame } from '../protocol/frames';

/** Sends frames to this client; resolves with null, or the error code of a send that failed. */
export type SendFrames = (frames: readonly Frame[]) => Promise<string | null>;

interface Kept {
  /** Messages that must arrive before the reply (a dropped-output notice); each leaves once sent. */
  before: (readonly Frame[])[];
  frames: readonly Frame[];
  endedAt: number;
  /** A failed delivery was logged already (retries stay quiet). */
  logged?: boolean;
  /** The last delivery found the client disconnected: nothing of it is in flight. */
  unreachable?: boolean;
}

const RETRY_MS = 250;

export class ClientSession {
  lastSeen = Date.now();
  /** Since when (ms) the client's connection is known to be gone (a send failed with EHOSTUNREACH), or null. */
  goneSince: number | null = null;
  /** Jobs and attaches (detached/job-requests.ts) whose final reply has not been sent yet. */
  readonly jobs = new Set<string>();
  private readonly kept = new Map<string, Kept>();
  private readonly droppedOutput = new Map<string, number>();

  constructor(
    readonly key: string,
    private readonly sendFrames: SendFrames,
    private readonly log: (line: string) => void,
  ) {}

  get idle(): boolean {
    return this.jobs.size === 0 && this.kept.size === 0;
  }

  /**
   * Whether a final reply of a job that ended at or after `time` was handed to a connected client and is not yet
   * known to have arrived.
   */
  holdsRepliesSince(time: number): boolean {
    return [...this.kept.values()].some((kept) => kept.endedAt >= time && !kept.unreachable);
  }

  /** Whether a job id is running, queued or ended-and-kept: ids are never reused. */
  knows(job: string): boolean {
    return this.jobs.has(job) || this.kept.has(job);
  }

  /** Sends a message the client ignores, to learn whether its connection is still there. */
  async probe(frames: readonly Frame[]): Promise<void> {
    this.noteFailure(await this.sendFrames(frames));
  }

  /** Streams output; a client too slow to take it loses it (counted) rather than stalling the agent. */
  async output(job: string, frames: readonly Frame[]): Promise<void> {
    const failure = await this.sendFrames(frames);
    this.noteFailure(failure);
    if (failure === null) return;
    const dropped = (this.droppedOutput.get(job) ?? 0) + 1;
    this.droppedOutput.set(job, dropped);
    if (dropped === 1)
      this.log(`client ${this.key}: dropping output of job ${job} (${failure}); the client will be told how much`);
  }

  /**
   * Keeps a job's final reply and delivers it, after a notice of any output that was dropped: the notice is kept and
   * retried with the reply, so it cannot be lost to the same full queue that dropped the output.
   */
  finish(job: string, frames: readonly Frame[], droppedNotice: (count: number) => readonly Frame[]): void {
    this.jobs.delete(job);
    const dropped = this.droppedOutput.get(job);
    this.droppedOutput.delete(job);
    this.kept.set(job, { before: dropped ? [droppedNotice(dropped)] : [], frames, endedAt: Date.now() });
    void this.deliver(job);
  }

  /**
   * A ping lists the calls the client still awaits: kept replies it no longer awaits are forgotten (it has them).
   * After a reconnect (`resend`) the awaited ones are sent again, and an awaited call the agent has no record of is
   * answered by `unknown`, so the client never waits for a reply that cannot come.
   */
  onPing(waiting: readonly string[], resend: boolean, unknown: (job: string) => void): void {
    const awaited = new Set(waiting);
    for (const job of this.kept.keys()) if (!awaited.has(job)) this.kept.delete(job);
    if (!resend) return;
    for (const job of awaited) {
      if (this.kept.has(job)) void this.deliver(job);
      else if (!this.jobs.has(job)) unknown(job);
    }
  }

  /** Forgets kept replies older than `ttlMs`, saying so. */
  expire(now: number, ttlMs: number): void {
    for (const [job, kept] of this.kept) {
      if (now - kept.endedAt < ttlMs) continue;
      this.kept.delete(job);
      this.log(
        `discarded the final reply of job ${job} for client ${this.key}: not collected within ${Math.round(ttlMs / 1000)} s`,
      );
    }
  }

  /** Disconnected (EHOSTUNREACH): wait for the client's next resend ping. Queue full: retry shortly. */
  private async deliver(job: string): Promise<void> {
    const kept = this.kept.get(job);
    if (!kept) return;
    let failure: string | null = null;
    // A notice leaves the list while it is sent, so a concurrent delivery (a resend ping) does not send it twice;
    // sends share one queue, so it still goes out before that delivery's reply.
    for (let next = kept.before.shift(); next; next = kept.before.shift()) {
      failure = await this.sendFrames(next);
      if (failure !== null) {
        kept.before.unshift(next);
        break;
      }
    }
    if (failure === null) failure = await this.sendFrames(kept.frames);
    kept.unreachable = failure === 'EHOSTUNREACH';
    this.noteFailure(failure);
    if (failure === null) return;
    if (!kept.logged)
      this.log(`could not send the final reply of job ${job} to client ${this.key} (${failure}); kept for redelivery`);
    kept.logged = true;
    if (failure !== 'EHOSTUNREACH') setTimeout(() => void this.deliver(job), RETRY_MS).unref();
  }

  private noteFailure(failure: string | null): void {
    if (failure === 'EHOSTUNREACH') this.goneSince ??= Date.now();
  }
}

export function unknownJob(job: string): WireError {
  return toWireError(
    new AgentError(
      'JOB_UNKNOWN',
      `the agent has no record of job ${job}: it never arrived (the connection dropped while it was sent), or its ` +
        'result expired (--result-ttl-ms). Nothing is running for it: run it again',
    ),
  );
}

export function droppedOutputNotice(count: number): string {
  return `[tslab-remote: ${count} output message(s) of this job were dropped: the connection could not keep up]\n`;
}
