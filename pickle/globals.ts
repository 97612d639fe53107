// Standard globals: values that travel as a reference to the other side's global of the same name (`Math.max`,
// `console`, `Symbol.iterator`, `Error.prototype`) instead of by value. Only the standard names count (ECMAScript's,
// as a fresh vm context shows them, plus Node's own), never globals that user code added: those travel by value.

import * as vm from 'node:vm';

const NODE_GLOBALS = [
  'global',
  'process',
  'Buffer',
  'console',
  'setTimeout',
  'clearTimeout',
  'setInterval',
  'clearInterval',
  'setImmediate',
  'clearImmediate',
  'queueMicrotask',
  'structuredClone',
  'URL',
  'URLSearchParams',
  'TextEncoder',
  'TextDecoder',
  'AbortController',
  'AbortSignal',
  'EventTarget',
  'Event',
  'MessageChannel',
  'MessagePort',
  'MessageEvent',
  'BroadcastChannel',
  'atob',
  'btoa',
  'performance',
  'fetch',
  'Request',
  'Response',
  'Headers',
  'FormData',
  'crypto',
  'Crypto',
  'CryptoKey',
  'SubtleCrypto',
  'Blob',
  'File',
  'DOMException',
  'WebAssembly',
  'navigator',
  'Navigator',
  'PerformanceEntry',
  'PerformanceMark',
  'PerformanceMeasure',
  'PerformanceObserver',
  'PerformanceObserverEntryList',
  'PerformanceResourceTiming',
  'ReadableStream',
  'WritableStream',
  'TransformStream',
  'CompressionStream',
  'DecompressionStream',
  'TextEncoderStream',
  'TextDecoderStream',
  'WebSocket',
  'CustomEvent',
];

let standardNames: Set<string> | null = null;

/** Names of the standard globals (ECMAScript and Node), whether or not this process defines them all. */
export function standardGlobalNames(): Set<string> {
  if (!standardNames) {
    const ecma = vm.runInNewContext('Object.getOwnPropertyNames(globalThis)') as string[];
    standardNames = new Set([...ecma, ...NODE_GLOBALS]);
  }
  return standardNames;
}

let index: Map<unknown, string[]> | null = null;

/**
 * Value → path from globalThis, for the standard globals, their own data properties, their prototypes and the
 * prototypes' own data properties (`Array.prototype.map`). Built once, lazily: the standard globals do not change.
 */
export function globalIndex(): Map<unknown, string[]> {
  if (index) return index;
  const map = new Map<unknown, string[]>();
  const g = globalThis as unknown as Record<string, unknown>;
  const add = (value: unknown, path: string[]): boolean => {
    if (!((typeof value === 'object' && value !== null) || typeof value === 'function' || typeof value === 'symbol'))
      return false;
    if (map.has(value)) return false;
    map.set(value, path);
    return true;
  };
  const members = (owner: object, path: string[], depth: number): void => {
    for (const key of Reflect.ownKeys(owner)) {
      if (typeof key !== 'string') continue;
      const desc = Object.getOwnPropertyDescriptor(owner, key);
      if (!desc || !('value' in desc)) continue; // getters may compute or have side effects
      const value = desc.value as unknown;
      if (add(value, [...path, key]) && depth > 0 && (typeof value === 'function' || typeof value === 'object')) {
        members(value as object, [...path, key], depth - 1);
      }
    }
  };
  const names = [...standardGlobalNames()].filter((name) => name !== 'globalThis' && name !== 'global');
  // Two passes: the globals themselves first, so `Error` is ['Error'] and not ['AggregateError', '__proto__'...].
  for (const name of names) {
    const desc = Object.getOwnPropertyDescriptor(g, name);
    if (desc && 'value' in desc) add(desc.value, [name]);
  }
  map.set(globalThis, ['globalThis']);
  for (const name of names) {
    const desc = Object.getOwnPropertyDescriptor(g, name);
    if (!desc || !('value' in desc)) continue;
    const value = desc.value as unknown;
    if ((typeof value !== 'function' && typeof value !== 'object') || value === null) continue;
    members(value, [name], 1); // Math.max, JSON.parse, Symbol.iterator, Object.keys, Array.prototype.map
  }
  // Intrinsics that no global names directly, with their own members (`next`, `[Symbol.iterator]`).
  for (const [name, value] of Object.entries(intrinsics())) {
    if (!map.has(value)) map.set(value, [name]);
    for (const key of Reflect.ownKeys(value)) {
      const desc = Object.getOwnPropertyDescriptor(value, key);
      if (!desc || !('value' in desc)) continue;
      const segment = typeof key === 'symbol' ? wellKnownSegment(key) : key;
      if (segment !== undefined) add(desc.value, [name, segment]);
    }
  }
  index = map;
  return map;
}

