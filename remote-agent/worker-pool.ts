// The agent's worker pool: long-lived child processes that run jobs one at a time, each with a FIFO queue. A
// client's jobs stick to one worker (module state lives there); the pool supervises the processes: cancel =
// interrupt, then kill after a grace period; a crashed worker is restarted (with a backoff when it keeps crashing)
// and its running job gets an error naming what happened. Values stay encoded end to end: the pool forwards frames.
//
// Transport: a ROUTER bound to ipc://<runDir>/workers.sock (tcp loopback when that path is too long for a unix
// socket); each worker connects a DEALER with a fresh random routing id per process, so a message from a dead
// incarnation can never be taken for its successor's. See worker/channel.ts for the messages.

import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import * as zmq from 'zeromq';

import type { ErrorCode, WireError } from '../protocol/errors';
import { encodeMessage, SendQueue } from '../protocol/frames';
import type { JobCode, JobOptions, WorkerStatus } from '../protocol/messages';
import { crashError, describeExit, ExitFacts, FatalReport, parseFatal, stderrTailText } from './crash-report';
import {
  CancelReason as StopReason,
  FATAL_MARKER,
  FromWorker,
  parseFromWorker,
  stoppedJobMessage,
  WORKER_CONFIG_ENV,
  WorkerConfig,
} from './worker/channel';

export interface PoolOptions {
  size: number;
  runDir: string;
  snapshotsRoot: string;
  compileCacheDir: string;
  nodePaths: string[];
  agentName: string;
  graceMs?: number;
  maxOldSpaceMb?: number;
  /** How long a new worker may take to report ready before it is killed (default 30 s). */
  startTimeoutMs?: number;
  log: (line: string) => void;
  onInUseChange?: (worker: number, snapshots: string[]) => void;
  /** GPU pinning: worker i gets CUDA_VISIBLE_DEVICES=gpus[i] (so `size` should equal gpus.length). */
  gpus?: string[];
}

export interface JobSpec {
  /** Unique in the agent. */
  id: string;
  /** How errors name the job to its user (the client's own id); defaults to `id`. */
  label?: string;
  client: string;
  snapshot: string | null;
  code: JobCode;
  options: JobOptions;
  args: Uint8Array[];
}

export interface JobSink {
  output(stream: 'stdout' | 'stderr', text: string): void;
  result(frames: Uint8Array[], info: { worker: number; elapsedMs: number }): void;
  error(error: WireError, info: { worker: number | null }): void;
}

const WORKER_MAIN = path.join(__dirname, 'worker', 'main.js');
const MAX_IPC_PATH = 100;
const STDERR_TAIL_LINES = 50;
/** A worker that crashes again within this time of becoming ready counts as crash-looping. */
const CRASH_LOOP_WINDOW_MS = 10_000;
const MAX_BACKOFF_MS = 10_000;
/** After the process exits, wait this long at most for its pipes to drain (a grandchild may hold them open). */
const DRAIN_MS = 300;
const SIGINT_AFTER_MS = 100;


interface Job {
  spec: JobSpec;
  sink: JobSink;
  slot: Slot;
  state: 'queued' | 'running' | 'done';
  stop: StopReason | null;
  /** The worker took the cancel message: its event loop is free, so no SIGINT is sent. */
  acknowledged?: boolean;
  timers: NodeJS.Timeout[];
}

interface Slot {
  index: number;
  state: WorkerStatus['state'];
  child: ChildProcess | null;
  pid: number | null;
  routingId: string | null;
  exited: Promise<void>;
  restarts: number;
  queue: Job[];
  running: Job | null;
  snapshot: string | null;
  inUse: string[];
  stderrTail: string[];
  partial: { stdout: string; stderr: string };
  fatal: FatalReport | null;
  heapLimitMb: number | null;
  readyAt: number | null;
  crashStreak: number;
  /** Set when the pool itself SIGKILLs the worker: the job it was stopping. */
  killedFor: Job | null;
  timers: Set<NodeJS.Timeout>;
  onReady: { resolve(): void; reject(err: Error): void } | null;
}

