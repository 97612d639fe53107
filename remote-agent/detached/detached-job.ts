// One detached job while the agent holds it: its description (kept on disk at each change), its output (buffered a
// moment, then appended to disk, the oldest dropped past the bound) and the clients watching it (`attach`).

import type { WireError } from '../../protocol/errors';
import type { DetachedJobInfo, DetachedState } from '../../protocol/job-messages';
import { JobFiles, JobMeta, lineBytes, OutputLine } from './job-files';

/** A client attached to the job: its output as it comes, then its end. */
export interface Watcher {
  output(line: OutputLine): void;
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
const ERROR_CHARS = 16 * 1024;

export class DetachedJob {
  readonly watchers = new Set<Watcher>();
  private pending: OutputLine[] = [];
  private pendingBytes = 0;
  /** Output bytes in the current and the old output file (see flush). */
  private currentBytes = 0;
  private oldBytes = 0;
  private flushTimer?: NodeJS.Timeout;

  constructor(
    readonly files: JobFiles,
    readonly meta: JobMeta,
    private readonly limits: DetachedJobLimits,
    private readonly now: () => number,
  ) {}

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
    this.writeMetaSafely();
  }

  output(line: OutputLine): void {
    const bytes = lineBytes(line);
    this.meta.outputBytes += bytes;
    if (line[0] !== 'display') {
      const lines = line[1].split('\n').filter((text) => text.trim().length > 0);
      if (lines.length > 0) this.meta.lastLine = lines[lines.length - 1]!.slice(-LAST_LINE_CHARS);
    }
    this.pending.push(line);
    this.pendingBytes += bytes;
    for (const watcher of this.watchers) watcher.output(line);
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /**
   * The job ended: its result (frames) is kept when it succeeded, its error otherwise. The state changes in memory
   * first and the watchers always end: a disk that fails here (full, removed) loses the record, not the agent.
   */
  end(
    state: Exclude<DetachedState, 'queued' | 'running'>,
    outcome: { frames: readonly Uint8Array[]; worker: number } | { error: WireError },
  ): void {
    const endedAt = this.now();
    try {
      this.flush();
      if ('frames' in outcome) {
        this.meta.worker = outcome.worker;
        this.files.writeResult(outcome.frames);
      } else {
        this.meta.error = boundedError(outcome.error);
      }
    } catch (error) {
      state = 'failed';
      this.meta.error = {
        code: 'DISK_FULL',
        name: 'AgentError',
        message: `the agent could not keep this job's result: ${(error as Error).message}`,
      };
    } finally {
      Object.assign(this.meta, { state, endedAt, expiresAt: endedAt + this.limits.ttlMs });
      this.writeMetaSafely();
      for (const watcher of [...this.watchers]) watcher.end();
      this.watchers.clear();
    }
  }

  /** Its result or error was handed to a client: it is kept for the time to live from now. */
  fetched(): void {
    const now = this.now();
    Object.assign(this.meta, { fetchedAt: now, expiresAt: now + this.limits.ttlMs });
    this.writeMetaSafely();
  }

  /** The newest maxOutputBytes of output, oldest first; `droppedBytes` then counts what came before it. */
  replay(): OutputLine[] {
    this.flush();
    const newest = newestBytes(this.files.readOutput(), this.limits.maxOutputBytes);
    this.meta.droppedBytes = this.meta.outputBytes - newest.bytes;
    return newest.lines;
  }

  /**
   * Writes buffered output. The output rotates between two files, each at most half the bound: when the current one
   * is full it becomes the old one and the old one goes. Appends never rewrite what is on disk.
   */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.length === 0) return;
    const lines = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      this.files.appendOutput(lines);
      this.currentBytes += bytes;
      if (this.currentBytes >= this.limits.maxOutputBytes / 2) {
        this.meta.droppedBytes += this.oldBytes;
        this.oldBytes = this.currentBytes;
        this.currentBytes = 0;
        this.files.rotateOutput();
      }
    } catch (error) {
      // Called from a timer too: a full or removed disk costs this output (counted as dropped), not the agent.
      this.meta.droppedBytes += bytes;
      this.files.log(`detached job ${this.id}: could not write ${bytes} bytes of output: ${(error as Error).message}`);
    }
    if (!this.ended) this.writeMetaSafely();
  }

  private writeMetaSafely(): void {
    try {
      this.files.writeMeta(this.meta);
    } catch (error) {
      this.files.log(`detached job ${this.id}: could not write its description: ${(error as Error).message}`);
    }
  }
}

/** The newest `limit` bytes of `lines`: text that crosses the limit keeps its tail, a display goes whole. */
function newestBytes(lines: readonly OutputLine[], limit: number): { lines: OutputLine[]; bytes: number } {
  const kept: OutputLine[] = [];
  let bytes = 0;
  for (let i = lines.length - 1; i >= 0 && bytes < limit; i--) {
    const line = lines[i]!;
    const size = lineBytes(line);
    const room = limit - bytes;
    if (size <= room) kept.push(line);
    else if (line[0] !== 'display') kept.push([line[0], tail(line[1], room)]);
    else break;
    bytes += Math.min(size, room);
  }
  return { lines: kept.reverse(), bytes };
}

/** The last `bytes` bytes of the text. */
function tail(text: string, bytes: number): string {
  const buffer = Buffer.from(text);
  return buffer.subarray(buffer.length - bytes).toString();
}

/** A stored error is listed with every job: its text is bounded, so one huge message cannot break the listing. */
function boundedError(error: WireError): WireError {
  const cut = (text: string | undefined): string | undefined =>
    text === undefined || text.length <= ERROR_CHARS ? text : `${text.slice(0, ERROR_CHARS)}… [cut]`;
  return {
    code: error.code,
    name: cut(error.name) ?? 'Error',
    message: cut(error.message) ?? '',
    ...(error.stack === undefined ? {} : { stack: cut(error.stack) }),
    ...(error.cause === undefined ? {} : { cause: boundedError(error.cause) }),
  };
}
