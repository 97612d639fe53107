// Whether the agent is still there: pings every heartbeatMs (listing the calls still awaited), a deadline for a
// connection that stays down, an optional deadline for a connected agent that says nothing (silenceTimeoutMs), a
// notice to the calls when it goes quiet, and a new instance in a pong meaning the agent restarted.

import type { ClientSettings } from './client-options';
import type { ChannelEvents, RequestChannel } from './request-channel';

export class Liveness implements ChannelEvents {
  private heartbeat?: NodeJS.Timeout;
  private lastHeardAt = Date.now();
  /** When the heartbeat last ran: a much later run means this process was stalled, not the agent silent. */
  private lastBeatAt = Date.now();
  /** The calls were told the agent went silent, and are told again when it speaks. */
  private silenceNoticed = false;
  /** The instance that welcomed us, kept even while a re-hello after a restart is pending. */
  instance?: string;
  private channel!: RequestChannel;

  constructor(
    private readonly settings: ClientSettings,
    /** Called when a pong comes from another instance: the welcome brings its description and limits. */
    private readonly rehello: () => void,
  ) {}

  attach(channel: RequestChannel): void {
    this.channel = channel;
  }

  /**
   * Every heartbeatMs: fails pending requests once the connection has been down past the deadline (or the agent
   * silent past silenceTimeoutMs), and pings, listing the calls still awaited. Pongs are not tracked as requests: a
   * pong from another instance means the agent restarted. Liveness comes from the connection, not from replies, unless
   * silenceTimeoutMs is set, so a result that takes minutes to arrive over a slow link is not mistaken for a dead agent.
   */
  start(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => this.beat(), this.settings.heartbeatMs);
    this.heartbeat.unref();
  }

  stop(): void {
    clearInterval(this.heartbeat);
  }

  /** Whether the connection is up and the agent spoke (a pong at least) within the silence timeout, if any. */
  get reachable(): boolean {
    if (this.channel.closed || this.channel.connection.disconnectedForMs() > 0) return false;
    return !this.silentPastDeadline();
  }

  heard(): void {
    const silentMs = Date.now() - this.lastHeardAt;
    this.lastHeardAt = Date.now();
    // A host that froze and thawed keeps its connection: the calls given up on meanwhile are cancelled now.
    this.channel.cancelAbandoned();
    if (!this.silenceNoticed) return;
    this.silenceNoticed = false;
    this.noticeToCalls(
      `tslab-remote: the agent at ${this.channel.endpoint} answers again, after ${Math.round(silentMs / 1000)} s\n`,
    );
  }

  connected(): void {
    this.lastHeardAt = Date.now(); // silence is counted from when the agent could speak
  }

  failedAll(): void {
    this.silenceNoticed = false; // the calls told of a silence are failed: later ones were not told
  }

  pong(instance: string): void {
    if (!this.instance || instance === this.instance) return;
    // The new instance is ours from its first pong: its later pongs must not fail what was sent since (a call run
    // again at once, the re-hello).
    this.instance = instance;
    this.channel.failAll(
      'AGENT_RESTARTED',
      `the agent at ${this.channel.endpoint} restarted, so the jobs it was running were lost: run the cell again`,
    );
    this.rehello();
  }

  private beat(): void {
    const channel = this.channel;
    const now = Date.now();
    // Stalled (a long synchronous cell, a large result being decoded, a suspended laptop): pongs may wait unread in
    // the socket, so silence since then proves nothing; count it from now.
    if (now - this.lastBeatAt > 2 * this.settings.heartbeatMs)
      this.lastHeardAt = Math.max(this.lastHeardAt, now - this.settings.heartbeatMs);
    this.lastBeatAt = now;
    const downMs = channel.connection.disconnectedForMs();
    if (channel.pending.size > 0 && downMs > this.settings.heartbeatTimeoutMs) {
      channel.giveUp(
        'AGENT_UNREACHABLE',
        `lost the connection to the agent at ${channel.endpoint} ${Math.round(downMs / 1000)} s ago and could not reconnect: ` +
          'it may have crashed or the network is down. Its running jobs are cancelled if it comes back; check the agent and run the cell again',
      );
      return;
    }
    if (downMs > 0) return; // nothing would carry a ping now
    if (channel.pending.size > 0 && this.silentPastDeadline()) {
      // Judged after the event loop's I/O phase, so replies already received are read first.
      setImmediate(() => {
        if (channel.pending.size === 0 || !this.silentPastDeadline()) return;
        channel.giveUp(
          'AGENT_UNREACHABLE',
          `no word from the agent at ${channel.endpoint} for ${Math.round((Date.now() - this.lastHeardAt) / 1000)} s although the connection is up: ` +
            'the host may be frozen or cut off from this one. Its running jobs are cancelled if it answers again',
        );
      });
      return;
    }
    this.checkSilence();
    const resend = channel.reconnected;
    channel.reconnected = false;
    void channel.post({ type: 'ping', waiting: channel.jobIds(), ...(resend ? { resend } : {}) });
  }

  private silentPastDeadline(): boolean {
    const deadline = this.settings.silenceTimeoutMs;
    return deadline !== undefined && deadline > 0 && Date.now() - this.lastHeardAt >= deadline;
  }

  /** Connected, calls waiting, and not a word from the agent, not even a pong: tell the calls, once. */
  private checkSilence(): void {
    const silentMs = Date.now() - this.lastHeardAt;
    if (this.silenceNoticed || silentMs < this.settings.silenceNoticeMs) return;
    if (this.channel.jobIds().length === 0) return;
    this.silenceNoticed = true;
    this.noticeToCalls(
      `tslab-remote: no word from the agent at ${this.channel.endpoint} for ${Math.round(silentMs / 1000)} s although the connection is up: ` +
        'it may be stuck, or still sending a large result. Interrupt to stop waiting\n',
    );
  }

  private noticeToCalls(text: string): void {
    for (const pending of this.channel.pending.values()) {
      try {
        pending.notice?.(text);
      } catch {
        // a throwing output handler fails its call when the agent's own output reaches it
      }
    }
  }
}