export class WorkerPool {
  private readonly options: PoolOptions;
  private readonly graceMs: number;
  private readonly router = new zmq.Router({ mandatory: true, linger: 0 });
  private readonly sendQueue = new SendQueue(this.router);
  private readonly slots: Slot[] = [];
  private readonly jobs = new Map<string, Job>();
  private readonly clients = new Map<string, Slot>();
  private readonly byRoutingId = new Map<string, Slot>();
  private endpoint = '';
  private ipcPath: string | null = null;
  private started = false;
  private stopping = false;
  private stopped: Promise<void> | null = null;
  private receiving: Promise<void> | null = null;

  constructor(options: PoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new Error(`PoolOptions.size must be a positive integer, got ${options.size}`);
    this.options = options;
    this.graceMs = options.graceMs ?? 2000;
    for (let index = 0; index < options.size; index++) {
      this.slots.push({
        index,
        state: 'stopped',
        child: null,
        pid: null,
        routingId: null,
        exited: Promise.resolve(),
        restarts: 0,
        queue: [],
        running: null,
        snapshot: null,
        inUse: [],
        stderrTail: [],
        partial: { stdout: '', stderr: '' },
        fatal: null,
        heapLimitMb: null,
        readyAt: null,
        crashStreak: 0,
        killedFor: null,
        timers: new Set(),
        onReady: null,
      });
    }
  }

