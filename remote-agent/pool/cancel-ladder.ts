// Stopping a running job, step by step: the cancel message (the job's abort signal fires), SIGINT repeated while the
// worker does not acknowledge (it is stuck in the job's synchronous part), SIGKILL after the grace period.

import type { Job } from './job';
import type { WorkerProcess } from './worker-process';

const SIGINT_AFTER_MS = 100;

/**
 * A worker whose event loop is free acknowledges the cancel (and the job's abort signal fires). One that does not
 * within SIGINT_AFTER_MS is most likely stuck in the job's synchronous part: SIGINT interrupts that (breakOnSigint),
 * and is repeated in case it landed just before the worker entered it. A signal that lands anywhere else (the job
 * not started yet, or awaiting on a loaded machine) is ignored by the worker's listener; a job that never yields is
 * killed after the grace period. The timers go on the job, so they end with it.
 */
export function climbCancelLadder(job: Job, worker: WorkerProcess, graceMs: number, log: (line: string) => void): void {
  const child = worker.child;
  if (!child) return;
  const interval = Math.max(10, Math.min(SIGINT_AFTER_MS, graceMs / 4));
  const interrupt = setInterval(() => {
    if (worker.running === job && worker.child === child && !job.acknowledged) child.kill('SIGINT');
  }, interval);
  job.timers.push(interrupt);
  job.timers.push(
    setTimeout(() => {
      if (worker.running !== job || !worker.child) return;
      log(`worker ${worker.index}: job ${job.spec.id} ignored the interrupt for ${graceMs} ms; killing the worker`);
      worker.killedFor = job;
      worker.child.kill('SIGKILL');
    }, graceMs),
  );
}
