// One worker: its child process (spawned with its own routing id, watched until it exits), what it wrote to its
// real stdout/stderr (a tail for crash reports, a fatal report), and the pool's bookkeeping of its jobs.

import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import type { WorkerStatus } from '../../protocol/messages';
import { ExitFacts, FatalReport, parseFatal } from '../crash-report';
import { FATAL_MARKER, WORKER_CONFIG_ENV, WorkerConfig } from '../worker/channel';
import type { Job } from './job';

const WORKER_MAIN = path.join(__dirname, '..', 'worker', 'main.js');
const STDERR_TAIL_LINES = 50;
/** After the process exits, wait this long at most for its pipes to drain (a grandchild may hold them open). */
const DRAIN_MS = 300;

export interface SpawnSettings {
  endpoint: () => string;
  snapshotsRoot: string;
  compileCacheDir: string;
  nodePaths: string[];
  agentName: string;
  /** CUDA_VISIBLE_DEVICES: worker i gets gpus[i]. */
  gpus?: string[];
  maxOldSpaceMb?: number;
  /** How long a new process may take to report ready before it is killed. */
  startTimeoutMs: number;
  log: (line: string) => void;
}

export interface ProcessEvents {
  /** A line the process wrote natively (not a fatal report). */
  line(worker: WorkerProcess, stream: 'stdout' | 'stderr', line: string): void;
  /** The process ended and its pipes are drained (or DRAIN_MS passed). */
  exit(worker: WorkerProcess, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void;
}

export class WorkerProcess {
  state: WorkerStatus['state'] = 'stopped';
  child: ChildProcess | null = null;
  pid: number | null = null;
  routingId: string | null = null;
  /** Resolves when the current process has exited and been reported. */
  exited: Promise<void> = Promise.resolve();
  restarts = 0;
  queue: Job[] = [];
  running: Job | null = null;
  snapshot: string | null = null;
  inUse: string[] = [];
  stderrTail: string[] = [];
  fatal: FatalReport | null = null;
  /** The last attempt to start a process failed with this error. */
  spawnError: Error | null = null;
  /** Set while the worker cannot start: jobs for it fail at once with this message. */
  startFailure: string | null = null;
  heapLimitMb: number | null = null;
  readyAt: number | null = null;
  crashStreak = 0;
  /** Set when the pool itself SIGKILLs the worker: the job it was stopping. */
  killedFor: Job | null = null;
  /** start() waits for the first ready through this. */
  onReady: { resolve(): void; reject(err: Error): void } | null = null;
  private partial = { stdout: '', stderr: '' };
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly index: number,
    private readonly settings: SpawnSettings,
    private readonly events: ProcessEvents,
  ) {}