  /** Binds the workers' socket and starts every worker; resolves when all are ready. */
  async start(): Promise<void> {
    if (this.started || this.stopping) throw new Error('WorkerPool.start() may be called once, before stop()');
    this.started = true;
    fs.mkdirSync(this.options.runDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.options.compileCacheDir, { recursive: true });
    const socketPath = path.join(this.options.runDir, 'workers.sock');
    if (socketPath.length <= MAX_IPC_PATH) {
      fs.rmSync(socketPath, { force: true }); // left by an agent that did not stop cleanly
      this.ipcPath = socketPath;
      this.endpoint = `ipc://${socketPath}`;
      await this.router.bind(this.endpoint);
    } else {
      await this.router.bind('tcp://127.0.0.1:*');
      this.endpoint = this.router.lastEndpoint ?? '';
    }
    this.receiving = this.receive();
    const ready = this.slots.map(
      (slot) =>
        new Promise<void>((resolve, reject) => {
          slot.onReady = { resolve, reject };
          this.spawn(slot);
        }),
    );
    try {
      await Promise.all(ready);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Queues a job on its worker; the sink gets its output, then exactly one result or error. */
  submit(spec: JobSpec, sink: JobSink): void {
    const refuse = (code: ErrorCode, message: string): void => {
      safely(this.options.log, () => sink.error({ code, name: 'AgentError', message }, { worker: null }));
    };
    if (this.stopping) return refuse('SHUTTING_DOWN', `agent ${this.options.agentName} is stopping; job ${spec.label ?? spec.id} was not run`);
    if (this.jobs.has(spec.id)) return refuse('BAD_MESSAGE', `job id ${spec.id} is already in use on agent ${this.options.agentName}`);
    const pinned = spec.options.worker;
    let slot: Slot | undefined;
    if (pinned !== undefined) {
      slot = Number.isInteger(pinned) ? this.slots[pinned] : undefined;
      if (!slot) {
        return refuse('BAD_MESSAGE', `options.worker ${pinned} is out of range: agent ${this.options.agentName} has workers 0..${this.slots.length - 1}`);
      }
    } else {
      slot = this.clients.get(spec.client);
      if (!slot) {
        slot = this.leastLoaded();
        this.clients.set(spec.client, slot);
      }
    }
    const job: Job = { spec, sink, slot, state: 'queued', stop: null, timers: [] };
    this.jobs.set(spec.id, job);
    slot.queue.push(job);
    this.dispatch(slot);
  }

  /** Cancels a queued job at once, a running one by interrupt then kill; false when unknown or finished. */
  cancel(jobId: string, code: 'CANCELLED' | 'TIMEOUT' = 'CANCELLED'): boolean {
    const job = this.jobs.get(jobId);
    if (!job || job.state === 'done') return false;
    this.stopJob(job, code);
    return true;
  }

  /** Cancels every queued and running job of a client; returns how many. */
  cancelClient(client: string): number {
    let count = 0;
    for (const job of [...this.jobs.values()]) {
      if (job.spec.client === client && this.cancel(job.spec.id)) count++;
    }
    return count;
  }

  /**
   * Drops a client's sticky worker once it has no queued or running job (the server calls this when a client goes
   * away), so the client map does not grow with every client the agent ever saw. A client that comes back is
   * assigned a worker afresh.
   */
  forgetClient(client: string): void {
    for (const job of this.jobs.values()) if (job.spec.client === client) return;
    this.clients.delete(client);
  }

  status(): WorkerStatus[] {
    return this.slots.map((slot) => ({
      index: slot.index,
      ...(this.options.gpus?.[slot.index] !== undefined ? { gpu: this.options.gpus[slot.index] } : {}),
      pid: slot.pid,
      state: slot.state,
      restarts: slot.restarts,
      queued: slot.queue.length,
      snapshot: slot.snapshot,
    }));
  }

  /** Fails queued jobs, interrupts running ones (killed after the grace period), ends every worker process. */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  // ---- scheduling ------------------------------------------------------------------------------------------------

  /** The worker for a new client: least work queued, then fewest clients, then lowest index. */
  private leastLoaded(): Slot {
    const clientsOf = (slot: Slot): number => [...this.clients.values()].filter((s) => s === slot).length;
    const load = (slot: Slot): number => slot.queue.length + (slot.running ? 1 : 0);
    let best = this.slots[0]!;
    for (const slot of this.slots.slice(1)) {
      const diff = load(slot) - load(best) || clientsOf(slot) - clientsOf(best);
      if (diff < 0) best = slot;
    }
    return best;
  }

  private dispatch(slot: Slot): void {
    if (this.stopping || slot.state !== 'idle' || slot.running || !slot.routingId) return;
    const job = slot.queue.shift();
    if (!job) return;
    job.state = 'running';
    slot.running = job;
    slot.state = 'busy';
    if (job.spec.snapshot !== null) slot.snapshot = job.spec.snapshot;
    const { id, snapshot, code, options } = job.spec;
    this.sendTo(slot, encodeMessage({ type: 'run', job: id, snapshot, code, options }, job.spec.args));
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined) job.timers.push(setTimeout(() => this.cancel(id, 'TIMEOUT'), timeoutMs));
  }

  private stopJob(job: Job, reason: StopReason): void {
    if (job.state === 'queued') {
      const queue = job.slot.queue;
      queue.splice(queue.indexOf(job), 1);
      const message = stoppedJobMessage(reason, job.spec.label ?? job.spec.id, { started: false, agent: this.options.agentName });
      this.fail(job, { code: reason, name: 'AgentError', message }, null);
      return;
    }
    if (job.stop) return; // already being stopped
    job.stop = reason;
    const slot = job.slot;
    if (slot.running !== job || !slot.child) return; // its worker is dying; the exit handler reports the job
    this.sendTo(slot, encodeMessage({ type: 'cancel', job: job.spec.id, reason }));
    // A worker whose event loop is free acknowledges the cancel (and the job's abort signal fires). One that does not
    // within SIGINT_AFTER_MS is most likely stuck in the job's synchronous part: SIGINT interrupts that
    // (breakOnSigint), and is repeated in case it landed just before the worker entered it. A signal that lands
    // anywhere else (the job not started yet, or awaiting on a loaded machine) is ignored by the worker's listener;
    // a job that never yields is killed after the grace period.
    const child = slot.child;
    const interval = Math.max(10, Math.min(SIGINT_AFTER_MS, this.graceMs / 4));
    const interrupt = setInterval(() => {
      if (slot.running === job && slot.child === child && !job.acknowledged) child.kill('SIGINT');
    }, interval);
    job.timers.push(interrupt);
    job.timers.push(
      setTimeout(() => {
        if (slot.running !== job || !slot.child) return;
        this.options.log(`worker ${slot.index}: job ${job.spec.id} ignored the interrupt for ${this.graceMs} ms; killing the worker`);
        slot.killedFor = job;
        slot.child.kill('SIGKILL');
      }, this.graceMs),
    );
  }

  // ---- job outcomes ----------------------------------------------------------------------------------------------

  private finish(job: Job): boolean {
    if (job.state === 'done') return false;
    job.state = 'done';
    for (const timer of job.timers) clearTimeout(timer);
    this.jobs.delete(job.spec.id);
    return true;
  }

  private fail(job: Job, error: WireError, worker: number | null): void {
    if (this.finish(job)) safely(this.options.log, () => job.sink.error(error, { worker }));
  }

  /** The error for a job stopped by cancel/timeout/shutdown; `how` says what happened to the worker. */
  private stoppedError(job: Job, how: string, cause?: WireError): WireError {
    const reason = job.stop ?? 'CANCELLED';
    const what = stoppedJobMessage(reason, job.spec.label ?? job.spec.id, {
      started: true,
      agent: this.options.agentName,
      timeoutMs: job.spec.options.timeoutMs,
    });
    return { code: reason, name: 'AgentError', message: `${what}; ${how}`, ...(cause ? { cause } : {}) };
  }

  private completed(slot: Slot, message: Extract<FromWorker, { type: 'result' | 'error' }>, frames: Uint8Array[]): void {
    const job = slot.running;
    if (!job || job.spec.id !== message.job) {
      this.options.log(`worker ${slot.index}: ${message.type} for job ${message.job}, which it is not running; dropped`);
      return;
    }
    slot.running = null;
    slot.state = 'idle';
    slot.crashStreak = 0;
    this.setInUse(slot, message.inUse);
    if (job.stop) {
      // The bare interrupt (or our own abort reason) says nothing the message does not; anything else the job threw
      // while stopping is worth showing.
      const ours =
        message.type === 'error' &&
        (message.error.props?.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED' || message.error.code === job.stop);
      const cause = message.type === 'error' && !ours ? message.error : undefined;
      this.fail(job, this.stoppedError(job, `worker ${slot.index} stopped it and kept its state`, cause), slot.index);
    } else if (message.type === 'result') {
      if (this.finish(job)) {
        safely(this.options.log, () => job.sink.result(frames, { worker: slot.index, elapsedMs: message.elapsedMs }));
      }
    } else {
      this.fail(job, message.error, slot.index);
    }
    this.dispatch(slot);
  }

  private setInUse(slot: Slot, snapshots: string[]): void {
    if (snapshots.length === slot.inUse.length && snapshots.every((s, i) => s === slot.inUse[i])) return;
    slot.inUse = snapshots;
    const notify = this.options.onInUseChange;
    if (notify) safely(this.options.log, () => notify(slot.index, snapshots));
  }

  // ---- the socket ------------------------------------------------------------------------------------------------

  private sendTo(slot: Slot, frames: Uint8Array[]): void {
    const routingId = slot.routingId;
    if (!routingId) return;
    this.sendQueue.send([Buffer.from(routingId), ...frames]).catch((err: unknown) => {
      // The worker went away between our check and the send; its exit handler reports its job.
      if (!this.stopping) this.options.log(`worker ${slot.index}: send failed: ${String(err)}`);
    });
  }

  private async receive(): Promise<void> {
    try {
      for await (const [id, ...frames] of this.router) {
        const slot = id ? this.byRoutingId.get(id.toString()) : undefined;
        if (!slot) continue; // a worker we already buried, or a stranger
        let parsed: ReturnType<typeof parseFromWorker>;
        try {
          parsed = parseFromWorker(frames);
        } catch (err) {
          this.options.log(`worker ${slot.index}: bad message: ${(err as Error).message}`);
          continue;
        }
        this.handle(slot, parsed.message, parsed.payload);
      }
    } catch (err) {
      if (!this.stopping) this.options.log(`worker socket failed: ${String(err)}`);
    }
  }

  private handle(slot: Slot, message: FromWorker, payload: Uint8Array[]): void {
    switch (message.type) {
      case 'ready':
        slot.state = 'idle';
        slot.pid = message.pid;
        slot.heapLimitMb = message.heapLimitMb;
        slot.readyAt = Date.now();
        this.clearSlotTimers(slot);
        slot.onReady?.resolve();
        slot.onReady = null;
        this.dispatch(slot);
        return;
      case 'output': {
        const job = slot.running;
        if (job && job.spec.id === message.job) safely(this.options.log, () => job.sink.output(message.stream, message.text));
        else this.options.log(`worker ${slot.index} ${message.stream} (no job): ${message.text.trimEnd()}`);
        return;
      }
      case 'result':
      case 'error':
        this.completed(slot, message, payload);
        return;
      case 'log':
        this.options.log(`worker ${slot.index}: ${message.line}`);
        return;
      case 'cancel-ack':
        if (slot.running?.spec.id === message.job) slot.running.acknowledged = true;
        return;
    }
  }

  // ---- processes -------------------------------------------------------------------------------------------------

  private spawn(slot: Slot): void {
    if (this.stopping) return;
    const routingId = `w${slot.index}-${randomBytes(8).toString('hex')}`;
    const config: WorkerConfig = {
      index: slot.index,
      endpoint: this.endpoint,
      routingId,
      snapshotsRoot: this.options.snapshotsRoot,
      compileCacheDir: this.options.compileCacheDir,
      nodePaths: this.options.nodePaths,
      agentName: this.options.agentName,
    };
    const env: NodeJS.ProcessEnv = { ...process.env, [WORKER_CONFIG_ENV]: JSON.stringify(config) };
    const gpu = this.options.gpus?.[slot.index];
    if (gpu !== undefined) env.CUDA_VISIBLE_DEVICES = gpu;
    if (this.options.nodePaths.length > 0) env.NODE_PATH = this.options.nodePaths.join(path.delimiter);
    else delete env.NODE_PATH;
    // detached: a process group of its own, so a Ctrl-C in the agent's terminal does not interrupt jobs (the pool
    // decides what a signal means). The IPC channel is only there so the worker exits when the agent dies.
    const child = spawn(process.execPath, [...this.execArgv(), WORKER_MAIN], {
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
    });
    slot.child = child;
    slot.pid = child.pid ?? null;
    slot.routingId = routingId;
    slot.state = slot.restarts > 0 ? 'restarting' : 'starting';
    slot.stderrTail = [];
    slot.partial = { stdout: '', stderr: '' };
    slot.fatal = null;
    slot.readyAt = null;
    slot.killedFor = null;
    this.byRoutingId.set(routingId, slot);
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    slot.exited = new Promise<void>((resolve) => {
      let done = false;
      const exited = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (done) return;
        done = true;
        // Read everything the process wrote (its last stderr lines, a fatal report) before judging the exit.
        void Promise.race([closed, delay(DRAIN_MS)]).then(() => {
          this.exited(slot, child, code, signal);
          resolve();
        });
      };
      child.once('exit', exited);
      child.once('error', (err) => {
        this.options.log(`worker ${slot.index}: process error: ${err.message}`);
        if (child.exitCode === null && child.signalCode === null && child.pid === undefined) exited(null, null); // never started
      });
    });
    child.stdout?.setEncoding('utf8').on('data', (text: string) => this.native(slot, child, 'stdout', text));
    child.stderr?.setEncoding('utf8').on('data', (text: string) => this.native(slot, child, 'stderr', text));
    const startTimeout = this.options.startTimeoutMs ?? 30_000;
    this.slotTimer(slot, startTimeout, () => {
      if (slot.child !== child || slot.readyAt !== null) return;
      this.options.log(`worker ${slot.index} did not report ready within ${startTimeout} ms; killing it`);
      child.kill('SIGKILL');
    });
  }

  private execArgv(): string[] {
    // The agent's own flags, minus debugger ports (which would clash) and the heap limit (set per pool).
    const inherited = process.execArgv.filter((arg) => !/^--(inspect|debug|max-old-space-size)/.test(arg));
    return this.options.maxOldSpaceMb ? [...inherited, `--max-old-space-size=${this.options.maxOldSpaceMb}`] : inherited;
  }

  /** The child's real stdout/stderr (native writes, V8's fatal messages): to the running job, a tail, or the log. */
  private native(slot: Slot, child: ChildProcess, stream: 'stdout' | 'stderr', text: string): void {
    if (slot.child !== child && slot.child !== null) return;
    const lines = (slot.partial[stream] + text).split('\n');
    slot.partial[stream] = lines.pop() ?? '';
    for (const line of lines) this.nativeLine(slot, stream, line);
  }

  private nativeLine(slot: Slot, stream: 'stdout' | 'stderr', line: string): void {
    const marker = line.indexOf(FATAL_MARKER);
    if (stream === 'stderr' && marker >= 0) {
      slot.fatal = parseFatal(line.slice(marker + FATAL_MARKER.length));
      line = line.slice(0, marker);
      if (line.length === 0) return;
    }
    if (stream === 'stderr') {
      slot.stderrTail.push(line);
      if (slot.stderrTail.length > STDERR_TAIL_LINES) slot.stderrTail.shift();
    }
    const job = slot.running;
    if (job) safely(this.options.log, () => job.sink.output(stream, `${line}\n`));
    else this.options.log(`worker ${slot.index} ${stream}: ${line}`);
  }

  /** A worker process ended: report its job, restart it (with backoff when it keeps crashing). */
  private exited(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    for (const stream of ['stdout', 'stderr'] as const) {
      if (slot.partial[stream]) this.nativeLine(slot, stream, slot.partial[stream]);
      slot.partial[stream] = '';
    }
    if (slot.routingId) this.byRoutingId.delete(slot.routingId);
    slot.child = null;
    slot.pid = null;
    slot.routingId = null;
    slot.snapshot = null;
    this.clearSlotTimers(slot);
    const job = slot.running;
    slot.running = null;
    // Killed after the grace period: deliberate, not a crash. (A cancel's SIGINT never ends a worker: it ignores one
    // outside a job's synchronous part.)
    const killedForCancel = job !== null && slot.killedFor === job;
    const facts: ExitFacts = { ...slot, maxOldSpaceMb: this.options.maxOldSpaceMb, code, signal };
    const what = describeExit(facts);
    this.setInUse(slot, []);

    if (slot.onReady) {
      // Died before it ever became ready during start(): the agent cannot work, say why.
      slot.onReady.reject(new Error(`worker ${slot.index} ${what} before it was ready${stderrTailText(slot.stderrTail)}`));
      slot.onReady = null;
    }
    if (this.stopping) {
      slot.state = 'stopped';
      if (job) this.fail(job, this.stoppedError({ ...job, stop: 'SHUTTING_DOWN' }, `worker ${slot.index} was ended`), slot.index);
      return;
    }

    if (job && job.stop) {
      const how = killedForCancel
        ? `it did not stop within ${this.graceMs} ms of the interrupt, so worker ${slot.index} was killed and restarted: ` +
          'its module state (loaded modules, caches) was lost'
        : `worker ${slot.index} ${what} after the interrupt and was restarted: its module state was lost`;
      this.fail(job, this.stoppedError(job, how), slot.index);
    } else if (job) {
      this.fail(job, crashError(facts, job.spec.label ?? job.spec.id, what), slot.index);
    } else {
      this.options.log(`worker ${slot.index} ${what} while ${slot.readyAt === null ? 'starting' : 'idle'}; restarting it`);
    }

    // A deliberate kill is no crash; a crash soon after the last start, without a job done since, is a loop.
    if (!killedForCancel) {
      const quick = slot.readyAt === null || Date.now() - slot.readyAt < CRASH_LOOP_WINDOW_MS;
      slot.crashStreak = quick ? slot.crashStreak + 1 : 1;
    }
    const backoff = slot.crashStreak <= 1 ? 0 : Math.min(250 * 2 ** (slot.crashStreak - 2), MAX_BACKOFF_MS);
    if (slot.readyAt === null && slot.crashStreak >= 3) {
      // It cannot even start: fail what waits for it rather than let it wait forever.
      for (const queued of [...slot.queue]) {
        slot.queue.splice(slot.queue.indexOf(queued), 1);
        const message = `worker ${slot.index} cannot start (${slot.crashStreak} attempts; last: ${what})${stderrTailText(slot.stderrTail)}`;
        this.fail(queued, { code: 'WORKER_CRASHED', name: 'WorkerCrashed', message }, slot.index);
      }
    }
    slot.restarts++;
    slot.state = 'restarting';
    if (backoff > 0) this.options.log(`worker ${slot.index} is crash-looping; restarting in ${backoff} ms`);
    this.slotTimer(slot, backoff, () => this.spawn(slot));
  }

  private slotTimer(slot: Slot, ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      slot.timers.delete(timer);
      run();
    }, ms);
    slot.timers.add(timer);
  }

  private clearSlotTimers(slot: Slot): void {
    for (const timer of slot.timers) clearTimeout(timer);
    slot.timers.clear();
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    for (const slot of this.slots) {
      this.clearSlotTimers(slot);
      for (const job of [...slot.queue]) this.stopJob(job, 'SHUTTING_DOWN');
      slot.onReady?.reject(new Error('the worker pool was stopped while starting'));
      slot.onReady = null;
    }
    // Running jobs: interrupt, and give them the grace period to answer.
    const running = this.slots.filter((slot) => slot.running && slot.child);
    for (const slot of running) this.stopJob(slot.running!, 'SHUTTING_DOWN');
    const deadline = Date.now() + this.graceMs;
    while (this.slots.some((slot) => slot.running && slot.child) && Date.now() < deadline) await delay(10);
    // End every process: SIGTERM, then SIGKILL for any that lingers (a job may trap SIGTERM).
    for (const slot of this.slots) slot.child?.kill('SIGTERM');
    const all = Promise.all(this.slots.map((slot) => slot.exited));
    const killTimer = setTimeout(() => {
      for (const slot of this.slots) slot.child?.kill('SIGKILL');
    }, 1000);
    await all;
    clearTimeout(killTimer);
    for (const job of [...this.jobs.values()]) this.fail(job, this.stoppedError({ ...job, stop: 'SHUTTING_DOWN' }, 'its worker was ended'), null);
    this.router.close();
    await this.receiving;
    if (this.ipcPath) fs.rmSync(this.ipcPath, { force: true });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Calls into user-supplied callbacks (sinks, hooks) so that one that throws cannot break the pool. */
function safely(log: (line: string) => void, call: () => void): void {
  try {
    call();
  } catch (err) {
    log(`a job sink or hook threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}