/** Intrinsic objects that no global names, by the names the format uses for them. */
function intrinsics(): Record<string, object> {
  const generatorFunction = Object.getPrototypeOf(function* () {}) as { prototype: object };
  const asyncGeneratorFunction = Object.getPrototypeOf(async function* () {}) as { prototype: object };
  const generatorPrototype = generatorFunction.prototype;
  const asyncGeneratorPrototype = asyncGeneratorFunction.prototype;
  return {
    '%GeneratorFunction.prototype%': generatorFunction,
    '%AsyncFunction.prototype%': Object.getPrototypeOf(async function () {}) as object,
    '%AsyncGeneratorFunction.prototype%': asyncGeneratorFunction,
    '%GeneratorPrototype%': generatorPrototype,
    '%AsyncGeneratorPrototype%': asyncGeneratorPrototype,
    '%IteratorPrototype%': Object.getPrototypeOf(generatorPrototype) as object,
    '%AsyncIteratorPrototype%': Object.getPrototypeOf(asyncGeneratorPrototype) as object,
    '%ArrayIteratorPrototype%': Object.getPrototypeOf([][Symbol.iterator]()) as object,
    '%MapIteratorPrototype%': Object.getPrototypeOf(new Map()[Symbol.iterator]()) as object,
    '%SetIteratorPrototype%': Object.getPrototypeOf(new Set()[Symbol.iterator]()) as object,
    '%StringIteratorPrototype%': Object.getPrototypeOf(''[Symbol.iterator]()) as object,
    '%RegExpStringIteratorPrototype%': Object.getPrototypeOf(/a/[Symbol.matchAll]('')) as object,
    '%TypedArray%': Object.getPrototypeOf(Int8Array) as object,
    '%TypedArray.prototype%': Object.getPrototypeOf(Int8Array.prototype) as object,
  };
}

let intrinsicCache: Record<string, object> | null = null;

/** `@@iterator` for Symbol.iterator and the other well-known symbols (path segments are strings). */
function wellKnownSegment(key: symbol): string | undefined {
  for (const name of Object.getOwnPropertyNames(Symbol)) {
    if ((Symbol as unknown as Record<string, unknown>)[name] === key) return `@@${name}`;
  }
  return undefined;
}

/** The value a GLOBAL node's path names on this side (undefined when this side lacks it). */
export function resolveGlobalPath(path: readonly string[]): unknown {
  const [first, ...rest] = path;
  let value: unknown;
  if (first === 'globalThis') value = globalThis;
  else if (first?.startsWith('%')) value = (intrinsicCache ??= intrinsics())[first];
  else value = (globalThis as unknown as Record<string, unknown>)[first ?? ''];
  for (const key of rest) {
    if (value === null || value === undefined) return undefined;
    const prop: PropertyKey = key.startsWith('@@')
      ? ((Symbol as unknown as Record<string, symbol>)[key.slice(2)] ?? key)
      : key;
    value = (value as Record<PropertyKey, unknown>)[prop];
  }
  return value;
}
