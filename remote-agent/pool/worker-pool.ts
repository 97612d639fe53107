// The agent's worker pool: long-lived child processes (worker-process.ts) that run jobs one at a time, each with a
// FIFO queue. A client's jobs stick to one worker (scheduling.ts); cancel = interrupt, then kill after a grace period
// (cancel-ladder.ts); a crashed worker is restarted, with a backoff when it keeps crashing (restart-policy.ts), and
// its running job gets an error naming what happened. Values stay encoded end to end: the pool forwards frames over
// its socket (transport.ts); what each message from a worker means is worker-messages.ts.

import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

import type { ErrorCode, WireError } from '../../protocol/errors';
import { encodeMessage } from '../../protocol/frames';
import type { WorkerStatus } from '../../protocol/messages';
import { describeExit, ExitFacts, stderrTailText } from '../crash-report';
import { CancelMessage, CancelReason, FromWorker, RunMessage, stoppedJobMessage } from '../worker/channel';
import { climbCancelLadder } from './cancel-ladder';
import { Job, JobSink, JobSpec, labelOf, safely } from './job';
import { DEFAULT_CANCEL_GRACE_MS, type PoolOptions } from './pool-options';
import { cannotStartError, exitedJobError, stoppedError, stoppedInPlaceError, unreadableError } from './job-errors';
import { cannotStart, nextRestartDelay } from './restart-policy';
import { Scheduler } from './scheduling';
import { WorkerTransport } from './transport';
import { routeNativeLine, routeWorkerMessage } from './worker-messages';
import { WorkerProcess } from './worker-process';

export type { JobSink, JobSpec } from './job';
export type { PoolOptions } from './pool-options';

export class WorkerPool {
  private readonly options: PoolOptions;
  private readonly graceMs: number;
  private readonly now: () => number;
  private readonly transport = new WorkerTransport<WorkerProcess>();
  private readonly workers: WorkerProcess[] = [];
  private readonly scheduler: Scheduler;
  private readonly jobs = new Map<string, Job>();
  private started = false;
  private stopping = false;
  private stopped: Promise<void> | null = null;

