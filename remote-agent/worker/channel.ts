// The agent ↔ worker channel: its messages, each defined once as a schema (protocol/schema.ts) that gives both its
// type and its runtime check. Both ends use the frame layout of
// protocol/frames.ts (frame 0 = JSON header, then binary frames); values stay encoded (protocol/values.ts) from the
// client through the pool to the worker and back, so the pool never decodes a job's arguments or result.
//
//   pool → worker   run     {job, snapshot, code, options}        frames 1..n: the arguments (encodeValue)
//                   cancel  {job, reason}                          (the pool also sends SIGINT: see worker/main.ts)
//   worker → pool   ready   {pid, heapLimitMb}
//                   output  {job | null, stream, text}            in the order the job wrote
//                   display {job, display}                         rich output, in order with the output
//                   result  {job, elapsedMs, inUse}                frames 1..n: the return value (encodeValue)
//                   error   {job, error, interrupted, inUse}       interrupted: stopped by a cancel request
//                   log     {line}                                 the worker's own diagnostics
//
// A crash cannot wait for a socket: the worker writes the uncaught exception to its stderr as one line starting
// with FATAL_MARKER (synchronously, before exiting), and the pool reads it from the pipe.

import { Static, StaticDecode, TSchema, Type } from '@sinclair/typebox';
import { TypeCheck } from '@sinclair/typebox/compiler';

import { AgentError } from '../../protocol/errors';
import { DisplayContent, jobCodeSchema, JobOptions } from '../../protocol/messages';
import { compile, decode, FrameCount, Int, OneOf, Stream } from '../../protocol/schema';
import { WireErrorSchema } from '../../protocol/wire-error';

/** What the pool passes to a worker process in the environment variable WORKER_CONFIG_ENV (JSON). */
const WorkerConfigSchema = Type.Object({
  index: Int(),
  endpoint: Type.String(),
  routingId: Type.String(),
  snapshotsRoot: Type.String(),
  compileCacheDir: Type.String(),
  nodePaths: Type.Array(Type.String()),
  agentName: Type.String(),
});
export type WorkerConfig = Static<typeof WorkerConfigSchema>;

export const WORKER_CONFIG_ENV = 'TSLAB_REMOTE_WORKER_CONFIG';
export const FATAL_MARKER = '\u0000tslab-remote-fatal ';

const CANCEL_REASONS = ['CANCELLED', 'TIMEOUT', 'SHUTTING_DOWN'] as const;
export type CancelReason = (typeof CANCEL_REASONS)[number];

/** A job id: the pool made it from a checked call id. */
const Id = Type.String();

const message = <T extends string, P extends Record<string, TSchema>>(type: T, frames: FrameCount, fields: P) =>
  Type.Object({ type: Type.Literal(type), ...fields }, { frames });

/** Pool → worker. The pool builds them from an already validated call: a source's length was bounded there. */
const TO_WORKER = {
  run: message('run', 'atLeast1', {
    job: Id,
    snapshot: Type.Union([Type.String(), Type.Null()]),
    code: jobCodeSchema(Number.MAX_SAFE_INTEGER),
    options: JobOptions,
  }),
  cancel: message('cancel', 0, { job: Id, reason: OneOf(CANCEL_REASONS) }),
};
export type RunMessage = Static<(typeof TO_WORKER)['run']>;
export type CancelMessage = Static<(typeof TO_WORKER)['cancel']>;
export type ToWorker = RunMessage | CancelMessage;

/** Worker → pool. */
const FROM_WORKER = {
  /** In the order the job wrote; `job` is null for output between jobs. */
  output: message('output', 0, { job: Type.Union([Id, Type.Null()]), stream: Stream, text: Type.String() }),
  /** In the order the job wrote, between its output messages. */
  display: message('display', 0, { job: Id, display: DisplayContent }),
  result: message('result', 'atLeast1', { job: Id, elapsedMs: Int(), inUse: Type.Array(Type.String()) }),
  /** `interrupted`: stopped by a cancel request. */
  error: message('error', 0, {
    job: Id,
    error: WireErrorSchema,
    interrupted: Type.Boolean(),
    inUse: Type.Array(Type.String()),
  }),
  ready: message('ready', 0, { pid: Int(), heapLimitMb: Int() }),
  /** The worker's own diagnostics. */
  log: message('log', 0, { line: Type.String() }),
  /** The worker's event loop took the cancel: it is not stuck in synchronous code, so no SIGINT is needed. */
  'cancel-ack': message('cancel-ack', 0, { job: Id }),
};
export type OutputMessage = Static<(typeof FROM_WORKER)['output']>;
export type DisplayMessage = Static<(typeof FROM_WORKER)['display']>;
export type ResultMessage = Static<(typeof FROM_WORKER)['result']>;
export type ErrorMessage = StaticDecode<(typeof FROM_WORKER)['error']>;
export type ReadyMessage = Static<(typeof FROM_WORKER)['ready']>;
export type LogMessage = Static<(typeof FROM_WORKER)['log']>;
export type CancelAckMessage = Static<(typeof FROM_WORKER)['cancel-ack']>;
export type FromWorker =
  OutputMessage | DisplayMessage | ResultMessage | ErrorMessage | ReadyMessage | LogMessage | CancelAckMessage;

