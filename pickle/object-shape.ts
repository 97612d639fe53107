// Facts about an object's shape that the encoder records: which built-in kind it is, property attributes, integrity
// level, whether a prototype belongs to a constructor, array indices, a readable Map key for error paths.

import * as util from 'node:util';

import { DescFlags, Integrity, Kind, Node } from './format';
import type { ModuleIndex, ModuleLocation } from './modules';

/**
 * The node of a built-in kind whose state is not in its properties: `node` to fill with its prototype and properties
 * (Date, RegExp, Map, Set, Error, boxed primitive), `whole` when the node says it all (a plain URL), or why it cannot
 * be pickled. Undefined for any other object.
 */
export function builtinShape(
  obj: object,
): { node: Node; defaultProto: object | null } | { whole: Node } | { refusal: string; hint: string } | undefined {
  const t = util.types;
  const filled = (node: Node, defaultProto: object | null): { node: Node; defaultProto: object | null } => ({
    node,
    defaultProto,
  });
  if (t.isDate(obj)) return filled([Kind.DATE, undefined, undefined, Integrity.NONE, obj.getTime()], Date.prototype);
  if (t.isRegExp(obj))
    return filled([Kind.REGEXP, undefined, undefined, Integrity.NONE, obj.source, obj.flags], RegExp.prototype);
  if (t.isMap(obj)) return filled([Kind.MAP, undefined, undefined, Integrity.NONE, undefined], Map.prototype);
  if (t.isSet(obj)) return filled([Kind.SET, undefined, undefined, Integrity.NONE, undefined], Set.prototype);
  if (t.isNativeError(obj)) return filled([Kind.ERROR, undefined, undefined, Integrity.NONE], Error.prototype);
  if (t.isBoxedPrimitive(obj)) {
    const primitive = (obj as { valueOf(): unknown }).valueOf();
    if (typeof primitive === 'symbol')
      return { refusal: 'a boxed Symbol cannot be pickled', hint: 'Pass the symbol itself' };
    const proto = Object.getPrototypeOf(Object(primitive)) as object;
    return filled([Kind.BOXED, undefined, undefined, Integrity.NONE, primitive], proto);
  }
  if (obj instanceof URL && Object.getPrototypeOf(obj) === URL.prototype) return { whole: [Kind.URL, obj.href] };
  if (obj instanceof URLSearchParams && Object.getPrototypeOf(obj) === URLSearchParams.prototype)
    return { whole: [Kind.URL_SEARCH_PARAMS, obj.toString()] };
  return undefined;
}

/** A CommonJS `require` (or tslab's Proxy over one): it travels as the other side's require. */
export function isRequireFunction(fn: object): boolean {
  try {
    const candidate = fn as { resolve?: unknown; cache?: unknown };
    return typeof candidate.resolve === 'function' && candidate.cache === require.cache;
  } catch {
    return false;
  }
}

export function isIndex(name: string): boolean {
  return /^(0|[1-9][0-9]*)$/.test(name) && Number(name) < 2 ** 32 - 1;
}

export function describeKey(key: unknown): string {
  if (typeof key === 'string') return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key);
  if (typeof key === 'number' || typeof key === 'boolean' || typeof key === 'bigint') return String(key);
  if (typeof key === 'symbol') return key.toString();
  return '…';
}

export function descFlags(desc: PropertyDescriptor): number {
  return (
    (desc.enumerable ? DescFlags.ENUMERABLE : 0) |
    (desc.configurable ? DescFlags.CONFIGURABLE : 0) |
    (desc.writable ? DescFlags.WRITABLE : 0)
  );
}

export function integrity(obj: object): Integrity {
  if (Object.isExtensible(obj)) return Integrity.NONE;
  if (Object.isFrozen(obj)) return Integrity.FROZEN;
  if (Object.isSealed(obj)) return Integrity.SEALED;
  return Integrity.NON_EXTENSIBLE;
}

/** The constructor that owns `proto` as its `prototype`, when `proto` is a class or constructor prototype. */
export function ownConstructor(proto: object): Function | undefined {
  const desc = Object.getOwnPropertyDescriptor(proto, 'constructor');
  const ctor = desc && 'value' in desc ? (desc.value as unknown) : undefined;
  if (typeof ctor !== 'function') return undefined;
  const own = Object.getOwnPropertyDescriptor(ctor, 'prototype');
  return own && own.value === proto ? ctor : undefined;
}

/**
 * The module m when `obj` is TypeScript's __importStar(m) of a CommonJS module m (getters over m's exports plus
 * `default: m`), so that it travels as a reference to m.
 */
export function importStarOf(obj: object, modules: ModuleIndex): ModuleLocation | undefined {
  if (Object.getPrototypeOf(obj) !== Object.prototype) return undefined;
  const desc = Object.getOwnPropertyDescriptor(obj, 'default');
  if (!desc || !('value' in desc)) return undefined;
  const location = modules.lookup(desc.value);
  if (!location || location.path.length !== 0) return undefined;
  for (const key of Object.getOwnPropertyNames(obj)) {
    if (key === 'default') continue;
    const own = Object.getOwnPropertyDescriptor(obj, key);
    if (!own || !own.get) return undefined;
  }
  return location;
}

/**
 * An array's own keys besides its elements and length (a RegExp match's `index`, `groups`, symbols). Names are only
 * looked for on arrays of modest length, since listing the names of a large array creates one string per element.
 */
export function arrayExtraKeys(arr: unknown[]): (string | symbol)[] {
  const names =
    arr.length <= 100_000 ? Object.getOwnPropertyNames(arr).filter((name) => name !== 'length' && !isIndex(name)) : [];
  return [...names, ...Object.getOwnPropertySymbols(arr)];
}
