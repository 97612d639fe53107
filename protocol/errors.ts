// Failures travel as data: every error that crosses the wire has a stable `code` from this one union, so callers
// (and tests) branch on the code and show the prose to people.

export const ERROR_CODES = [
  'BAD_MESSAGE', // the message could not be decoded or failed validation
  'UNSUPPORTED_VERSION', // the peer speaks another protocol version
  'TOO_LARGE', // a bound (message, manifest, archive, file count) was exceeded
  'UNSAFE_ARCHIVE', // an archive entry would escape the snapshot or is not a regular file
  'HASH_MISMATCH', // uploaded bytes do not match the manifest
  'FILES_MISSING', // an upload lacks files the agent does not hold
  'SNAPSHOT_MISSING', // a call names a snapshot the agent does not hold
  'DISK_FULL', // the agent's workdir ran out of space while storing a snapshot; nothing half-made was kept
  'REMOTE_EXCEPTION', // the user's code threw
  'UNPICKLABLE', // a value cannot travel (named with its path), or a pickled call cannot be rebuilt
  'MODULE_NOT_INSTALLED', // a bare import is not installed on the agent
  'WORKER_CRASHED', // the worker process died while running the job
  'CANCELLED', // the job was cancelled by its client
  'TIMEOUT', // the job ran past its timeout
  'AGENT_UNREACHABLE', // the client got no answer or heartbeat from the agent in time
  'AGENT_RESTARTED', // the agent answering is not the one that took the job
  'JOB_UNKNOWN', // a client asks for a job the agent has no record of (it never arrived, or its result expired)
  'AUTH_FAILED', // the CURVE handshake failed: the agent refused our key, or we hold the wrong agent key
  'SHUTTING_DOWN', // the agent is stopping
  'CLIENT_CLOSED', // the local client was closed with requests pending
  'INTERNAL', // a bug in the agent: the message says where
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** An error as it travels: JSON-safe, recursive through `cause`. */
export interface WireError {
  code: ErrorCode;
  name: string;
  message: string;
  stack?: string;
  cause?: WireError;
  /** Own enumerable properties of the original error, made JSON-safe. */
  props?: Record<string, unknown>;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/** An error raised by our own code with a wire code attached; converts to a WireError as is. */
export class AgentError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AgentError';
  }
}

/** The client-side view of a failure reported by the agent (or by the client's own checks). */
export class RemoteError extends Error {
  readonly code: ErrorCode;
  readonly remoteName: string;
  readonly remoteStack?: string;
  readonly props: Record<string, unknown>;

  constructor(wire: WireError) {
    super(wire.message, wire.cause ? { cause: new RemoteError(wire.cause) } : undefined);
    this.name = wire.code === 'REMOTE_EXCEPTION' ? `Remote${wire.name}` : `RemoteError[${wire.code}]`;
    this.code = wire.code;
    this.remoteName = wire.name;
    this.remoteStack = wire.stack;
    this.props = wire.props ?? {};
    // Show the remote frames: they are what the user needs to find the bug.
    if (wire.stack) this.stack = `${this.name}: ${wire.message}\n${stackFrames(wire.stack)}`;
  }
}

function stackFrames(stack: string): string {
  return stack
    .split('\n')
    .filter((line) => /^\s+at /.test(line))
    .join('\n');
}

const OMITTED_PROPS = new Set(['name', 'message', 'stack', 'cause']);

/** Converts anything thrown into a WireError; `fallback` is the code for errors that carry none of ours. */
export function toWireError(thrown: unknown, fallback: ErrorCode = 'INTERNAL', depth = 0): WireError {
  if (!(thrown instanceof Error)) {
    return { code: fallback, name: typeof thrown, message: describeThrown(thrown) };
  }
  const code = thrown instanceof AgentError ? thrown.code : fallback;
  const wire: WireError = { code, name: thrown.name, message: thrown.message };
  if (thrown.stack) wire.stack = thrown.stack;
  if (thrown.cause !== undefined && depth < 8) wire.cause = toWireError(thrown.cause, fallback, depth + 1);
  const props: Record<string, unknown> = {};
  for (const key of Object.keys(thrown)) {
    if (!OMITTED_PROPS.has(key)) props[key] = jsonSafe((thrown as unknown as Record<string, unknown>)[key]);
  }
  if (Object.keys(props).length > 0) wire.props = props;
  return wire;
}

function describeThrown(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return `non-Error value thrown: ${JSON.stringify(value) ?? String(value)}`;
  } catch {
    return `non-Error value thrown: ${String(value)}`;
  }
}

/** A JSON round trip that never throws: cycles, BigInts and functions become descriptive strings. */
export function jsonSafe(value: unknown): unknown {
  try {
    const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
    return text === undefined ? String(value) : JSON.parse(text);
  } catch {
    return String(value);
  }
}
