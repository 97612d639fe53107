// One detached job while the agent holds it: its description (kept on disk at each change), its output (buffered a
// moment, then appended to disk, the oldest dropped past the bound) and the clients watching it (`attach`).

import type { WireError } from '../../protocol/errors';
import type { DetachedJobInfo, DetachedState } from '../../protocol/job-messages';
import { JobFiles, JobMeta, OutputLine, Stream } from './job-files';

/** A client attached to the job: its output as it comes, then its end. */
export interface Watcher {
  output(stream: Stream, text: string): void;
  end(): void;
}

export interface DetachedJobLimits {
  /** The newest this many bytes of output are kept. */
  maxOutputBytes: number;
  /** How long an ended job is kept after it ended or was last fetched. */
  ttlMs: number;
}

/** Output is written to disk this often (and when the job ends), so a crash loses at most this much of it. */
const FLUSH_MS = 200;
/** ... or as soon as this much waits, so a job that prints fast does not fill the agent's memory meanwhile. */
const FLUSH_BYTES = 1024 * 1024;
const LAST_LINE_CHARS = 200;

export class DetachedJob {
  readonly watchers = new Set<Watcher>();
  private pending: OutputLine[] = [];
  private pendingBytes = 0;
  private keptBytes: number;
  private flushTimer?: NodeJS.Timeout;

  constructor(
    readonly files: JobFiles,
    readonly meta: JobMeta,
    private readonly limits: DetachedJobLimits,
    private readonly now: () => number,
  ) {
    this.keptBytes = meta.outputBytes - meta.droppedBytes;
  }

  get id(): string {
    return this.meta.id;
  }

  get ended(): boolean {
    return this.meta.endedAt !== null;
  }

  info(): DetachedJobInfo {
    const { owner: _owner, snapshot: _snapshot, fetchedAt: _fetchedAt, ...info } = this.meta;
    return info;
  }

  started(worker: number): void {
    Object.assign(this.meta, { state: 'running', startedAt: this.now(), worker });
    this.files.writeMeta(this.meta);
  }

  output(stream: Stream, text: string): void {
    const bytes = Buffer.byteLength(text);
    this.meta.outputBytes += bytes;
    const lines = text.split('\n').filter((line) => line.trim().length > 0);
    if (lines.length > 0) this.meta.lastLine = lines[lines.length - 1]!.slice(-LAST_LINE_CHARS);
    this.pending.push([stream, text]);
    this.pendingBytes += bytes;
    for (const watcher of this.watchers) watcher.output(stream, text);
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** The job ended: its result (frames) is kept when it succeeded, its error otherwise. */
  end(state: Exclude<DetachedState, 'queued' | 'running'>, outcome: { frames: readonly Uint8Array[]; worker: number } | { error: WireError }): void {
    this.flush();
    if ('frames' in outcome) {
      this.files.writeResult(outcome.frames);
      this.meta.worker = outcome.worker;
    } else {
      this.meta.error = outcome.error;
    }
    const endedAt = this.now();
    Object.assign(this.meta, { state, endedAt, expiresAt: endedAt + this.limits.ttlMs });
    this.files.writeMeta(this.meta);
    for (const watcher of [...this.watchers]) watcher.end();
    this.watchers.clear();
  }

  /** Its result or error was handed to a client: it is kept for the time to live from now. */
  fetched(): void {
    const now = this.now();
    Object.assign(this.meta, { fetchedAt: now, expiresAt: now + this.limits.ttlMs });
    this.files.writeMeta(this.meta);
  }

  /** The output kept so far, oldest first. */
  replay(): OutputLine[] {
    this.flush();
    return this.files.readOutput();
  }

  /** Writes buffered output; past the bound, rewrites the file with the newest three quarters of it. */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.length === 0) return;
    const lines = this.pending;
    this.pending = [];
    this.keptBytes += this.pendingBytes;
    this.pendingBytes = 0;
    this.files.appendOutput(lines);
    if (this.keptBytes > this.limits.maxOutputBytes) this.dropOldest();
    if (!this.ended) this.files.writeMeta(this.meta);
  }

  private dropOldest(): void {
    const target = Math.floor((this.limits.maxOutputBytes * 3) / 4);
    const kept: OutputLine[] = [];
    let bytes = 0;
    for (const [stream, text] of this.files.readOutput().reverse()) {
      const size = Buffer.byteLength(text);
      if (bytes + size > target) {
        // Keep the tail of the line that crosses the bound (its start is dropped).
        const room = target - bytes;
        if (room > 0) kept.push([stream, Buffer.from(text).subarray(size - room).toString()]);
        bytes = target;
        break;
      }
      kept.push([stream, text]);
      bytes += size;
    }
    kept.reverse();
    this.files.replaceOutput(kept);
    const keptBytes = kept.reduce((sum, [, text]) => sum + Buffer.byteLength(text), 0);
    this.meta.droppedBytes += this.keptBytes - keptBytes;
    this.keptBytes = keptBytes;
  }
}
