// The agent ↔ worker channel: message types and their runtime checks. Both ends use the frame layout of
// protocol/frames.ts (frame 0 = JSON header, then binary frames); values stay encoded (protocol/values.ts) from the
// client through the pool to the worker and back, so the pool never decodes a job's arguments or result.
//
//   pool → worker   run     {job, snapshot, code, options}        frames 1..n: the arguments (encodeValue)
//                   cancel  {job, reason}                          (the pool also sends SIGINT: see worker/main.ts)
//   worker → pool   ready   {pid, heapLimitMb}
//                   output  {job | null, stream, text}            in the order the job wrote
//                   result  {job, elapsedMs, inUse}                frames 1..n: the return value (encodeValue)
//                   error   {job, error, interrupted, inUse}       interrupted: stopped by a cancel request
//                   log     {line}                                 the worker's own diagnostics
//
// A crash cannot wait for a socket: the worker writes the uncaught exception to its stderr as one line starting
// with FATAL_MARKER (synchronously, before exiting), and the pool reads it from the pipe.

import { AgentError, WireError } from '../../protocol/errors';
import type { JobCode, JobOptions } from '../../protocol/messages';
import { checkWireError } from '../../protocol/validate';

/** What the pool passes to a worker process in the environment variable WORKER_CONFIG_ENV (JSON). */
export interface WorkerConfig {
  index: number;
  endpoint: string;
  routingId: string;
  snapshotsRoot: string;
  compileCacheDir: string;
  nodePaths: string[];
  agentName: string;
}

export const WORKER_CONFIG_ENV = 'TSLAB_REMOTE_WORKER_CONFIG';
export const FATAL_MARKER = '\u0000tslab-remote-fatal ';

export interface RunMessage {
  type: 'run';
  job: string;
  snapshot: string | null;
  code: JobCode;
  options: JobOptions;
}
export type CancelReason = 'CANCELLED' | 'TIMEOUT' | 'SHUTTING_DOWN';
export interface CancelMessage {
  type: 'cancel';
  job: string;
  reason: CancelReason;
}
export type ToWorker = RunMessage | CancelMessage;

/**
 * What happened to a stopped job, in the same words wherever it is said: the pool's errors for queued and running
 * jobs, and the worker's abort reason for the job's signal.
 */
export function stoppedJobMessage(reason: CancelReason, job: string, context: { started: boolean; agent: string; timeoutMs?: number }): string {
  const { started, agent, timeoutMs } = context;
  switch (reason) {
    case 'TIMEOUT':
      return started ? `job ${job} ran past its timeout${timeoutMs === undefined ? '' : ` of ${timeoutMs} ms`}` : `job ${job} timed out before it started`;
    case 'SHUTTING_DOWN':
      return `agent ${agent} is stopping; job ${job} ${started ? 'was interrupted' : 'was not run'}`;
    case 'CANCELLED':
      return started ? `job ${job} was cancelled` : `job ${job} was cancelled before it started`;
  }
}

export interface ReadyMessage {
  type: 'ready';
  pid: number;
  heapLimitMb: number;
}
export interface OutputMessage {
  type: 'output';
  job: string | null;
  stream: 'stdout' | 'stderr';
  text: string;
}
export interface ResultMessage {
  type: 'result';
  job: string;
  elapsedMs: number;
  inUse: string[];
}
export interface ErrorMessage {
  type: 'error';
  job: string;
  error: WireError;
  interrupted: boolean;
  inUse: string[];
}
export interface LogMessage {
  type: 'log';
  line: string;
}
/** The worker's event loop took the cancel: it is not stuck in synchronous code, so no SIGINT is needed. */
export interface CancelAckMessage {
  type: 'cancel-ack';
  job: string;
}
export type FromWorker = ReadyMessage | OutputMessage | ResultMessage | ErrorMessage | LogMessage | CancelAckMessage;

type Obj = Record<string, unknown>;

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
  return value as Obj;
}
function str(o: Obj, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') bad(`${String(o.type)}.${key} should be a string`);
  return v;
}
function int(o: Obj, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${String(o.type)}.${key} should be a number`);
  return v;
}
function strings(o: Obj, key: string): string[] {
  const v = o[key];
  if (!Array.isArray(v) || !v.every((s): s is string => typeof s === 'string')) bad(`${String(o.type)}.${key} should be strings`);
  return v;
}
function stream(o: Obj): 'stdout' | 'stderr' {
  const v = o.stream;
  if (v !== 'stdout' && v !== 'stderr') bad('output.stream should be stdout or stderr');
  return v;
}

/** Parses a message received by the pool (the frames after the routing id). */
export function parseFromWorker(frames: readonly Uint8Array[]): { message: FromWorker; payload: Uint8Array[] } {
  const o = parse(frames[0]);
  const payload = frames.slice(1);
  switch (o.type) {
    case 'ready':
      return { message: { type: 'ready', pid: int(o, 'pid'), heapLimitMb: int(o, 'heapLimitMb') }, payload };
    case 'output':
      return {
        message: { type: 'output', job: o.job === null ? null : str(o, 'job'), stream: stream(o), text: str(o, 'text') },
        payload,
      };
    case 'result':
      if (payload.length === 0) bad('result without value frames');
      return { message: { type: 'result', job: str(o, 'job'), elapsedMs: int(o, 'elapsedMs'), inUse: strings(o, 'inUse') }, payload };
    case 'error':
      return {
        message: {
          type: 'error',
          job: str(o, 'job'),
          error: checkWireError(o.error),
          interrupted: o.interrupted === true,
          inUse: strings(o, 'inUse'),
        },
        payload,
      };
    case 'log':
      return { message: { type: 'log', line: str(o, 'line') }, payload };
    case 'cancel-ack':
      return { message: { type: 'cancel-ack', job: str(o, 'job') }, payload };
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

/** Parses a message received by a worker. The pool built it from an already validated call, so checks are light. */
export function parseToWorker(frames: readonly Uint8Array[]): { message: ToWorker; payload: Uint8Array[] } {
  const o = parse(frames[0]);
  const payload = frames.slice(1);
  switch (o.type) {
    case 'run': {
      const code = o.code as Obj | undefined;
      const isSource = code?.kind === 'source' && typeof code.source === 'string';
      if (!code || (!isSource && code.kind !== 'pickle')) bad('run.code should be source code or a pickled call');
      const filename = code.filename === undefined ? undefined : str(code, 'filename');
      const options = (typeof o.options === 'object' && o.options !== null ? o.options : {}) as JobOptions;
      const snapshot = o.snapshot === null ? null : str(o, 'snapshot');
      const message: RunMessage = {
        type: 'run',
        job: str(o, 'job'),
        snapshot,
        code: isSource
          ? { kind: 'source', source: code.source as string, ...(filename !== undefined ? { filename } : {}) }
          : { kind: 'pickle', ...(filename !== undefined ? { filename } : {}) },
        options,
      };
      return { message, payload };
    }
    case 'cancel': {
      const reason = o.reason === 'TIMEOUT' || o.reason === 'SHUTTING_DOWN' ? o.reason : 'CANCELLED';
      return { message: { type: 'cancel', job: str(o, 'job'), reason }, payload };
    }
    default:
      bad(`unknown message type ${JSON.stringify(o.type)}`);
  }
}
