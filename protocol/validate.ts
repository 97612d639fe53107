// Runtime checks for everything received from the wire: a header is parsed into a typed message only through
// these functions, never through a cast. A failure throws AgentError('BAD_MESSAGE') naming the offending field.

import { AgentError, ERROR_CODES, WireError } from './errors';
import { HASH_PATTERN, isSafeRelativePath, UNSAFE_PATH_FIX, unsafePathMessage } from './manifest';
import { AgentLimits, CallRequest, PROTOCOL_VERSION, Reply, Request } from './messages';
import { DETACHED_STATES, DetachedJobInfo, DetachedState } from './job-messages';

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

type Obj = Record<string, unknown>;

function fail(path: string, expected: string, got?: unknown): never {
  const shown = got === undefined ? 'nothing' : JSON.stringify(got)?.slice(0, 60) ?? typeof got;
  throw new AgentError('BAD_MESSAGE', `invalid message: ${path} should be ${expected}, got ${shown}`);
}

function obj(value: unknown, path: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'an object', value);
  return value as Obj;
}
function str(o: Obj, key: string, path: string, maxLength = 1024): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0) fail(`${path}.${key}`, 'a non-empty string', v);
  if (v.length > maxLength) fail(`${path}.${key}`, `at most ${maxLength} characters`, `${v.length} characters`);
  return v;
}
function optStr(o: Obj, key: string, path: string, maxLength = 1024): string | undefined {
  return o[key] === undefined ? undefined : str(o, key, path, maxLength);
}
function num(o: Obj, key: string, path: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(`${path}.${key}`, `an integer in [${min}, ${max}]`, v);
  }
  return v;
}
function optNum(o: Obj, key: string, path: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  return o[key] === undefined ? undefined : num(o, key, path, min, max);
}
function bool(o: Obj, key: string, path: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') fail(`${path}.${key}`, 'a boolean', v);
  return v;
}
function arr(o: Obj, key: string, path: string, maxLength: number): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) fail(`${path}.${key}`, 'an array', v);
  if (v.length > maxLength) {
    throw new AgentError('TOO_LARGE', `${path}.${key} has ${v.length} items; the agent accepts at most ${maxLength}`);
  }
  return v;
}

function hash(o: Obj, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string' || !HASH_PATTERN.test(v)) fail(`${path}.${key}`, 'a SHA-256 hex digest', v);
  return v;
}

