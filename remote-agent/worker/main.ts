// A worker process: connects a DEALER to the pool's ROUTER and runs one job at a time, staying alive between jobs
// so module-level state (a loaded model, a GPU context) survives. Started by worker-pool.ts as
// `node dist/remote-agent/worker/main.js` with its configuration in the environment (channel.ts).
//
// Cancellation: the pool sends a `cancel` message, and SIGINT when the worker does not acknowledge it. The
// synchronous part of a job runs inside a vm script with `breakOnSigint`, so SIGINT stops even `while (true) {}`
// there and the worker lives on with its state. Once the job awaits, the `cancel` message aborts the job's
// AbortSignal (see JOB_CONTEXT) and the worker reports the job cancelled as soon as its promise settles; a job that
// ignores both is killed by the pool after a grace period. A SIGINT that lands outside the synchronous part is
// ignored (a listener), so a cancel that races the job's start never costs the worker its state.
//
// A worker never outlives its agent: 'disconnect' ends it when the IPC channel closes, and a watchdog thread ends it
// when its parent changes, which also works while a job blocks the event loop.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';

import * as zmq from 'zeromq';

import { hideDynamicImportWarning } from '../../pickle/dynamic-import';
import { AgentError, toWireError, WireError } from '../../protocol/errors';
import { encodeMessage, SendQueue } from '../../protocol/frames';
import type { DisplayContent } from '../../protocol/messages';
import { isSafeRelativePath } from '../../protocol/manifest';
import { encodeValue } from '../../protocol/values';
import {
  FATAL_MARKER,
  FromWorker,
  jobIdOf,
  parseToWorker,
  parseWorkerConfig,
  ResultMessage,
  RunMessage,
  stoppedJobMessage,
  WORKER_CONFIG_ENV,
  WorkerConfig,
} from './channel';
import { installDisplayHook } from './display-hook';
import { JobCode } from './job-code';
import { JobDirectory } from './job-directory';
import { decodeArguments, isInterrupt, markNotInstalled, unsendableResult } from './job-errors';
import { ModuleSupport } from './modules';
import { startOrphanWatchdog } from './orphan-watchdog';
import { OutputCapture } from './output-capture';
import { pickleCallResult, unpickleCall } from './pickled-call';
import { StackRewriter } from './stack';

/** `globalThis[JOB_CONTEXT]` while a job runs: `{ id, worker, signal }`; the signal aborts on cancel. */
export const JOB_CONTEXT = Symbol.for('tslab-remote.job');
/**
 * `globalThis[RELOAD_HOOK](files?)`, callable by a job: drops the snapshot's loaded modules (all, or the named
 * root-relative files and their importers) so the next require loads them afresh. `%remote_reload` runs it.
 */
export const RELOAD_HOOK = Symbol.for('tslab-remote.reload');

interface RunningJob {
  id: string;
  cancelRequested: boolean;
  abort: AbortController;
}

function readConfig(): WorkerConfig {
  const text = process.env[WORKER_CONFIG_ENV];
  if (!text) throw new Error(`${WORKER_CONFIG_ENV} is not set: workers are started by the agent's worker pool`);
  delete process.env[WORKER_CONFIG_ENV]; // user code has no business with it
  return parseWorkerConfig(text);
}

