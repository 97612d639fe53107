// The errors a job ends with when it did not finish on its own: stopped (cancel, timeout, shutdown), or its worker
// died under it, or its worker cannot start.

import type { WireError } from '../../protocol/errors';
import { crashError, ExitFacts, stderrTailText } from '../crash-report';
import { CancelReason, stoppedJobMessage } from '../worker/channel';
import { Job, labelOf } from './job';

/** The error for a job stopped by cancel/timeout/shutdown; `how` says what happened to the worker. */
export function stoppedError(
  job: Job,
  agent: string,
  how: string,
  cause?: WireError,
  reason: CancelReason = job.stop ?? 'CANCELLED',
): WireError {
  const what = stoppedJobMessage(reason, labelOf(job), { started: true, agent, timeoutMs: job.spec.options.timeoutMs });
  return { code: reason, name: 'AgentError', message: `${what}; ${how}`, ...(cause ? { cause } : {}) };
}

/**
 * The error for a job that ended after it was asked to stop, its worker kept. The bare interrupt (or our own abort
 * reason) it threw says nothing the message does not; anything else it threw while stopping is worth showing.
 */
export function stoppedInPlaceError(job: Job, thrown: WireError | undefined, agent: string, worker: number): WireError {
  const ours = thrown?.props?.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED' || thrown?.code === job.stop;
  return stoppedError(job, agent, `worker ${worker} stopped it and kept its state`, ours ? undefined : thrown);
}

export interface ExitContext {
  facts: ExitFacts;
  /** describeExit(facts) */
  what: string;
  /** The pool killed the worker because the job ignored its cancel. */
  killedForCancel: boolean;
  graceMs: number;
  agent: string;
}

/** The error for the job that was running when its worker process ended (not during shutdown). */
export function exitedJobError(job: Job, context: ExitContext): WireError {
  const { facts, what, killedForCancel, graceMs, agent } = context;
  if (!job.stop) return crashError(facts, labelOf(job), what);
  const how = killedForCancel
    ? `it did not stop within ${graceMs} ms of the interrupt, so worker ${facts.index} was killed and restarted: ` +
      'its module state (loaded modules, caches) was lost'
    : `worker ${facts.index} ${what} after the interrupt and was restarted: its module state was lost`;
  return stoppedError(job, agent, how);
}

/** For jobs queued on a worker that failed to start several times in a row. */
export function cannotStartError(facts: ExitFacts, attempts: number, what: string, retryMs: number): WireError {
  const message =
    `worker ${facts.index} cannot start (${attempts} attempts; last: ${what}); it is retried every ` +
    `${Math.round(retryMs / 1000)} s or so. Run the job again later; the agent's operator should look at its log` +
    stderrTailText(facts.stderrTail);
  return { code: 'WORKER_CRASHED', name: 'WorkerCrashed', message };
}

/** For the job whose worker sent a message the pool cannot read: the worker is restarted. */
export function unreadableError(worker: number, job: string, why: string): WireError {
  const message =
    `worker ${worker} sent a message the agent cannot read (${why}) while running job ${job}, so the job failed and ` +
    'the worker was restarted, losing its module state: run the job again; if it recurs, the job probably changes ' +
    "globals the worker relies on (JSON, Buffer), or it is a bug to report with the agent's log";
  return { code: 'INTERNAL', name: 'AgentError', message };
}