/** Parses frame 0 as JSON and checks the protocol version; returns the raw object for the typed checks below. */
export function parseHeader(frame: Buffer | undefined, limits: HeaderLimits = DEFAULT_HEADER_LIMITS): Obj {
  if (!frame || frame.length === 0) fail('frame 0', 'a JSON header', undefined);
  if (frame.length > limits.maxHeaderBytes) {
    throw new AgentError('TOO_LARGE', `header of ${frame.length} bytes exceeds the bound of ${limits.maxHeaderBytes}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame.toString('utf8'));
  } catch {
    throw new AgentError('BAD_MESSAGE', 'invalid message: frame 0 is not JSON');
  }
  const header = obj(parsed, 'header');
  if (header.v !== PROTOCOL_VERSION) {
    throw new AgentError(
      'UNSUPPORTED_VERSION',
      `this side speaks protocol version ${PROTOCOL_VERSION}, the message has ${JSON.stringify(header.v)}: ` +
        'install the same tslab-remote version on the kernel and the agent',
    );
  }
  return header;
}

/** The request id if the header has a usable one, so even a rejected request gets a reply it can match. */
export function requestIdOf(header: Obj | undefined): string | null {
  const id = header?.id;
  return typeof id === 'string' && id.length > 0 && id.length <= 128 ? id : null;
}

function expectFrames(type: string, count: number, exact: number | 'atLeast1'): void {
  const ok = exact === 'atLeast1' ? count >= 1 : count === exact;
  if (!ok) {
    const wanted = exact === 'atLeast1' ? 'at least 1' : String(exact);
    fail(`${type} message`, `followed by ${wanted} binary frame(s)`, `${count}`);
  }
}

function manifest(o: Obj, limits: HeaderLimits): { snapshot: string; files: { path: string; size: number; hash: string }[] } {
  const snapshot = hash(o, 'snapshot', 'header');
  const files = arr(o, 'files', 'header', limits.maxFiles).map((item, i) => {
    const entry = obj(item, `files[${i}]`);
    const path = str(entry, 'path', `files[${i}]`, 4096);
    if (!isSafeRelativePath(path)) {
      throw new AgentError(
        'UNSAFE_ARCHIVE',
        unsafePathMessage(`files[${i}].path`, path, UNSAFE_PATH_FIX),
      );
    }
    return { path, size: num(entry, 'size', `files[${i}]`), hash: hash(entry, 'hash', `files[${i}]`) };
  });
  return { snapshot, files };
}

/** Validates a request header and its frame count (the frames after the header). */
export function validateRequest(header: Obj, frameCount: number, limits: HeaderLimits = DEFAULT_HEADER_LIMITS): Request {
  const v = PROTOCOL_VERSION;
  const id = str(header, 'id', 'header', 128);
  const type = str(header, 'type', 'header', 64);
  switch (type) {
    case 'hello': {
      expectFrames(type, frameCount, 0);
      const client = str(header, 'client', 'header', 256);
      if (header.key === undefined) return { v, type, id, client };
      const key = obj(header.key, 'header.key');
      return { v, type, id, client, key: { publicKey: str(key, 'publicKey', 'header.key', 40), proof: str(key, 'proof', 'header.key', 64) } };
    }
    case 'ping': {
      expectFrames(type, frameCount, 0);
      const resend = header.resend === undefined ? undefined : bool(header, 'resend', 'header');
      if (header.waiting === undefined) return { v, type, id, ...(resend !== undefined ? { resend } : {}) };
      const waiting = arr(header, 'waiting', 'header', 10_000).map((item, i) => {
        if (typeof item !== 'string' || item.length === 0 || item.length > 128) fail(`waiting[${i}]`, 'a job id', item);
        return item;
      });
      return { v, type, id, waiting, ...(resend !== undefined ? { resend } : {}) };
    }
    case 'status':
      expectFrames(type, frameCount, 0);
      return { v, type, id };
    case 'snapshot.check':
      expectFrames(type, frameCount, 0);
      return { v, type, id, ...manifest(header, limits) };
    case 'snapshot.upload':
      expectFrames(type, frameCount, 1);
      return { v, type, id, ...manifest(header, limits) };
    case 'call': {
      expectFrames(type, frameCount, 'atLeast1');
      const snapshot = header.snapshot === null ? null : hash(header, 'snapshot', 'header');
      const code = obj(header.code, 'header.code');
      if (code.kind !== 'source' && code.kind !== 'pickle') fail('header.code.kind', '"source" or "pickle"', code.kind);
      const filename = optStr(code, 'filename', 'header.code', 256);
      const jobCode: CallRequest['code'] =
        code.kind === 'source'
          ? { kind: 'source', source: str(code, 'source', 'header.code', limits.maxSourceBytes), ...(filename ? { filename } : {}) }
          : { kind: 'pickle', ...(filename ? { filename } : {}) };
      const options = obj(header.options ?? {}, 'header.options');
      const cwd = optStr(options, 'cwd', 'header.options', 4096);
      if (cwd !== undefined && cwd !== '.' && !isSafeRelativePath(cwd)) fail('header.options.cwd', 'a relative path', cwd);
      const detach = options.detach === undefined ? undefined : obj(options.detach, 'header.options.detach');
      const name = detach && optStr(detach, 'name', 'header.options.detach', 128);
      return {
        v,
        type,
        id,
        snapshot,
        code: jobCode,
        options: {
          timeoutMs: optNum(options, 'timeoutMs', 'header.options', 1, 2 ** 31 - 1),
          worker: optNum(options, 'worker', 'header.options', 0, 4096),
          cwd,
          ...(detach ? { detach: name === undefined ? {} : { name } } : {}),
        },
      };
    }
    case 'cancel':
    case 'attach':
    case 'job.cancel':
      expectFrames(type, frameCount, 0);
      return { v, type, id, job: str(header, 'job', 'header', 128) };
    case 'jobs':
      expectFrames(type, frameCount, 0);
      return { v, type, id };
    default:
      fail('header.type', 'a request type (hello, ping, status, snapshot.check, snapshot.upload, call, cancel, jobs, attach, job.cancel)', type);
  }
}

/**
 * Checks an error received from a peer (a reply's `error`, a worker's report): user code shapes its content, so
 * nothing is trusted. Throws BAD_MESSAGE naming the field when it is not a WireError.
 */
export function checkWireError(value: unknown, path = 'error', depth = 0): WireError {
  const o = obj(value, path);
  const code = o.code;
  if (typeof code !== 'string' || !(ERROR_CODES as readonly string[]).includes(code)) fail(`${path}.code`, 'an error code', code);
  const error: WireError = {
    code: code as WireError['code'],
    name: typeof o.name === 'string' ? o.name : 'Error',
    message: typeof o.message === 'string' ? o.message : '',
  };
  if (typeof o.stack === 'string') error.stack = o.stack;
  if (o.cause !== undefined && depth < 8) error.cause = checkWireError(o.cause, `${path}.cause`, depth + 1);
  if (o.props !== undefined) error.props = obj(o.props, `${path}.props`);
  return error;
}

function limits(o: Obj): AgentLimits {
  const keys = ['maxMessageBytes', 'maxArchiveBytes', 'maxFileBytes', 'maxSnapshotBytes', 'maxFiles', 'maxJobsPerClient'] as const;
  return Object.fromEntries(keys.map((key) => [key, num(o, key, 'agent.limits')])) as unknown as AgentLimits;
}

/** Validates a reply header on the client side: the agent is a peer, not a trusted party. */
export function validateReply(header: Obj, frameCount: number): Reply {
  const v = PROTOCOL_VERSION;
  const type = str(header, 'type', 'header', 64);
  const re = (): string => str(header, 're', 'header', 128);
  switch (type) {
    case 'welcome':
    case 'status': {
      const agent = obj(header.agent, 'header.agent');
      const info = {
        name: 'remote-agent' as const,
        version: str(agent, 'version', 'agent'),
        protocol: v,
        instance: str(agent, 'instance', 'agent'),
        hostname: str(agent, 'hostname', 'agent'),
        node: str(agent, 'node', 'agent'),
        pid: num(agent, 'pid', 'agent'),
        workers: num(agent, 'workers', 'agent'),
        limits: limits(obj(agent.limits, 'agent.limits')),
      };
      if (type === 'welcome') return { v, type, re: re(), agent: info };
      // Informational fields, shown to people: checked to be objects, not field by field.
      const workers = arr(header, 'workers', 'header', 4096).map((w, i) => obj(w, `workers[${i}]`) as never);
      const store = obj(header.store, 'header.store') as never;
      return { v, type, re: re(), agent: info, workers, store, resources: obj(header.resources, 'header.resources') as never };
    }
    case 'pong':
      return { v, type, re: re(), instance: str(header, 'instance', 'header') };
    case 'snapshot.status': {
      const missing = arr(header, 'missing', 'header', Number.MAX_SAFE_INTEGER).map((h, i) => {
        if (typeof h !== 'string' || !HASH_PATTERN.test(h)) fail(`missing[${i}]`, 'a hash', h);
        return h;
      });
      return { v, type, re: re(), snapshot: hash(header, 'snapshot', 'header'), ready: bool(header, 'ready', 'header'), missing };
    }
    case 'output': {
      const stream = header.stream;
      if (stream !== 'stdout' && stream !== 'stderr') fail('header.stream', '"stdout" or "stderr"', stream);
      const text = header.text;
      if (typeof text !== 'string') fail('header.text', 'a string', text);
      return { v, type, re: re(), stream, text };
    }
    case 'result':
      expectFrames(type, frameCount, 'atLeast1');
      return { v, type, re: re(), worker: num(header, 'worker', 'header'), elapsedMs: num(header, 'elapsedMs', 'header') };
    case 'error':
      return { v, type, re: header.re === null ? null : re(), error: checkWireError(header.error, 'header.error') };
    case 'ack':
      return { v, type, re: re() };
    case 'detached':
    case 'job':
      return { v, type, re: re(), job: detachedJob(header.job, 'header.job') };
    case 'jobs':
      return { v, type, re: re(), jobs: arr(header, 'jobs', 'header', 100_000).map((job, i) => detachedJob(job, `jobs[${i}]`)) };
    default:
      fail('header.type', 'a reply type', type);
  }
}

function nullableNum(o: Obj, key: string, path: string): number | null {
  return o[key] === null ? null : num(o, key, path);
}

function detachedJob(value: unknown, path: string): DetachedJobInfo {
  const o = obj(value, path);
  const state = o.state;
  if (!(DETACHED_STATES as readonly unknown[]).includes(state)) fail(`${path}.state`, `one of ${DETACHED_STATES.join(', ')}`, state);
  if (o.kind !== 'source' && o.kind !== 'pickle') fail(`${path}.kind`, '"source" or "pickle"', o.kind);
  if (typeof o.lastLine !== 'string') fail(`${path}.lastLine`, 'a string', o.lastLine);
  return {
    id: str(o, 'id', path, 128),
    name: str(o, 'name', path, 128),
    state: state as DetachedState,
    kind: o.kind,
    createdAt: num(o, 'createdAt', path),
    startedAt: nullableNum(o, 'startedAt', path),
    endedAt: nullableNum(o, 'endedAt', path),
    worker: nullableNum(o, 'worker', path),
    lastLine: o.lastLine,
    outputBytes: num(o, 'outputBytes', path),
    droppedBytes: num(o, 'droppedBytes', path),
    expiresAt: nullableNum(o, 'expiresAt', path),
    ...(o.error === undefined ? {} : { error: checkWireError(o.error, `${path}.error`) }),
  };
}
