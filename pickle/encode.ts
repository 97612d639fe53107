// The encoder core: turns a value graph into the shadow graph of format.ts, then into frames with
// protocol/values.ts (v8 serializer, large typed arrays out of band). Plain data, prototypes, module and global
// references, and the refusals are handled here, on both sides; functions are delegated to hooks: the
// capture (pickle/capture: source, free variables, closure scopes), used by the kernel's pickler and by the result
// pickler (result.ts) alike.
//
// One memo for the whole pickle: a value reachable twice is one node. The walk is breadth-first through a work
// queue, and nodes refer to each other by index into one flat table (see format.ts), so deep structures (a long
// linked list) grow neither this stack nor the v8 serializer's.

import * as util from 'node:util';

import { DEFAULT_OUT_OF_BAND_BYTES, encodeValue } from '../protocol/values';
import { keySegment, Path, pathSegments, pathTo, PickleError } from './errors';
import { DescFlags, Integrity, Kind, MAGIC, Node, Ref, Slot, VERSION } from './format';
import { globalIndex } from './globals';
import { ModuleIndex, ModuleLocation } from './modules';
import { refuse } from './unpicklable';
import { ViewEncoder } from './views';
import {
  builtinShape,
  descFlags,
  describeKey,
  integrity,
  importStarOf,
  arrayExtraKeys,
  isRequireFunction,
  ownConstructor,
} from './object-shape';

export interface EncoderHooks {
  /**
   * Encodes a function that is neither a standard global nor a module value and returns its ref. Must call
   * `enc.remember(fn, node)` before encoding anything the function reaches. `owner`: the object the function was
   * found on as a property.
   */
  encodeFunction(fn: Function, enc: Encoder, path: Path, owner: object | undefined): Ref;
  /** Called once per object whose prototype is not a standard one (a class instance), before its props. */
  checkInstance?(value: object, enc: Encoder, path: Path): void;
  /** A value the other side owns (results: classes and functions of the call), as an ORIGIN node. */
  reference?(value: object | symbol, enc: Encoder, path: Path): Node | undefined;
  /** Origin id for a unique symbol or a function pickled by value. */
  originId?(value: object | symbol): string | undefined;
}

export interface EncoderOptions {
  modules: ModuleIndex;
  outOfBandBytes?: number;
  /** Results: an instance of a class that cannot travel keeps its own state under the nearest prototype that can. */
  lenientPrototypes?: boolean;
  /**
   * The hint for what cannot travel, instead of each refusal's own: a result was made inside the remote function,
   * so "create it inside the remote function" does not fit there.
   */
  refusalHint?: string;
}

const OBJECT_PROTO = Object.prototype;

export class Encoder {
  private readonly memo = new Map<unknown, Ref>();
  private readonly queue: (() => void)[] = [];
  private readonly table: Node[] = [];
  /** Refs of every FUNCTION node, for the header. */
  readonly functions: Ref[] = [];
  private readonly moduleNodes = new Map<string, Ref>();
  private readonly globals = globalIndex();
  private readonly views = new ViewEncoder();

  constructor(
    readonly hooks: EncoderHooks,
    readonly options: EncoderOptions,
  ) {}

  /** Encodes the whole graph reachable from `root` and returns the frames: [body, ...out-of-band buffers]. */
  pickle(root: unknown, label: string): Uint8Array[] {
    const rootSlot = this.encode(root, pathTo(null, label));
    return this.finish(rootSlot);
  }

  private finish(rootSlot: Slot): Uint8Array[] {
    this.drain();
    this.views.finish();
    const header = [MAGIC, VERSION, rootSlot, this.functions, this.table];
    return encodeValue(header, this.options.outOfBandBytes ?? DEFAULT_OUT_OF_BAND_BYTES);
  }

  /**
   * Encodes several roots, each with its own label for error paths, as one pickle (one memo: values shared
   * between roots stay shared); it unpickles to the array of the roots' values.
   */
  pickleRoots(roots: readonly { value: unknown; label: string }[]): Uint8Array[] {
    const slots = roots.map(({ value, label }) => this.encode(value, pathTo(null, label)));
    return this.finish(this.add([Kind.ARRAY, undefined, undefined, Integrity.NONE, slots]));
  }

  /** Runs queued work until none is left. */
  drain(): void {
    for (let i = 0; i < this.queue.length; i++) this.queue[i]!();
    this.queue.length = 0;
  }

  later(task: () => void): void {
    this.queue.push(task);
  }

  /** Puts a node in the table; its ref is what slots and other nodes hold. */
  add(node: Node): Ref {
    this.table.push(node);
    return BigInt(this.table.length - 1);
  }

  /** Adds `node` as the node of `value`: from now on `value` encodes as the returned ref. */
  remember(value: unknown, node: Node): Ref {
    const ref = this.add(node);
    this.memo.set(value, ref);
    return ref;
  }

  recall(value: unknown): Ref | undefined {
    return this.memo.get(value);
  }

  fail(path: Path, reason: string, hint?: string): never {
    throw new PickleError(pathSegments(path), reason, hint);
  }

