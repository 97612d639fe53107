// The hand-written checks protocol/validate.ts had before its messages became schemas (commit f079cdb), trimmed to
// the hot path's messages (a call's header, an output and a result reply): bench/validate.ts's baseline.

import { AgentError } from '../../protocol/errors';
import { HASH_PATTERN, isSafeRelativePath } from '../../protocol/manifest';
import { CallRequest, OutputReply, PROTOCOL_VERSION, ResultReply } from '../../protocol/messages';

type Obj = Record<string, unknown>;

function fail(path: string, expected: string, got?: unknown): never {
  const shown = got === undefined ? 'nothing' : (JSON.stringify(got)?.slice(0, 60) ?? typeof got);
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
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    fail(`${path}.${key}`, `an integer in [${min}, ${max}]`, v);
  return v;
}
function optNum(o: Obj, key: string, path: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  return o[key] === undefined ? undefined : num(o, key, path, min, max);
}
function hash(o: Obj, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string' || !HASH_PATTERN.test(v)) fail(`${path}.${key}`, 'a SHA-256 hex digest', v);
  return v;
}

export function handCall(header: Obj, frameCount: number, maxSourceBytes = 8 * 1024 * 1024): CallRequest {
  const id = str(header, 'id', 'header', 128);
  const type = str(header, 'type', 'header', 64);
  if (type !== 'call') fail('header.type', 'call', type);
  if (frameCount < 1) fail('call message', 'followed by at least 1 binary frame(s)', `${frameCount}`);
  const snapshot = header.snapshot === null ? null : hash(header, 'snapshot', 'header');
  const code = obj(header.code, 'header.code');
  if (code.kind !== 'source' && code.kind !== 'pickle') fail('header.code.kind', '"source" or "pickle"', code.kind);
  const filename = optStr(code, 'filename', 'header.code', 256);
  const jobCode: CallRequest['code'] =
    code.kind === 'source'
      ? {
          kind: 'source',
          source: str(code, 'source', 'header.code', maxSourceBytes),
          ...(filename ? { filename } : {}),
        }
      : { kind: 'pickle', ...(filename ? { filename } : {}) };
  const options = obj(header.options ?? {}, 'header.options');
  const cwd = optStr(options, 'cwd', 'header.options', 4096);
  if (cwd !== undefined && cwd !== '.' && !isSafeRelativePath(cwd)) fail('header.options.cwd', 'a relative path', cwd);
  const timeoutMs = optNum(options, 'timeoutMs', 'header.options', 1, 2 ** 31 - 1);
  const worker = optNum(options, 'worker', 'header.options', 0, 4096);
  return {
    v: PROTOCOL_VERSION,
    type,
    id,
    snapshot,
    code: jobCode,
    options: {
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(worker !== undefined ? { worker } : {}),
      ...(cwd !== undefined ? { cwd } : {}),
    },
  };
}

export function handOutput(header: Obj): OutputReply {
  const re = str(header, 're', 'header', 128);
  const stream = header.stream;
  if (stream !== 'stdout' && stream !== 'stderr') fail('header.stream', '"stdout" or "stderr"', stream);
  const text = header.text;
  if (typeof text !== 'string') fail('header.text', 'a string', text);
  return { v: PROTOCOL_VERSION, type: 'output', re, stream, text };
}

export function handResult(header: Obj, frameCount: number): ResultReply {
  if (frameCount < 1) fail('result message', 'followed by at least 1 binary frame(s)', `${frameCount}`);
  return {
    v: PROTOCOL_VERSION,
    type: 'result',
    re: str(header, 're', 'header', 128),
    worker: num(header, 'worker', 'header'),
    elapsedMs: num(header, 'elapsedMs', 'header'),
  };
}
