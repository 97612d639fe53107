// Runtime checks for everything received from the wire: a header is parsed into a typed message only through these
// functions, never through a cast. Each check is the message's schema (messages.ts) compiled; a failure throws
// AgentError('BAD_MESSAGE') naming the offending field, or TOO_LARGE for a header or an array over its bound.

import { TSchema, Type } from '@sinclair/typebox';
import { TypeCheck } from '@sinclair/typebox/compiler';

import { AgentError } from './errors';
import {
  DEFAULT_HEADER_LIMITS,
  HeaderLimits,
  PROTOCOL_VERSION,
  Reply,
  REPLY_SCHEMAS,
  Request,
  requestSchemas,
} from './messages';
import { compile, decode, FrameCount, Id } from './schema';

export { checkWireError } from './wire-error';
export { DEFAULT_HEADER_LIMITS, HeaderLimits } from './messages';

type Obj = Record<string, unknown>;

/** Parses frame 0 as JSON and checks the protocol version; returns the raw object for the typed checks below. */
export function parseHeader(frame: Buffer | undefined, limits: HeaderLimits = DEFAULT_HEADER_LIMITS): Obj {
  if (!frame || frame.length === 0)
    throw new AgentError('BAD_MESSAGE', 'invalid message: frame 0 should be a JSON header, got nothing');
  if (frame.length > limits.maxHeaderBytes) {
    throw new AgentError('TOO_LARGE', `header of ${frame.length} bytes exceeds the bound of ${limits.maxHeaderBytes}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame.toString('utf8'));
  } catch {
    throw new AgentError('BAD_MESSAGE', 'invalid message: frame 0 is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AgentError(
      'BAD_MESSAGE',
      `invalid message: header should be an object, got ${JSON.stringify(parsed)?.slice(0, 60)}`,
    );
  }
  const header = parsed as Obj; // a non-array object: its fields are checked by the message's schema
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

function expectFrames(schema: TSchema, type: string, count: number): void {
  const wanted = schema.frames as FrameCount;
  if (wanted === 'atLeast1' ? count >= 1 : count === wanted) return;
  const text = wanted === 'atLeast1' ? 'at least 1' : String(wanted);
  throw new AgentError(
    'BAD_MESSAGE',
    `invalid message: ${type} message should be followed by ${text} binary frame(s), got ${count}`,
  );
}

/** The id and type fields, checked before the type picks the message's schema. */
function typeOf(header: Obj, what: 'request' | 'reply', known: ReadonlySet<string>): string {
  const type = header.type;
  if (typeof type === 'string' && known.has(type)) return type;
  const shown = type === undefined ? 'nothing' : JSON.stringify(type)?.slice(0, 60);
  throw new AgentError(
    'BAD_MESSAGE',
    `invalid message: header.type should be a ${what} type (${[...known].join(', ')}), got ${shown}`,
  );
}

function compileAll<S extends Record<string, TSchema>>(schemas: S): { [K in keyof S]: TypeCheck<S[K]> } {
  return Object.fromEntries(Object.entries(schemas).map(([type, schema]) => [type, compile(schema)])) as {
    [K in keyof S]: TypeCheck<S[K]>;
  };
}

type RequestCheckers = ReturnType<typeof compileAll<ReturnType<typeof requestSchemas>>>;
const requestCheckers = new WeakMap<HeaderLimits, RequestCheckers>();

function checkersFor(limits: HeaderLimits): RequestCheckers {
  let checkers = requestCheckers.get(limits);
  if (!checkers) requestCheckers.set(limits, (checkers = compileAll(requestSchemas(limits))));
  return checkers;
}

const ID_CHECKER = compile(Type.Object({ id: Id }));
const REQUEST_TYPES = new Set(Object.keys(requestSchemas(DEFAULT_HEADER_LIMITS)));

/** Validates a request header and its frame count (the frames after the header). */
export function validateRequest(
  header: Obj,
  frameCount: number,
  limits: HeaderLimits = DEFAULT_HEADER_LIMITS,
): Request {
  const checkers = checkersFor(limits);
  decode(ID_CHECKER, header, { where: 'header' }); // first, so that a bad id is named whatever the type
  const type = typeOf(header, 'request', REQUEST_TYPES);
  const where = { where: 'header' };
  const request = ((): Request => {
    switch (type) {
      case 'call':
        return decode(checkers.call, header, where);
      case 'hello':
        return decode(checkers.hello, header, where);
      case 'ping':
        return decode(checkers.ping, header, where);
      case 'status':
        return decode(checkers.status, header, where);
      case 'snapshot.check':
        return decode(checkers['snapshot.check'], header, where);
      case 'snapshot.upload':
        return decode(checkers['snapshot.upload'], header, where);
      case 'jobs':
        return decode(checkers.jobs, header, where);
      case 'attach':
        return decode(checkers.attach, header, where);
      case 'job.cancel':
        return decode(checkers['job.cancel'], header, where);
      default:
        return decode(checkers.cancel, header, where);
    }
  })();
  expectFrames(checkers[request.type].Schema(), type, frameCount);
  return request;
}

const REPLY_CHECKERS = compileAll(REPLY_SCHEMAS);
const REPLY_TYPES = new Set(Object.keys(REPLY_SCHEMAS));

/** Validates a reply header on the client side: the agent is a peer, not a trusted party. */
export function validateReply(header: Obj, frameCount: number): Reply {
  const type = typeOf(header, 'reply', REPLY_TYPES);
  const where = { where: 'header' };
  const c = REPLY_CHECKERS;
  const reply = ((): Reply => {
    switch (type) {
      case 'output':
        return decode(c.output, header, where);
      case 'display':
        return decode(c.display, header, where);
      case 'result':
        return decode(c.result, header, where);
      case 'welcome':
        return decode(c.welcome, header, where);
      case 'pong':
        return decode(c.pong, header, where);
      case 'status':
        return decode(c.status, header, where);
      case 'snapshot.status':
        return decode(c['snapshot.status'], header, where);
      case 'error':
        return decode(c.error, header, where);
      case 'detached':
        return decode(c.detached, header, where);
      case 'job':
        return decode(c.job, header, where);
      case 'jobs':
        return decode(c.jobs, header, where);
      default:
        return decode(c.ack, header, where);
    }
  })();
  expectFrames(c[reply.type].Schema(), type, frameCount);
  return reply;
}