  constructor(options: PoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1)
      throw new Error(`PoolOptions.size must be a positive integer, got ${options.size}`);
    this.options = options;
    this.graceMs = options.graceMs ?? DEFAULT_CANCEL_GRACE_MS;
    this.now = options.now ?? Date.now;
    const events = {
      line: (worker: WorkerProcess, stream: 'stdout' | 'stderr', line: string) =>
        routeNativeLine(worker, stream, line, options.log),
      exit: this.exited.bind(this),
    };
    const settings = {
      ...options,
      endpoint: () => this.transport.endpoint,
      startTimeoutMs: options.startTimeoutMs ?? 30_000,
    };
    for (let index = 0; index < options.size; index++) this.workers.push(new WorkerProcess(index, settings, events));
    this.scheduler = new Scheduler(this.workers);
  }

  /** Binds the workers' socket and starts every worker; resolves when all are ready. */
  async start(): Promise<void> {
    if (this.started || this.stopping) throw new Error('WorkerPool.start() may be called once, before stop()');
    this.started = true;
    fs.mkdirSync(this.options.runDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.options.compileCacheDir, { recursive: true });
    const delivery = { message: this.handle.bind(this), unreadable: this.unreadable.bind(this) };
    await this.transport.bind(this.options.runDir, delivery, this.options.log);
    const ready = this.workers.map(
      (worker) =>
        new Promise<void>((resolve, reject) => {
          worker.onReady = { resolve, reject };
          this.spawn(worker);
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
    const agent = this.options.agentName;
    if (this.stopping)
      return refuse('SHUTTING_DOWN', `agent ${agent} is stopping; job ${spec.label ?? spec.id} was not run`);
    if (this.jobs.has(spec.id)) return refuse('BAD_MESSAGE', `job id ${spec.id} is already in use on agent ${agent}`);
    const worker = this.scheduler.pick(spec.client, spec.options.worker, agent);
    if (typeof worker === 'string') return refuse('BAD_MESSAGE', worker);
    if (worker.startFailure !== null)
      return refuse('WORKER_CRASHED', `job ${spec.label ?? spec.id} was not run: ${worker.startFailure}`);
    const job: Job = { spec, sink, worker, state: 'queued', stop: null, timers: [] };
    this.jobs.set(spec.id, job);
    worker.queue.push(job);
    this.dispatch(worker);
  }

  /** Cancels a queued job at once, a running one by interrupt then kill; false when unknown or finished. */
  cancel(jobId: string, code: 'CANCELLED' | 'TIMEOUT' = 'CANCELLED'): boolean {
    const job = this.jobs.get(jobId);
    if (!job || job.state === 'done') return false;
    this.stopJob(job, code);
    return true;
  }

  /** Cancels the queued and running jobs of a client that went away, except those meant to outlive it; how many. */
  cancelClient(client: string): number {
    let count = 0;
    for (const job of [...this.jobs.values()]) {
      if (job.spec.client !== client || job.spec.outlivesClient || job.stop) continue;
      if (this.cancel(job.spec.id)) count++;
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
    this.scheduler.forget(client);
  }

  status(): WorkerStatus[] {
    return this.workers.map((worker) => worker.status());
  }

  /** Fails queued jobs, interrupts running ones (killed after the grace period), ends every worker process. */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  // ---- jobs ------------------------------------------------------------------------------------------------------

  private dispatch(worker: WorkerProcess): void {
    if (this.stopping || worker.state !== 'idle' || worker.running || !worker.routingId) return;
    const job = worker.queue.shift();
    if (!job) return;
    job.state = 'running';
    worker.running = job;
    worker.state = 'busy';
    if (job.spec.snapshot !== null) worker.snapshot = job.spec.snapshot;
    const { id, snapshot, code, options } = job.spec;
    this.sendTo(
      worker,
      encodeMessage({ type: 'run', job: id, snapshot, code, options } satisfies RunMessage, job.spec.args),
    );
    safely(this.options.log, () => job.sink.started?.(worker.index));
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined) job.timers.push(setTimeout(() => this.cancel(id, 'TIMEOUT'), timeoutMs));
  }

  private stopJob(job: Job, reason: CancelReason): void {
    if (job.state === 'queued') {
      const queue = job.worker.queue;
      queue.splice(queue.indexOf(job), 1);
      const message = stoppedJobMessage(reason, labelOf(job), { started: false, agent: this.options.agentName });
      this.fail(job, { code: reason, name: 'AgentError', message }, null);
      return;
    }
    if (job.stop) return; // already being stopped
    job.stop = reason;
    const worker = job.worker;
    if (worker.running !== job || !worker.child) return; // its worker is dying; the exit handler reports the job
    this.sendTo(worker, encodeMessage({ type: 'cancel', job: job.spec.id, reason } satisfies CancelMessage));
    climbCancelLadder(job, worker, this.graceMs, this.options.log);
  }

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

  private completed(
    worker: WorkerProcess,
    job: Job,
    message: Extract<FromWorker, { type: 'result' | 'error' }>,
    frames: Uint8Array[],
  ): void {
    worker.running = null;
    worker.state = 'idle';
    worker.crashStreak = 0;
    this.setInUse(worker, message.inUse);
    if (job.stop) {
      const thrown = message.type === 'error' ? message.error : undefined;
      this.fail(job, stoppedInPlaceError(job, thrown, this.options.agentName, worker.index), worker.index);
    } else if (message.type === 'result') {
      if (this.finish(job)) {
        safely(this.options.log, () => job.sink.result(frames, { worker: worker.index, elapsedMs: message.elapsedMs }));
      }
    } else {
      this.fail(job, message.error, worker.index);
    }
    this.dispatch(worker);
  }

  private setInUse(worker: WorkerProcess, snapshots: string[]): void {
    if (snapshots.length === worker.inUse.length && snapshots.every((s, i) => s === worker.inUse[i])) return;
    worker.inUse = snapshots;
    const notify = this.options.onInUseChange;
    if (notify) safely(this.options.log, () => notify(worker.index, snapshots));
  }

  // ---- messages from workers ---------------------------------------------------------------------------------------

  private sendTo(worker: WorkerProcess, frames: Uint8Array[]): void {
    const routingId = worker.routingId;
    if (!routingId) return;
    this.transport.send(routingId, frames).catch((err: unknown) => {
      // The worker went away between our check and the send; its exit handler reports its job.
      if (!this.stopping) this.options.log(`worker ${worker.index}: send failed: ${String(err)}`);
    });
  }

  /**
   * A message the pool cannot read may have been its job's result: the job fails rather than wait forever, and the
   * worker, whose state is now unknown, is restarted (a deliberate kill, not a crash).
   */
  private unreadable(worker: WorkerProcess, why: string): void {
    this.options.log(`worker ${worker.index}: bad message: ${why}`);
    const job = worker.running;
    if (!job || !worker.child) return;
    this.fail(job, unreadableError(worker.index, labelOf(job), why), worker.index);
    worker.killedFor = job;
    worker.child.kill('SIGKILL');
  }

  private handle(worker: WorkerProcess, message: FromWorker, payload: Uint8Array[]): void {
    routeWorkerMessage(worker, message, {
      log: this.options.log,
      ready: (pid, heapLimitMb) => {
        worker.ready(pid, heapLimitMb, this.now());
        this.dispatch(worker);
      },
      ended: (job, ended) => this.completed(worker, job, ended, payload),
    });
  }

  // ---- processes -------------------------------------------------------------------------------------------------

  private spawn(worker: WorkerProcess): void {
    if (this.stopping) return;
    this.transport.register(worker.spawn(), worker);
  }

  /** A worker process ended: report its job, restart it (with backoff when it keeps crashing). */
  private exited(worker: WorkerProcess, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (worker.child !== child) return;
    if (worker.routingId) this.transport.forget(worker.routingId);
    const job = worker.detachProcess();
    // Killed after the grace period: deliberate, not a crash. (A cancel's SIGINT never ends a worker: it ignores one
    // outside a job's synchronous part.)
    const killedForCancel = job !== null && worker.killedFor === job;
    const facts = worker.exitFacts(code, signal);
    const what = describeExit(facts);
    this.setInUse(worker, []);

    // Died before it ever became ready during start(): the agent cannot work, say why.
    worker.notReady(
      new Error(`worker ${worker.index} ${what} before it was ready${stderrTailText(worker.stderrTail)}`),
    );
    if (this.stopping) {
      worker.state = 'stopped';
      if (job)
        this.fail(
          job,
          stoppedError(job, this.options.agentName, `worker ${worker.index} was ended`, undefined, 'SHUTTING_DOWN'),
          worker.index,
        );
      return;
    }

    if (job) {
      const context = { facts, what, killedForCancel, graceMs: this.graceMs, agent: this.options.agentName };
      this.fail(job, exitedJobError(job, context), worker.index);
    } else {
      this.options.log(
        `worker ${worker.index} ${what} while ${worker.readyAt === null ? 'starting' : 'idle'}; restarting it`,
      );
    }

    this.restart(worker, facts, what, killedForCancel);
  }

  /** With a backoff when it keeps crashing; a worker that cannot even start fails what waits for it. */
  private restart(worker: WorkerProcess, facts: ExitFacts, what: string, deliberate: boolean): void {
    const backoff = nextRestartDelay(worker, deliberate, this.now());
    if (cannotStart(worker)) {
      const error = cannotStartError(facts, worker.crashStreak, what, backoff);
      worker.startFailure = error.message;
      for (const queued of worker.queue.splice(0)) this.fail(queued, error, worker.index);
    }
    worker.restarts++;
    worker.state = 'restarting';
    if (backoff > 0) this.options.log(`worker ${worker.index} is crash-looping; restarting in ${backoff} ms`);
    worker.timer(backoff, () => this.spawn(worker));
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    for (const worker of this.workers) {
      worker.clearTimers();
      for (const job of [...worker.queue]) this.stopJob(job, 'SHUTTING_DOWN');
      worker.notReady(new Error('the worker pool was stopped while starting'));
    }
    // Running jobs: interrupt, and give them the grace period to answer.
    const running = this.workers.filter((worker) => worker.running && worker.child);
    for (const worker of running) this.stopJob(worker.running!, 'SHUTTING_DOWN');
    const deadline = performance.now() + this.graceMs;
    while (this.workers.some((worker) => worker.running && worker.child) && performance.now() < deadline)
      await delay(10);
    await Promise.all(this.workers.map((worker) => worker.end()));
    for (const job of [...this.jobs.values()]) {
      this.fail(
        job,
        stoppedError(job, this.options.agentName, 'its worker was ended', undefined, 'SHUTTING_DOWN'),
        null,
      );
    }
    await this.transport.close();
  }
}