  /** The slot for `value`; objects get their node now and are filled from the queue. */
  encode(value: unknown, path: Path, owner?: object): Slot {
    switch (typeof value) {
      case 'undefined':
      case 'boolean':
      case 'number':
      case 'string':
        return value;
      case 'bigint':
        return [Kind.BIGINT, value]; // inline: a bare bigint in a slot is a ref
      case 'symbol':
        return this.encodeSymbol(value, path);
      case 'object':
        if (value === null) return null;
        break;
      case 'function':
        break;
    }
    const obj = value;
    const known = this.memo.get(obj);
    if (known !== undefined) return known;
    if (ArrayBuffer.isView(obj)) return this.encodeView(obj, path);
    const ref = this.reference(obj, path);
    if (ref !== undefined) return ref;
    if (typeof obj === 'function' && isRequireFunction(obj)) return this.remember(obj, [Kind.REQUIRE]);
    const refusal = refuse(obj);
    if (refusal) this.fail(path, refusal.reason, this.options.refusalHint ?? refusal.hint);
    if (typeof obj === 'function') return this.hooks.encodeFunction(obj, this, path, owner);
    return this.encodeObject(obj, path);
  }

  /** A GLOBAL, MODULE / MODULE_EXPORT or ORIGIN node for a value that travels by reference, memoized. */
  reference(value: object | symbol, path: Path): Ref | undefined {
    const globalPath = this.globals.get(value);
    if (globalPath) return this.remember(value, [Kind.GLOBAL, globalPath]);
    const location = this.options.modules.lookup(value);
    if (location) {
      const module = this.moduleNode(location);
      if (location.path.length === 0) {
        this.memo.set(value, module);
        return module;
      }
      return this.remember(value, [Kind.MODULE_EXPORT, module, location.path]);
    }
    const origin = this.hooks.reference?.(value, this, path);
    if (origin) return this.remember(value, origin);
    return undefined;
  }

  moduleNode(location: ModuleLocation): Ref {
    const module = location.module;
    const key = `${module.kind}:${module.id}`;
    let ref = this.moduleNodes.get(key);
    if (ref === undefined) {
      ref = this.add([Kind.MODULE, module.kind, module.id, module.version]);
      this.moduleNodes.set(key, ref);
    }
    return ref;
  }

  private encodeSymbol(sym: symbol, path: Path): Slot {
    const known = this.memo.get(sym);
    if (known !== undefined) return known;
    const key = Symbol.keyFor(sym);
    if (key !== undefined) return this.remember(sym, [Kind.SYMBOL_FOR, key]);
    const ref = this.reference(sym, path);
    if (ref !== undefined) return ref;
    return this.remember(sym, [Kind.SYMBOL, sym.description, this.hooks.originId?.(sym)]);
  }

  private encodeObject(obj: object, path: Path): Ref {
    const t = util.types;
    if (Array.isArray(obj)) {
      const node: Node = [Kind.ARRAY, undefined, undefined, Integrity.NONE, undefined];
      const ref = this.remember(obj, node);
      this.later(() => this.fillArray(obj as unknown[], node, path));
      return ref;
    }
    if (t.isArrayBuffer(obj)) return this.bufferRef(obj, 0, obj.byteLength);
    const shape = builtinShape(obj);
    if (shape && 'refusal' in shape) this.fail(path, shape.refusal, shape.hint);
    if (shape && 'whole' in shape) return this.remember(obj, shape.whole);
    const star = shape ? undefined : importStarOf(obj, this.options.modules);
    if (star) return this.remember(obj, [Kind.MODULE_STAR, this.moduleNode(star)]);
    const node = shape?.node ?? [Kind.OBJECT, undefined, undefined, Integrity.NONE];
    const defaultProto = shape ? shape.defaultProto : OBJECT_PROTO;
    const ref = this.remember(obj, node);
    const proto = Object.getPrototypeOf(obj) as object | null;
    if (proto !== defaultProto) {
      node[1] = this.encodePrototypeOf(obj, proto, path);
    }
    this.later(() => {
      if (node[0] === Kind.MAP) node[4] = this.mapEntries(obj as Map<unknown, unknown>, path);
      else if (node[0] === Kind.SET) node[4] = this.setValues(obj as Set<unknown>, path);
      const skipLastIndex = node[0] === Kind.REGEXP && (obj as RegExp).lastIndex === 0 ? 'lastIndex' : undefined;
      node[2] = this.props(obj, path, skipLastIndex ? (key) => key === skipLastIndex : undefined);
      node[3] = integrity(obj);
    });
    return ref;
  }

  /** A VIEW node over its buffer's node (views.ts); views of one buffer share that node. */
  private encodeView(view: ArrayBufferView, path: Path): Ref {
    const buffer = view.buffer;
    if (util.types.isSharedArrayBuffer(buffer)) {
      this.fail(
        path,
        'a view of a SharedArrayBuffer cannot be pickled (shared memory)',
        'Copy it into an ArrayBuffer or typed array',
      );
    }
    const bufferRef = this.bufferRef(buffer, view.byteOffset, view.byteOffset + view.byteLength);
    return this.remember(view, this.views.view(view, bufferRef));
  }

