// The wire protocol's messages, each defined once as a schema (schema.ts): its TypeScript type is derived from the
// schema, and validate.ts checks received messages against the same schema. `docs/protocol.md` describes each one
// with its frames and an example.
//
// Every ZeroMQ message is: frame 0 = header (UTF-8 JSON, one of the types below), then binary frames whose meaning
// the header's type fixes (the schema's `frames` option says how many). Large buffers always travel as frames of
// their own, never inside the header.

import { Static, StaticDecode, TSchema, Type } from '@sinclair/typebox';

import { AgentInfo, Resources, StoreStats, Version, WorkerStatus } from './agent-info';
import { DetachedJobInfo, DetachOptions, KeyProof } from './job-messages';
import { WireErrorSchema } from './wire-error';
import { Hash, Id, Int, JsonObject, RelativeDir, SnapshotPath, Stream, Text } from './schema';

export * from './agent-info';

/** Bounds on what a header may hold, so a hostile message cannot make the agent allocate without limit. */
export interface HeaderLimits {
  maxHeaderBytes: number;
  maxFiles: number;
  maxSourceBytes: number;
}

export const DEFAULT_HEADER_LIMITS: HeaderLimits = {
  maxHeaderBytes: 16 * 1024 * 1024,
  maxFiles: 100_000,
  maxSourceBytes: 8 * 1024 * 1024,
};

/** One file of a snapshot: a safe relative POSIX path, its size and its content hash (see manifest.ts). */
export const ManifestEntry = Type.Object({ path: SnapshotPath, size: Int(), hash: Hash });
export type ManifestEntry = Static<typeof ManifestEntry>;

/**
 * Rich output a job made through tslab's display API (`tslab.display.html(...)`, `newDisplay()`): the content of a
 * Jupyter display_data or update_display_data message.
 */
export const DisplayContent = Type.Object({
  /** MIME type → representation, e.g. {"text/html": "<b>hi</b>"}. */
  data: JsonObject,
  metadata: JsonObject,
  /** The display's id, when it can be updated later (`newDisplay()`). */
  displayId: Type.Union([Text(256), Type.Null()]),
  /** This replaces the earlier display with the same id instead of adding one. */
  update: Type.Boolean(),
});
export type DisplayContent = Static<typeof DisplayContent>;

export const jobCodeSchema = (maxSourceBytes: number) =>
  Type.Union(
    [
      Type.Object({ kind: Type.Literal('source'), source: Text(maxSourceBytes), filename: Type.Optional(Text(256)) }),
      Type.Object({ kind: Type.Literal('pickle'), filename: Type.Optional(Text(256)) }),
    ],
    { expected: 'source code ({kind: "source", source}) or a pickled call ({kind: "pickle"})' },
  );
/**
 * What a job runs. `source`: a JavaScript function expression, called with the arguments (frames: a value).
 * `pickle`: the frames hold a pickled call, `[function, ...arguments]` (pickle/); the result comes back
 * pickled too. `filename` names the job's file in remote stacks.
 */
export type JobCode = Static<ReturnType<typeof jobCodeSchema>>;

export const JobOptions = Type.Object({
  /** Cancel the job after this many milliseconds. */
  timeoutMs: Type.Optional(Int(1, 2 ** 31 - 1)),
  /** Run on this worker (index) instead of the client's sticky worker. */
  worker: Type.Optional(Int(0, 4096)),
  /** Working directory of the job, relative to the snapshot root. */
  cwd: Type.Optional(RelativeDir),
  /** Run on the agent on its own, outliving this client (job-messages.ts). */
  detach: Type.Optional(DetachOptions),
});
export type JobOptions = Static<typeof JobOptions>;

// ---- client → agent --------------------------------------------------------------------------------------------

const request = <T extends string, P extends Record<string, TSchema>>(type: T, frames: 0 | 1 | 'atLeast1', fields: P) =>
  Type.Object({ v: Version, type: Type.Literal(type), id: Id, ...fields }, { frames });

