// The building blocks of the wire messages' definitions (TypeBox schemas: JSON Schema with static types), and the one
// check that turns a schema's first failure into our error codes. Each message is defined once, in messages.ts,
// agent-info.ts or the worker channel; its TypeScript type is derived from that schema (`Static`), and its runtime
// check is the schema compiled (TypeCompiler), so the two cannot drift apart.
//
// Schemas may carry two options of ours: `expected` (how an error names a valid value: "a SHA-256 hex digest") and
// `frames` (how many binary frames follow the header: 0, 1 or 'atLeast1').

import { FormatRegistry, StaticDecode, TLiteral, TSchema, TUnion, Type } from '@sinclair/typebox';
import { TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueError, ValueErrorType } from '@sinclair/typebox/errors';
import { TransformDecodeCheckError } from '@sinclair/typebox/value';

import { AgentError, ErrorCode } from './errors';
import { HASH_PATTERN, isSafeRelativePath, UNSAFE_PATH_FIX, unsafePathMessage } from './manifest';

/** A snapshot manifest's path: refused with UNSAFE_ARCHIVE, not BAD_MESSAGE, when it is not a safe relative path. */
const SNAPSHOT_PATH = 'tslab-remote-snapshot-path';
const RELATIVE_DIR = 'tslab-remote-relative-dir';
FormatRegistry.Set(SNAPSHOT_PATH, isSafeRelativePath);
FormatRegistry.Set(RELATIVE_DIR, (value) => value === '.' || isSafeRelativePath(value));

/** A non-empty string of at most `maxLength` characters. */
export const Text = (maxLength = 1024) => Type.String({ minLength: 1, maxLength });
/** Request ids, job ids. */
export const Id = Text(128);
export const Hash = Type.String({ pattern: HASH_PATTERN.source, expected: 'a SHA-256 hex digest' });
/** An integer in [minimum, maximum]. */
export const Int = (minimum = 0, maximum = Number.MAX_SAFE_INTEGER) => Type.Integer({ minimum, maximum });
export const SnapshotPath = Type.String({ minLength: 1, maxLength: 4096, format: SNAPSHOT_PATH });
export const RelativeDir = Type.String({
  minLength: 1,
  maxLength: 4096,
  format: RELATIVE_DIR,
  expected: 'a relative path',
});
export const Stream = Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]);
type Literals<T extends readonly string[]> = { -readonly [K in keyof T]: TLiteral<T[K]> };

/** One of the given strings. */
export function OneOf<const T extends readonly string[]>(
  values: T,
  options: { expected?: string } = {},
): TUnion<Literals<T>> {
  // map() cannot keep the tuple's positions in its type; Literals<T> says what it builds.
  return Type.Union(
    values.map((value) => Type.Literal(value)),
    options,
  ) as TUnion<Literals<T>>;
}
/** A JSON object whose content is not ours to check (MIME bundles, error props). */
export const JsonObject = Type.Record(Type.String(), Type.Unknown(), { expected: 'an object' });

/** How many binary frames follow a message's header. */
export type FrameCount = 0 | 1 | 'atLeast1';

/** A schema compiled once: its check runs on every message of that kind. */
export function compile<T extends TSchema>(schema: T): TypeCheck<T> {
  return TypeCompiler.Compile(schema);
}

/** What to throw for a failed check: the field path is prefixed with `where`; `code` replaces BAD_MESSAGE. */
export interface CheckContext {
  where: string;
  code?: ErrorCode;
  /** Put before the message, e.g. "worker channel: ". */
  prefix?: string;
  /** Whether the message quotes the value received (default: yes). */
  quoteValue?: boolean;
}

/**
 * The value as its schema's type, once checked (and decoded where the schema says so: wire errors). A failure throws
 * AgentError: BAD_MESSAGE naming the field, TOO_LARGE for an array over its bound, UNSAFE_ARCHIVE for an unsafe
 * snapshot path; `context.code` replaces these.
 */
export function decode<T extends TSchema>(
  checker: TypeCheck<T>,
  value: unknown,
  context: CheckContext,
): StaticDecode<T> {
  try {
    return checker.Decode(value);
  } catch (error) {
    if (error instanceof TransformDecodeCheckError)
      throw describe(innermost(firstInFieldOrder(checker, value)), context);
    throw error;
  }
}

/**
 * The error of the first field, in the order the schema lists its fields (TypeBox lists missing fields before wrong
 * ones): the field a reader of the message meets first, as the hand-written checks named it.
 */
function firstInFieldOrder(checker: TypeCheck<TSchema>, value: unknown): ValueError {
  const order = Object.keys((checker.Schema().properties ?? {}) as object);
  let best: ValueError | undefined;
  let bestRank = Infinity;
  let seen = 0;
  for (const error of checker.Errors(value)) {
    const rank = order.indexOf(error.path.split('/')[1] ?? '');
    if (best === undefined || (rank >= 0 && rank < bestRank)) [best, bestRank] = [error, rank < 0 ? Infinity : rank];
    if (++seen >= 32) break; // a hostile message may have thousands; the first few say enough
  }
  if (!best) throw new AgentError('INTERNAL', 'a value failed its schema check without an error');
  return best;
}

/** A union's error names the variant that got furthest: the one whose `type`/`kind` literal matched. */
function innermost(error: ValueError): ValueError {
  if (error.type !== ValueErrorType.Union) return error;
  for (const variant of error.errors) {
    const first = variant.First();
    if (first && first.type !== ValueErrorType.Literal && first.path !== error.path) return innermost(first);
  }
  return error;
}

function describe(error: ValueError, context: CheckContext): AgentError {
  const path = context.where + error.path.replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.');
  const prefix = context.prefix ?? '';
  const schema = error.schema;
  if (error.type === ValueErrorType.ArrayMaxItems && Array.isArray(error.value)) {
    const max = schema.maxItems as number;
    return new AgentError(
      context.code ?? 'TOO_LARGE',
      `${prefix}${path} has ${error.value.length} items; the agent accepts at most ${max}`,
    );
  }
  if (error.type === ValueErrorType.StringFormat && schema.format === SNAPSHOT_PATH) {
    return new AgentError(
      context.code ?? 'UNSAFE_ARCHIVE',
      prefix + unsafePathMessage(path, String(error.value), UNSAFE_PATH_FIX),
    );
  }
  if (error.type === ValueErrorType.StringMaxLength && typeof error.value === 'string') {
    return bad(context, path, `at most ${schema.maxLength as number} characters`, `${error.value.length} characters`);
  }
  return bad(context, path, expected(schema), error.value);
}

function bad(context: CheckContext, path: string, wanted: string, got: unknown): AgentError {
  const shown = got === undefined ? 'nothing' : (JSON.stringify(got)?.slice(0, 60) ?? typeof got);
  const quoted = context.quoteValue === false ? '' : `, got ${shown}`;
  return new AgentError(
    context.code ?? 'BAD_MESSAGE',
    `${context.prefix ?? 'invalid message: '}${path} should be ${wanted}${quoted}`,
  );
}

/** How an error message names a valid value of `schema`. */
function expected(schema: TSchema): string {
  if (typeof schema.expected === 'string') return schema.expected;
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as TSchema[]).map(expected).join(' or ');
  switch (schema.type) {
    case 'string':
      return schema.minLength ? 'a non-empty string' : 'a string';
    case 'integer':
      return `an integer in [${schema.minimum ?? '-∞'}, ${schema.maximum ?? '∞'}]`;
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'null':
      return 'null';
    case 'array':
      return 'an array';
    case 'object':
      return 'an object';
    default:
      return 'valid';
  }
}