  /** The ARRAYBUFFER node of `buffer`, widened to cover [start, end). */
  private bufferRef(buffer: ArrayBuffer, start: number, end: number): Ref {
    const { node, isNew } = this.views.span(buffer, start, end);
    return isNew ? this.remember(buffer, node) : this.memo.get(buffer)!;
  }

  /** The slot for an object's prototype; checks class instances first (private fields, live handles). */
  private encodePrototypeOf(obj: object, proto: object | null, path: Path): Slot {
    if (proto === null) return null;
    if (proto !== OBJECT_PROTO && !this.globals.has(proto)) this.hooks.checkInstance?.(obj, this, path);
    let current: object | null = proto;
    for (;;) {
      if (current === null) return null;
      try {
        return this.encodePrototype(current, path);
      } catch (err) {
        if (!(err instanceof PickleError) || !this.options.lenientPrototypes) throw err;
        current = Object.getPrototypeOf(current) as object | null;
      }
    }
  }

  /** A prototype object: a class's (its constructor travels, the prototype is `ctor.prototype`) or a plain one. */
  encodePrototype(proto: object, path: Path): Slot {
    const known = this.memo.get(proto);
    if (known !== undefined) return known;
    const ref = this.reference(proto, path);
    if (ref !== undefined) return ref;
    const ctor = ownConstructor(proto);
    if (ctor) {
      const ctorPath = pathTo(path, `class ${ctor.name || '(anonymous)'}`);
      const ctorSlot = this.encode(ctor, ctorPath);
      const after = this.memo.get(proto); // a by-value constructor registers its prototype itself
      if (after !== undefined) return after;
      return this.remember(proto, [Kind.PROTOTYPE, ctorSlot, undefined, undefined]);
    }
    return this.encode(proto, path);
  }

  /** Own properties as a flat [key, value, ...] list (undefined when none). */
  props(obj: object, path: Path, skip?: (key: string | symbol) => boolean): Slot[] | undefined {
    const keys = Reflect.ownKeys(obj);
    if (keys.length === 0) return undefined;
    const out: Slot[] = [];
    for (const key of keys) {
      if (skip?.(key)) continue;
      const desc = Object.getOwnPropertyDescriptor(obj, key);
      if (!desc) continue;
      this.pushProp(out, obj, key, desc, path);
    }
    return out.length > 0 ? out : undefined;
  }

  pushProp(out: Slot[], owner: object, key: string | symbol, desc: PropertyDescriptor, path: Path): void {
    const keySlot = typeof key === 'symbol' ? this.encodeSymbol(key, path) : key;
    const at = pathTo(path, keySegment(key));
    if ('value' in desc) {
      const value = this.encode(desc.value, at, owner);
      if (desc.enumerable && desc.writable && desc.configurable) out.push(keySlot, value);
      else out.push(keySlot, [Kind.DESC, descFlags(desc), value, undefined]);
    } else {
      // eslint-disable-next-line @typescript-eslint/unbound-method -- the getter is a value to pickle, not called here
      const getter = desc.get === undefined ? undefined : this.encode(desc.get, pathTo(at, 'getter'), owner);
      // eslint-disable-next-line @typescript-eslint/unbound-method -- the setter is a value to pickle, not called here
      const setter = desc.set === undefined ? undefined : this.encode(desc.set, pathTo(at, 'setter'), owner);
      out.push(keySlot, [Kind.DESC, descFlags(desc) | DescFlags.ACCESSOR, getter, setter]);
    }
  }

  private fillArray(arr: unknown[], node: Node, path: Path): void {
    const length = arr.length;
    const elements: Slot[] = new Array(length);
    for (let i = 0; i < length; i++) {
      if (i in arr) elements[i] = this.encode(arr[i], pathTo(path, `[${i}]`), arr);
    }
    node[4] = elements;
    const proto = Object.getPrototypeOf(arr) as object | null;
    if (proto !== Array.prototype) node[1] = this.encodePrototypeOf(arr, proto, path);
    const extraKeys = arrayExtraKeys(arr);
    if (extraKeys.length > 0) {
      const out: Slot[] = [];
      for (const key of extraKeys) {
        const desc = Object.getOwnPropertyDescriptor(arr, key);
        if (desc) this.pushProp(out, arr, key, desc, path);
      }
      node[2] = out;
    }
    node[3] = integrity(arr);
  }

  private mapEntries(map: Map<unknown, unknown>, path: Path): Slot[] {
    const out: Slot[] = [];
    let i = 0;
    for (const [k, v] of map) {
      out.push(this.encode(k, pathTo(path, `<key ${i}>`)), this.encode(v, pathTo(path, `.get(${describeKey(k)})`)));
      i++;
    }
    return out;
  }

  private setValues(set: Set<unknown>, path: Path): Slot[] {
    const out: Slot[] = [];
    let i = 0;
    for (const v of set) out.push(this.encode(v, pathTo(path, `<value ${i++}>`)));
    return out;
  }
}