/**
 * What happened to a stopped job, in the same words wherever it is said: the pool's errors for queued and running
 * jobs, and the worker's abort reason for the job's signal.
 */
export function stoppedJobMessage(
  reason: CancelReason,
  job: string,
  context: { started: boolean; agent: string; timeoutMs?: number },
): string {
  const { started, agent, timeoutMs } = context;
  switch (reason) {
    case 'TIMEOUT':
      return started
        ? `job ${job} ran past its timeout${timeoutMs === undefined ? '' : ` of ${timeoutMs} ms`}`
        : `job ${job} timed out before it started`;
    case 'SHUTTING_DOWN':
      return `agent ${agent} is stopping; job ${job} ${started ? 'was interrupted' : 'was not run'}`;
    case 'CANCELLED':
      return started ? `job ${job} was cancelled` : `job ${job} was cancelled before it started`;
  }
}

const compileAll = <S extends Record<string, TSchema>>(schemas: S) =>
  Object.fromEntries(Object.entries(schemas).map(([type, schema]) => [type, compile(schema)])) as {
    [K in keyof S]: TypeCheck<S[K]>;
  };
const TO_WORKER_CHECKS = compileAll(TO_WORKER);
const FROM_WORKER_CHECKS = compileAll(FROM_WORKER);
const CONFIG_CHECK = compile(WorkerConfigSchema);

type Obj = Record<string, unknown>;

/** A message failing its check is our own bug (both ends are ours): INTERNAL, in the words the pool logs. */
const CHANNEL = (where: string) => ({
  where,
  code: 'INTERNAL' as const,
  prefix: 'worker channel: ',
  quoteValue: false,
});

function bad(what: string): never {
  throw new AgentError('INTERNAL', `worker channel: ${what}`);
}
function parse(frame: Uint8Array | undefined): Obj {
  if (!frame) bad('message without a header frame');
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('utf8'));
  } catch {
    bad('header is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('header is not an object');
  return value as Obj; // a non-array object: its fields are checked by the message's schema
}

/** Checks a message against the schema its type names; the payload's frame count too. */
function checked<T extends TSchema>(checker: TypeCheck<T>, o: Obj, payload: readonly Uint8Array[]): StaticDecode<T> {
  const type = String(o.type);
  const message = decode(checker, o, CHANNEL(type));
  const frames = checker.Schema().frames as FrameCount;
  if (frames === 'atLeast1' ? payload.length === 0 : payload.length !== frames)
    bad(`${type} with ${payload.length} value frames`);
  return message;
}

/** Parses a message received by the pool (the frames after the routing id). */
export function parseFromWorker(frames: readonly Uint8Array[]): { message: FromWorker; payload: Uint8Array[] } {
  const o = parse(frames[0]);
  const payload = frames.slice(1);
  const c = FROM_WORKER_CHECKS;
  switch (o.type) {
    case 'output':
      return { message: checked(c.output, o, payload), payload };
    case 'display':
      return { message: checked(c.display, o, payload), payload };
    case 'result':
      return { message: checked(c.result, o, payload), payload };
    case 'error':
      return { message: checked(c.error, o, payload), payload };
    case 'ready':
      return { message: checked(c.ready, o, payload), payload };
    case 'log':
      return { message: checked(c.log, o, payload), payload };
    case 'cancel-ack':
      return { message: checked(c['cancel-ack'], o, payload), payload };
    default:
      bad(`unknown message type ${JSON.stringify(o.type)}`);
  }
}

/**
 * The job a message names, read leniently from a message that failed its checks: the receiver then fails that job
 * instead of leaving it waiting. Null when no job id can be read.
 */
export function jobIdOf(frames: readonly Uint8Array[]): string | null {
  try {
    const job = parse(frames[0]).job;
    return typeof job === 'string' && job.length > 0 && job.length <= 128 ? job : null;
  } catch {
    return null; // not even a JSON object: nothing names a job
  }
}

/** Parses a message received by a worker. */
export function parseToWorker(frames: readonly Uint8Array[]): { message: ToWorker; payload: Uint8Array[] } {
  const o = parse(frames[0]);
  const payload = frames.slice(1);
  switch (o.type) {
    case 'run':
      return { message: checked(TO_WORKER_CHECKS.run, o, payload), payload };
    case 'cancel':
      return { message: checked(TO_WORKER_CHECKS.cancel, o, payload), payload };
    default:
      bad(`unknown message type ${JSON.stringify(o.type)}`);
  }
}

/** The worker's configuration, from the JSON the pool put in WORKER_CONFIG_ENV. */
export function parseWorkerConfig(text: string): WorkerConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    bad(`${WORKER_CONFIG_ENV} is not JSON`);
  }
  return decode(CONFIG_CHECK, value, CHANNEL(WORKER_CONFIG_ENV));
}
