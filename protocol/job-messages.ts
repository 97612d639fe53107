// The messages of detached jobs (docs/protocol.md, "Detached jobs"): a call with `options.detach` runs on the agent on
// its own and is answered at once with the job's description; `jobs` lists the caller's jobs, `attach` replays one's
// output and streams the rest until its result, `job.cancel` stops one. A job belongs to the key that started it.

import type { WireError } from './errors';

export const DETACHED_STATES = ['queued', 'running', 'done', 'failed', 'cancelled', 'lost'] as const;
export type DetachedState = (typeof DETACHED_STATES)[number];

/** `options.detach` of a call. */
export interface DetachOptions {
  /** A name to find the job by (`%remote_attach NAME`); the newest job of a name wins. Default: its id. */
  name?: string;
}

/** What the agent tells about a detached job. Times are milliseconds since the epoch, on the agent's clock. */
export interface DetachedJobInfo {
  id: string;
  name: string;
  state: DetachedState;
  /** How the result is encoded: as the call's code kind (a pickled call's result is pickled). */
  kind: 'source' | 'pickle';
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  worker: number | null;
  /** The last line of output, for listings. */
  lastLine: string;
  /** Output written in all, and how much of its oldest part was dropped to stay within the bound. */
  outputBytes: number;
  droppedBytes: number;
  /** When the agent forgets the job (its result and output), once it ended. */
  expiresAt: number | null;
  /** Why it failed, was cancelled or lost. */
  error?: WireError;
}

interface Base {
  v: 1;
}

/** Lists the caller's detached jobs. Answered by `jobs`. */
export interface JobsRequest extends Base {
  type: 'jobs';
  id: string;
}
/**
 * Replays a detached job's output, then streams the rest: a `job` reply first, `output` replies, then the job's
 * `result` or `error`. A `cancel` naming this request's id stops watching; the job goes on.
 */
export interface AttachRequest extends Base {
  type: 'attach';
  id: string;
  /** The job's id or name. */
  job: string;
}
/** Cancels a detached job of the caller's. Answered by `jobs` holding the job as it is after the cancel. */
export interface JobCancelRequest extends Base {
  type: 'job.cancel';
  id: string;
  job: string;
}

/** The final answer to a call with `options.detach`: the job runs on its own. */
export interface DetachedReply extends Base {
  type: 'detached';
  re: string;
  job: DetachedJobInfo;
}
/** The first reply to `attach` (not final): the job as it is now. */
export interface JobReply extends Base {
  type: 'job';
  re: string;
  job: DetachedJobInfo;
}
export interface JobsReply extends Base {
  type: 'jobs';
  re: string;
  jobs: DetachedJobInfo[];
}

export type JobRequestMessage = JobsRequest | AttachRequest | JobCancelRequest;
export type JobReplyMessage = DetachedReply | JobReply | JobsReply;