/** The request schemas for the given header bounds (the manifest's file count, a call's source length). */
export function requestSchemas(limits: HeaderLimits) {
  const manifest = { snapshot: Hash, files: Type.Array(ManifestEntry, { maxItems: limits.maxFiles }) };
  return {
    hello: request('hello', 0, {
      client: Text(256),
      /** On an agent with keys: the client's public key, with the proof that it holds the secret (common/key-proof.ts). */
      key: Type.Optional(KeyProof),
    }),
    /**
     * `waiting`: ids of the calls this client still awaits (the agent forgets the kept final replies of the others).
     * `resend`: the client has just reconnected: the agent re-sends the kept final replies of the awaited calls, and
     * answers JOB_UNKNOWN for an awaited call it has no record of.
     */
    ping: request('ping', 0, {
      waiting: Type.Optional(Type.Array(Id, { maxItems: 10_000, expected: 'job ids' })),
      resend: Type.Optional(Type.Boolean()),
    }),
    status: request('status', 0, {}),
    /** "Which of these files do you lack?" The agent materializes the snapshot at once when it lacks none. */
    'snapshot.check': request('snapshot.check', 0, manifest),
    /** Frame 1: a zip archive holding the missing files under their manifest paths. */
    'snapshot.upload': request('snapshot.upload', 1, manifest),
    /** Frames 1..n: the arguments, encoded by values.ts (body, then out-of-band buffers). `id` is the job id. */
    call: request('call', 'atLeast1', {
      snapshot: Type.Union([Hash, Type.Null()]),
      code: jobCodeSchema(limits.maxSourceBytes),
      options: JobOptions,
    }),
    cancel: request('cancel', 0, { job: Id }),
    // Detached jobs: job-messages.ts.
    jobs: request('jobs', 0, { key: Type.Optional(KeyProof) }),
    attach: request('attach', 0, { job: Id, key: Type.Optional(KeyProof) }),
    'job.cancel': request('job.cancel', 0, { job: Id, key: Type.Optional(KeyProof) }),
  };
}

export type RequestSchemas = ReturnType<typeof requestSchemas>;
export type HelloRequest = Static<RequestSchemas['hello']>;
export type PingRequest = Static<RequestSchemas['ping']>;
export type StatusRequest = Static<RequestSchemas['status']>;
export type SnapshotCheckRequest = Static<RequestSchemas['snapshot.check']>;
export type SnapshotUploadRequest = Static<RequestSchemas['snapshot.upload']>;
export type CallRequest = Static<RequestSchemas['call']>;
export type CancelRequest = Static<RequestSchemas['cancel']>;
export type Request = { [K in keyof RequestSchemas]: Static<RequestSchemas[K]> }[keyof RequestSchemas];

// ---- agent → client --------------------------------------------------------------------------------------------

const reply = <T extends string, P extends Record<string, TSchema>>(type: T, frames: 0 | 'atLeast1', fields: P) =>
  Type.Object({ v: Version, type: Type.Literal(type), re: Id, ...fields }, { frames });

export const REPLY_SCHEMAS = {
  welcome: reply('welcome', 0, { agent: AgentInfo }),
  pong: reply('pong', 0, { instance: Text() }),
  status: reply('status', 0, {
    agent: AgentInfo,
    workers: Type.Array(WorkerStatus, { maxItems: 4096 }),
    store: StoreStats,
    resources: Resources,
  }),
  'snapshot.status': reply('snapshot.status', 0, {
    snapshot: Hash,
    ready: Type.Boolean(),
    /** Content hashes the agent lacks; empty when ready. */
    missing: Type.Array(Hash),
  }),
  /** Streamed while a job runs, in the order the job wrote. */
  output: reply('output', 0, { stream: Stream, text: Type.String() }),
  /** Streamed like output, in order with it: rich output. What a job prints is always text, never a display. */
  display: reply('display', 0, { display: DisplayContent }),
  /** Frames 1..n: the job's return value, encoded by values.ts. */
  result: reply('result', 'atLeast1', { worker: Int(), elapsedMs: Int() }),
  /** `re`: the request id, or null when the request was too malformed to have one. */
  error: Type.Object(
    { v: Version, type: Type.Literal('error'), re: Type.Union([Id, Type.Null()]), error: WireErrorSchema },
    { frames: 0 },
  ),
  ack: reply('ack', 0, {}),
  // Detached jobs: job-messages.ts.
  detached: reply('detached', 0, { job: DetachedJobInfo }),
  job: reply('job', 0, { job: DetachedJobInfo }),
  jobs: reply('jobs', 0, { jobs: Type.Array(DetachedJobInfo, { maxItems: 100_000 }) }),
};

export type ReplySchemas = typeof REPLY_SCHEMAS;
export type WelcomeReply = StaticDecode<ReplySchemas['welcome']>;
export type PongReply = StaticDecode<ReplySchemas['pong']>;
export type StatusReply = StaticDecode<ReplySchemas['status']>;
export type SnapshotStatusReply = StaticDecode<ReplySchemas['snapshot.status']>;
export type OutputReply = StaticDecode<ReplySchemas['output']>;
export type DisplayReply = StaticDecode<ReplySchemas['display']>;
export type ResultReply = StaticDecode<ReplySchemas['result']>;
export type ErrorReply = StaticDecode<ReplySchemas['error']>;
export type AckReply = StaticDecode<ReplySchemas['ack']>;
export type Reply = { [K in keyof ReplySchemas]: StaticDecode<ReplySchemas[K]> }[keyof ReplySchemas];

/** A message as code builds it: the sender adds the version. */
export type Unversioned<T> = T extends unknown ? Omit<T, 'v'> : never;

/** Replies after which no more replies come for the same request. */
export const FINAL_REPLIES: ReadonlySet<Reply['type']> = new Set([
  'welcome',
  'pong',
  'status',
  'snapshot.status',
  'result',
  'error',
  'ack',
  'detached',
  'jobs',
]);
