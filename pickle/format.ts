// The pickle format (version 1). A pickle is the frames of protocol/values.ts (a v8-serialized body, then
// out-of-band buffers) whose value is a *shadow graph* of the pickled value:
//
//   header := [MAGIC, VERSION, rootSlot, functions, table]
//             functions: refs of every FUNCTION node; table: every node, refs index it
//   slot   := undefined | null | boolean | number | string                (the value itself)
//           | ref                                                         (a bigint: index of a node in the table)
//           | [BIGINT, value]                                             (a BigInt value, inline)
//   node   := [kind, ...fields]                                           (a JS array; see Kind below)
//
// Every object of the original graph becomes exactly one node, and every reference to it is that node's ref; the
// decoder keeps one value per node (a memo), so a value reachable twice is one value after unpickling, cycles
// included. Nodes never nest (they refer to each other by index), so v8's serializer, which recurses, sees a flat
// table however deep the graph is. Arrays inside a node's fields (property lists, elements, names) are plain lists
// whose meaning the kind fixes.
//
// Property lists (`props`) are flat: [key, value, key, value, ...]. A key is a string or a SYMBOL / SYMBOL_FOR /
// GLOBAL node (a symbol); a value is a slot, or a DESC node when the property is not a plain enumerable, writable,
// configurable data property.
//
// Functions travel as source text inside SCOPE nodes that hold the values of their captured variables; the decoder
// compiles every function of a pickle in one generated program whose nested blocks mirror the captured scopes, so
// closures that shared a variable locally share one binding remotely. See decode.ts.

export const MAGIC = 'tslab-remote/pickle';
export const VERSION = 1;

/** Node kinds. Part of the format: append only. */
export const enum Kind {
  /** [OBJECT, proto, props, integrity] proto: undefined = Object.prototype, null = none, else a slot. */
  OBJECT = 0,
  /** [ARRAY, proto, props, integrity, elements] elements: a list of slots with the original holes. */
  ARRAY = 1,
  /** [DATE, proto, props, integrity, time] */
  DATE = 2,
  /** [REGEXP, proto, props, integrity, source, flags] */
  REGEXP = 3,
  /** [MAP, proto, props, integrity, entries] entries: [k, v, k, v, ...] */
  MAP = 4,
  /** [SET, proto, props, integrity, values] */
  SET = 5,
  /** [ERROR, proto, props, integrity] message, stack, cause and the rest are ordinary props */
  ERROR = 6,
  /** [BOXED, proto, props, integrity, primitive] new Number(1), Object('s'), Object(1n)... */
  BOXED = 7,
  /** [ARRAYBUFFER, bytes] bytes: a Uint8Array leaf over the part of the buffer the pickle reaches (views.ts) */
  ARRAYBUFFER = 8,
  /** [SYMBOL, description, originId] a unique symbol: a fresh symbol on the other side, one per node */
  SYMBOL = 10,
  /** [SYMBOL_FOR, key] Symbol.for(key) */
  SYMBOL_FOR = 11,
  /** [GLOBAL, path] a standard global or a property path from one: ['Math', 'max'], ['Symbol', 'iterator'] */
  GLOBAL = 12,
  /** [MODULE, kind, id, version] the exports of a module: kind 'builtin' | 'package' | 'local' */
  MODULE = 13,
  /** [MODULE_EXPORT, module, path] a value reached from a module's exports by a property path */
  MODULE_EXPORT = 14,
  /** [MODULE_STAR, module] TypeScript's __importStar(module): getters over the module plus `default` */
  MODULE_STAR = 15,
  /** [PROTOTYPE, ctor, proto, props] ctor.prototype, with extra own props and (when not undefined) its proto */
  PROTOTYPE = 16,
  /**
   * [FUNCTION, proto, props, integrity, scope, source, bits, originId, heritageName, heritage, thisValue]
   * source: a function/arrow/class expression, or (bits & METHOD) a method definition to wrap in `({ })`.
   */
  FUNCTION = 17,
  /** [SCOPE, parent, names, values] a captured scope (parent: a ref or null): variables `names` hold `values` */
  SCOPE = 18,
  /** [BOUND, props, target, thisValue, args] target.bind(thisValue, ...args) */
  BOUND = 19,
  /** [DESC, flags, valueOrGetter, setter] a property descriptor (DescFlags), inline in a property list */
  DESC = 20,
  /** [REQUIRE] the `require` function of the side that unpickles */
  REQUIRE = 21,
  /** [ORIGIN, id, label] a value the unpickling side pickled by value earlier (its registry resolves the id) */
  ORIGIN = 22,
  /** [URL, href] */
  URL = 23,
  /** [URL_SEARCH_PARAMS, text] */
  URL_SEARCH_PARAMS = 24,
  /** [BIGINT, value] inline in a slot (a bare bigint slot is a ref) */
  BIGINT = 25,
  /**
   * [VIEW, buffer, type, byteOffset, length] a typed array, DataView or Buffer over the ARRAYBUFFER node `buffer`;
   * type: protocol/values.ts's view index; length: elements (bytes for a DataView). See views.ts.
   */
  VIEW = 26,
  /** [UNINITIALIZED] a captured `let`/`const`/`class` binding still in its temporal dead zone */
  UNINITIALIZED = 27,
}

export const enum DescFlags {
  ENUMERABLE = 1,
  CONFIGURABLE = 2,
  WRITABLE = 4,
  ACCESSOR = 8,
}

/** Integrity levels of an object, applied after it is filled. */
export const enum Integrity {
  NONE = 0,
  NON_EXTENSIBLE = 1,
  SEALED = 2,
  FROZEN = 3,
}

/** FUNCTION node bits. */
export const enum FnBits {
  /** The function's code is sloppy (not strict): compile it outside strict mode. */
  SLOPPY = 1,
  /** Evaluating the source runs code (a class heritage or computed keys): bind its scope before evaluating it. */
  DEFINITION_TIME = 2,
  /** The source is a method definition: evaluate `({ SOURCE })` and take the one property's value. */
  METHOD = 4,
  /** With METHOD: take the getter. */
  GETTER = 8,
  /** With METHOD: take the setter. */
  SETTER = 16,
  /** thisValue is set: evaluate the source with it as `this` (an arrow function's lexical this). */
  HAS_THIS = 32,
}

export type Slot = unknown;
export type Node = unknown[];
/** A node's index in the table. */
export type Ref = bigint;

export type ModuleKind = 'builtin' | 'package' | 'local';

/** A module reference as travels in a MODULE node and as given to UnpickleContext.requireModule. */
export interface ModuleRef {
  kind: ModuleKind;
  /** builtin: 'fs'; package: 'lodash' or 'lodash/fp/map.js'; local: path relative to the code root, 'src/model.ts' */
  id: string;
  /** package: the version of the package's package.json on the pickling side */
  version?: string;
}

export function isRef(slot: unknown): slot is Ref {
  return typeof slot === 'bigint';
}