function realpathOr(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

class Worker {
  private readonly dealer: zmq.Dealer;
  private readonly queue: SendQueue;
  private readonly modules: ModuleSupport;
  private readonly rewriter: StackRewriter;
  private readonly output: OutputCapture;
  private readonly code = new JobCode();
  private readonly directory: JobDirectory;
  private current: RunningJob | null = null;

  constructor(private readonly config: WorkerConfig) {
    const roots = [config.snapshotsRoot, realpathOr(config.snapshotsRoot)];
    this.modules = new ModuleSupport({
      snapshotRoots: roots,
      snapshotsRoot: roots[1]!,
      compileCacheDir: config.compileCacheDir,
      nodePaths: config.nodePaths,
      agentName: config.agentName,
    });
    // Our frames appear under dist/ or, through our own source maps, under the TypeScript sources.
    this.rewriter = new StackRewriter(roots, [__dirname, path.resolve(__dirname, '../../../remote-agent/worker')]);
    this.dealer = new zmq.Dealer({ routingId: config.routingId, linger: 2000 });
    this.queue = new SendQueue(this.dealer);
    this.output = new OutputCapture(
      () => this.current?.id ?? null,
      (job, stream, text) => this.send({ type: 'output', job, stream, text }),
    );
    this.directory = new JobDirectory({
      snapshotsRoot: config.snapshotsRoot,
      agentName: config.agentName,
      switchTo: (snapshot) => this.modules.reloader.switchTo(snapshot),
      switched: (root) => this.code.forgetOutside(root),
      log: (line) => this.log(line),
      notice: (text) => this.output.write('stderr', text),
    });
  }

  async start(): Promise<void> {
    this.modules.install();
    Object.defineProperty(globalThis, RELOAD_HOOK, {
      value: (files?: string[]) => this.modules.reloader.drop(files),
      enumerable: false,
    });
    this.output.install();
    installDisplayHook((display) => this.display(display));
    // The pool sends SIGINT when the worker did not acknowledge a cancel within ~100 ms: usually because a job's
    // synchronous part blocks the event loop (breakOnSigint turns the signal into an exception there, and takes this
    // listener off meanwhile). On a loaded machine the signal can also land before the worker has even started the
    // job, or while it awaits and has not yet read the cancel: without a listener that SIGINT would end the worker and
    // its module state for nothing. A job that really ignores the cancel is killed by the pool after graceMs.
    let ignoredFor: string | null | undefined; // the pool repeats its SIGINT until the grace kill: say it once a job
    process.on('SIGINT', () => {
      const job = this.current?.id ?? null;
      if (job !== ignoredFor) this.log(`SIGINT outside a job's synchronous part${job ? ` (job ${job})` : ''}: ignored`);
      ignoredFor = job;
    });
    process.on('uncaughtException', (err, origin) => this.fatal(err, origin));
    hideDynamicImportWarning();
    // The agent died without stopping us: do not linger as an orphan (nobody is left to read what is pending).
    process.on('disconnect', () => {
      this.dealer.linger = 0;
      this.dealer.close();
      process.exit(0);
    });
    startOrphanWatchdog();
    this.dealer.connect(this.config.endpoint);
    const heapLimitMb = Math.round(v8.getHeapStatistics().heap_size_limit / (1024 * 1024));
    this.send({ type: 'ready', pid: process.pid, heapLimitMb });
    for await (const frames of this.dealer) this.receive(frames);
  }

  private receive(frames: Buffer[]): void {
    let parsed: ReturnType<typeof parseToWorker>;
    try {
      parsed = parseToWorker(frames);
    } catch (err) {
      this.rejectBadMessage(frames, err as Error);
      return;
    }
    const { message, payload } = parsed;
    if (message.type === 'cancel') {
      const job = this.current;
      if (job && job.id === message.job) this.send({ type: 'cancel-ack', job: job.id });
      if (job && job.id === message.job && !job.cancelRequested) {
        job.cancelRequested = true;
        const why = stoppedJobMessage(message.reason, job.id, { started: true, agent: this.config.agentName });
        job.abort.abort(new AgentError(message.reason, why));
      }
      return;
    }
    if (this.current) {
      // The pool sends one job at a time; answer rather than drop, so the job does not hang.
      const error = toWireError(
        new AgentError(
          'INTERNAL',
          `worker ${this.config.index} got job ${message.job} while running ${this.current.id}`,
        ),
      );
      this.send({ type: 'error', job: message.job, error, interrupted: false, inUse: this.inUse() });
      return;
    }
    void this.run(message, payload);
  }

  /**
   * A message from the pool that fails its checks: the job it names fails with BAD_MESSAGE (a job of its own still
   * running goes on: it answers for itself). Without a readable job id it can only be logged.
   */
  private rejectBadMessage(frames: Buffer[], err: Error): void {
    const job = jobIdOf(frames);
    this.log(`a bad message from the pool${job ? ` for job ${job}` : ''}: ${err.message}`);
    if (!job || job === this.current?.id) return;
    const error = toWireError(
      new AgentError(
        'BAD_MESSAGE',
        `worker ${this.config.index} could not read the pool's message for job ${job}: ${err.message}`,
      ),
    );
    this.send({ type: 'error', job, error, interrupted: false, inUse: this.inUse() });
  }

  private async run(message: RunMessage, args: Uint8Array[]): Promise<void> {
    const job: RunningJob = { id: message.job, cancelRequested: false, abort: new AbortController() };
    this.current = job;
    Object.defineProperty(globalThis, JOB_CONTEXT, {
      value: Object.freeze({ id: job.id, worker: this.config.index, signal: job.abort.signal }),
      configurable: true,
      enumerable: false,
    });
    const started = performance.now();
    try {
      let value = this.execute(message, args);
      if (isThenable(value)) value = await value;
      let frames: Uint8Array[];
      try {
        frames =
          message.code.kind === 'pickle'
            ? pickleCallResult(value, this.directory.snapshotDir(message))
            : encodeValue(value);
      } catch (err) {
        throw unsendableResult(err);
      }
      this.output.flush();
      const header: ResultMessage = {
        type: 'result',
        job: job.id,
        elapsedMs: Math.round(performance.now() - started),
        inUse: this.inUse(),
      };
      this.sendFrames(encodeMessage(header, frames));
    } catch (err) {
      const interrupted = isInterrupt(err);
      if (interrupted) this.modules.purgeUnloaded();
      this.output.flush();
      const error = this.toWire(err);
      this.send({
        type: 'error',
        job: job.id,
        error,
        interrupted: interrupted || job.cancelRequested,
        inUse: this.inUse(),
      });
    } finally {
      this.current = null;
      delete (globalThis as Record<symbol, unknown>)[JOB_CONTEXT];
    }
  }

  /** Evaluates the job's function and calls it; the synchronous part runs where SIGINT can interrupt it. */
  private execute(message: RunMessage, frames: Uint8Array[]): unknown {
    const dir = this.directory.enter(message);
    const name = message.code.filename ?? 'remote-job.js';
    if (!isSafeRelativePath(name))
      throw new AgentError('BAD_MESSAGE', `code.filename ${JSON.stringify(name)} is not a safe relative path`);
    const filename = path.join(dir, name);
    if (message.code.kind === 'pickle') {
      const { fn, args } = unpickleCall(frames, this.directory.snapshotDir(message) ?? dir, filename, (text) =>
        this.output.write('stderr', text),
      );
      // A plain call, as the notebook makes it: `this` is undefined in strict code and globalThis in sloppy code.
      return this.code.interruptible(() => fn(...args));
    }
    const args = decodeArguments(frames);
    if (!Array.isArray(args)) throw new AgentError('BAD_MESSAGE', 'the job arguments must encode an array');
    return this.code.runSource(message.code.source, filename, args);
  }

  private toWire(err: unknown): WireError {
    let wire: WireError;
    try {
      wire = toWireError(err, 'REMOTE_EXCEPTION');
      markNotInstalled(err, wire);
    } catch (failure) {
      wire = {
        code: 'REMOTE_EXCEPTION',
        name: 'Error',
        message: `the job threw something that cannot be described: ${String(failure)}`,
      };
    }
    return this.rewriter.wire(wire);
  }

  private inUse(): string[] {
    const hashes = new Set(this.modules.snapshotsInUse());
    if (this.directory.loaded) hashes.add(this.directory.loaded); // the working directory and deferred requires
    return [...hashes].sort();
  }

  /** Uncaught exception (a job's timer, a stray rejection): tell the pool through stderr, synchronously, and exit. */
  private fatal(err: unknown, origin: string): void {
    try {
      const error = this.toWire(err);
      fs.writeSync(2, `${FATAL_MARKER}${JSON.stringify({ origin, job: this.current?.id ?? null, error })}\n`);
    } finally {
      process.exit(70);
    }
  }

  /** After the output written before it: both travel on one channel, in order. */
  private display(display: DisplayContent): void {
    const job = this.current?.id;
    if (job === undefined) return this.log('a display outside a job: dropped');
    this.output.flush();
    this.send({ type: 'display', job, display });
  }

  private send(header: FromWorker): void {
    this.sendFrames(encodeMessage(header));
  }

  private sendFrames(frames: Uint8Array[]): void {
    this.queue.send(frames).catch((err: unknown) => {
      fs.writeSync(2, `worker ${this.config.index}: cannot send to the pool: ${String(err)}\n`);
    });
  }

  private log(line: string): void {
    this.send({ type: 'log', line });
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

if (require.main === module) {
  process.setSourceMapsEnabled(true);
  new Worker(readConfig()).start().catch((err: unknown) => {
    fs.writeSync(2, `worker failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