  /** Starts a new process with a fresh routing id; returns that id. A failure to start is reported as an exit. */
  spawn(): string {
    const routingId = `w${this.index}-${randomBytes(8).toString('hex')}`;
    this.state = this.restarts > 0 ? 'restarting' : 'starting';
    this.stderrTail = [];
    this.partial = { stdout: '', stderr: '' };
    this.fatal = null;
    this.spawnError = null;
    this.readyAt = null;
    this.killedFor = null;
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...this.execArgv(), WORKER_MAIN], {
        env: this.env(routingId),
        // detached: a process group of its own, so a Ctrl-C in the agent's terminal does not interrupt jobs (the
        // pool decides what a signal means). The IPC channel is only there so the worker exits when the agent dies.
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        detached: true,
      });
    } catch (error) {
      child = new ChildProcess(); // never started: stands for the failed attempt until it is reported
      queueMicrotask(() => child.emit('error', error));
    }
    this.child = child;
    this.pid = child.pid ?? null;
    this.routingId = routingId;
    this.exited = this.watchExit(child);
    child.stdout?.setEncoding('utf8').on('data', (text: string) => this.native(child, 'stdout', text));
    child.stderr?.setEncoding('utf8').on('data', (text: string) => this.native(child, 'stderr', text));
    const { startTimeoutMs, log } = this.settings;
    this.timer(startTimeoutMs, () => {
      if (this.child !== child || this.readyAt !== null) return;
      log(`worker ${this.index} did not report ready within ${startTimeoutMs} ms; killing it`);
      child.kill('SIGKILL');
    });
    return routingId;
  }

  /** The process reported ready: it takes jobs now. */
  ready(pid: number, heapLimitMb: number, now: number): void {
    this.state = 'idle';
    this.pid = pid;
    this.heapLimitMb = heapLimitMb;
    this.readyAt = now;
    this.startFailure = null;
    this.clearTimers();
    this.onReady?.resolve();
    this.onReady = null;
  }

  /** The pool's start() waits for this process no more: it failed with `error`. */
  notReady(error: Error): void {
    this.onReady?.reject(error);
    this.onReady = null;
  }

  status(): WorkerStatus {
    const gpu = this.settings.gpus?.[this.index];
    const { index, pid, state, restarts, snapshot, startFailure } = this;
    const extra = { ...(gpu !== undefined ? { gpu } : {}), ...(startFailure !== null ? { error: startFailure } : {}) };
    return { index, ...extra, pid, state, restarts, queued: this.queue.length, snapshot };
  }

  /** Ends the process: SIGTERM, then SIGKILL after a second if it lingers (a job may trap SIGTERM). */
  async end(): Promise<void> {
    const child = this.child;
    child?.kill('SIGTERM');
    const kill = setTimeout(() => child?.kill('SIGKILL'), 1000);
    await this.exited;
    clearTimeout(kill);
  }

  /** The process's last words: partial lines still buffered become lines. */
  flushOutput(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream]) this.nativeLine(stream, this.partial[stream]);
      this.partial[stream] = '';
    }
  }

  exitFacts(code: number | null, signal: NodeJS.Signals | null): ExitFacts {
    const { index, fatal, stderrTail, heapLimitMb, spawnError } = this;
    return {
      index,
      spawnError,
      fatal,
      stderrTail,
      heapLimitMb,
      maxOldSpaceMb: this.settings.maxOldSpaceMb,
      code,
      signal,
    };
  }

  timer(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }

  clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /** Its process ended: forgets the process, its snapshot and its timers; returns the job it was running. */
  detachProcess(): Job | null {
    this.flushOutput();
    this.child = null;
    this.pid = null;
    this.routingId = null;
    this.snapshot = null;
    this.clearTimers();
    const job = this.running;
    this.running = null;
    return job;
  }

  private env(routingId: string): NodeJS.ProcessEnv {
    const { snapshotsRoot, compileCacheDir, nodePaths, agentName } = this.settings;
    const endpoint = this.settings.endpoint();
    const config: WorkerConfig = {
      index: this.index,
      endpoint,
      routingId,
      snapshotsRoot,
      compileCacheDir,
      nodePaths,
      agentName,
    };
    const gpu = this.settings.gpus?.[this.index];
    const env: NodeJS.ProcessEnv = { ...process.env, [WORKER_CONFIG_ENV]: JSON.stringify(config) };
    if (gpu !== undefined) env.CUDA_VISIBLE_DEVICES = gpu;
    if (nodePaths.length > 0) env.NODE_PATH = nodePaths.join(path.delimiter);
    else delete env.NODE_PATH;
    return env;
  }

  private execArgv(): string[] {
    // The agent's own flags, minus debugger ports (which would clash) and the heap limit (set per pool).
    const inherited = process.execArgv.filter((arg) => !/^--(inspect|debug|max-old-space-size)/.test(arg));
    const { maxOldSpaceMb } = this.settings;
    return maxOldSpaceMb ? [...inherited, `--max-old-space-size=${maxOldSpaceMb}`] : inherited;
  }

  private watchExit(child: ChildProcess): Promise<void> {
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    return new Promise<void>((resolve) => {
      let done = false;
      const exited = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (done) return;
        done = true;
        // Read everything the process wrote (its last stderr lines, a fatal report) before judging the exit.
        void Promise.race([closed, delay(DRAIN_MS)]).then(() => {
          this.events.exit(this, child, code, signal);
          resolve();
        });
      };
      child.once('exit', exited);
      child.on('error', (err) => {
        this.settings.log(`worker ${this.index}: process error: ${err.message}`);
        // A spawn that failed (EMFILE, ENOMEM, ...) emits no 'exit'; Node 20.20 sets exitCode to the negative errno
        // before this event, so the pid, which a started process always has, is what tells.
        if (child.pid === undefined) {
          this.spawnError = err;
          exited(null, null);
        }
      });
    });
  }

  /** The child's real stdout/stderr (native writes, V8's fatal messages), split into lines. */
  private native(child: ChildProcess, stream: 'stdout' | 'stderr', text: string): void {
    if (this.child !== child && this.child !== null) return;
    const lines = (this.partial[stream] + text).split('\n');
    this.partial[stream] = lines.pop() ?? '';
    for (const line of lines) this.nativeLine(stream, line);
  }

  private nativeLine(stream: 'stdout' | 'stderr', line: string): void {
    const marker = line.indexOf(FATAL_MARKER);
    if (stream === 'stderr' && marker >= 0) {
      this.fatal = parseFatal(line.slice(marker + FATAL_MARKER.length));
      line = line.slice(0, marker);
      if (line.length === 0) return;
    }
    if (stream === 'stderr') {
      this.stderrTail.push(line);
      if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    }
    this.events.line(this, stream, line);
  }
}
