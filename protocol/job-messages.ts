// The messages of detached jobs (docs/protocol.md, "Detached jobs"): a call with `options.detach` runs on the agent on
// its own and is answered at once with the job's description; `jobs` lists the caller's jobs, `attach` replays one's
// output and streams the rest until its result, `job.cancel` stops one. A job belongs to the key that started it.
// The fields are defined here; the messages are in messages.ts's tables, with the others.

import { Static, StaticDecode, Type } from '@sinclair/typebox';

import type { ReplySchemas, RequestSchemas } from './messages';
import { Id, Int, OneOf, Text } from './schema';
import { WireErrorSchema } from './wire-error';

export const DETACHED_STATES = ['queued', 'running', 'done', 'failed', 'cancelled', 'lost'] as const;
export type DetachedState = (typeof DETACHED_STATES)[number];

/**
 * On an agent with keys, who the client is: its public key, with the proof that it holds the secret
 * (common/key-proof.ts). Sent with every request about detached jobs, which belong to the key that started them.
 */
export const KeyProof = Type.Object({ publicKey: Text(40), proof: Text(64) });
export type KeyProof = Static<typeof KeyProof>;

/** `options.detach` of a call. */
export const DetachOptions = Type.Object({
  /** A name to find the job by (`%remote_attach NAME`); the newest job of a name wins. Default: its id. */
  name: Type.Optional(Text(128)),
  /** The owner's key, on an agent with keys. */
  key: Type.Optional(KeyProof),
});
export type DetachOptions = Static<typeof DetachOptions>;

const MaybeInt = Type.Union([Int(), Type.Null()]);

/** What the agent tells about a detached job. Times are milliseconds since the epoch, on the agent's clock. */
export const DetachedJobInfo = Type.Object({
  id: Id,
  name: Text(128),
  state: OneOf(DETACHED_STATES),
  /** How the result is encoded: as the call's code kind (a pickled call's result is pickled). */
  kind: Type.Union([Type.Literal('source'), Type.Literal('pickle')]),
  createdAt: Int(),
  startedAt: MaybeInt,
  endedAt: MaybeInt,
  worker: MaybeInt,
  /** The last line of output, for listings. */
  lastLine: Type.String(),
  /** Output written in all, and how much of its oldest part was dropped to stay within the bound. */
  outputBytes: Int(),
  droppedBytes: Int(),
  /** When the agent forgets the job (its result and output), once it ended. */
  expiresAt: MaybeInt,
  /** Why it failed, was cancelled or lost. */
  error: Type.Optional(WireErrorSchema),
});
export type DetachedJobInfo = StaticDecode<typeof DetachedJobInfo>;

/** Lists the caller's detached jobs. Answered by `jobs`. */
export type JobsRequest = Static<RequestSchemas['jobs']>;
/**
 * Replays a detached job's output, then streams the rest: a `job` reply first, `output` replies, then the job's
 * `result` or `error`. A `cancel` naming this request's id stops watching; the job goes on.
 */
export type AttachRequest = Static<RequestSchemas['attach']>;
/** Cancels a detached job of the caller's. Answered by `jobs` holding the job as it is after the cancel. */
export type JobCancelRequest = Static<RequestSchemas['job.cancel']>;

/** The final answer to a call with `options.detach`: the job runs on its own. */
export type DetachedReply = StaticDecode<ReplySchemas['detached']>;
/** The first reply to `attach` (not final): the job as it is now. */
export type JobReply = StaticDecode<ReplySchemas['job']>;
export type JobsReply = StaticDecode<ReplySchemas['jobs']>;
