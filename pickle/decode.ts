// The unpickler: frames → value, on both sides (the agent's worker unpickles a call, the kernel a result).
//
// Objects are created as empty shells when first reached and filled from a work queue, so cycles and sharing come
// out as they went in and deep structures do not grow the stack. Functions: all FUNCTION nodes of the pickle are
// compiled at once (compile.ts). A plain function is created at once and its variables are bound from the queue; a
// class (or a method with a computed key) is created only after the variables its definition reads are bound, and
// its base class before it.

import { decodeValue } from '../protocol/values';
import { UnpickleError } from './errors';
import { DescFlags, Integrity, isRef, Kind, MAGIC, ModuleRef, Node, Slot, VERSION } from './format';
import { resolveGlobalPath } from './globals';
import { FunctionDecoder } from './decode-functions';
import { importStar, installedVersion, refFor } from './module-refs';
import { packageName } from '../common/package-name';
import { recordOrigin } from './origins';
import { bufferOf, viewOf } from './views';

export interface UnpickleContext {
  /** Resolves module references: builtins and packages by name, local modules by snapshot-relative path ('src/model.ts'). */
  requireModule(ref: ModuleRef): unknown;
  /** Called once per package whose installed version differs from the one pickled (the kernel shows a warning). */
  onVersionMismatch?(name: string, expected: string, installed: string | undefined): void;
  /** The installed version of a package; by default read from the package.json of the loaded copy. */
  installedVersion?(name: string): string | undefined;
  /**
   * Values this side pickled by value earlier, by the id it gave them (kernel-ext/client/capture's `localRegistry`): a
   * notebook class or function sent with a call comes back as the notebook's own class or function, and an
   * instance of it as an instance of the local class.
   */
  localClasses?: { get(id: string): unknown };
  /** What a captured `require` becomes; by default a require that goes through requireModule. */
  require?: (id: string) => unknown;
  /** File name of the generated program, as stack traces show it. */
  filename?: string;
  /** Sees the generated program before it is compiled (the kernel maps remote stack frames with it; it may throw to stop). */
  onProgram?(program: string): void;
}

export function unpickle(frames: readonly Uint8Array[], context: UnpickleContext): unknown {
  let header: unknown;
  try {
    header = decodeValue(frames);
  } catch (err) {
    throw new UnpickleError(`not a pickle: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(header) || header[0] !== MAGIC)
    throw new UnpickleError('not a pickle: the body does not start with the pickle header');
  if (header[1] !== VERSION)
    throw new UnpickleError(
      `pickle format version ${String(header[1])} is not supported (this side reads version ${VERSION})`,
    );
  const functions: unknown = header[3];
  const table: unknown = header[4];
  if (!Array.isArray(functions) || !Array.isArray(table))
    throw new UnpickleError('corrupt pickle: no function list or node table');
  const decoder = new Decoder(context, table as Node[], functions as Slot[]);
  const value = decoder.resolve(header[2]);
  decoder.finish();
  return value;
}

class Decoder extends FunctionDecoder {
  private readonly warned = new Set<string>();

  finish(): void {
    for (let i = 0; i < this.queue.length; i++) this.queue[i]!();
    this.queue.length = 0;
    for (const [obj, level] of this.integrity) {
      if (level === Integrity.FROZEN) Object.freeze(obj);
      else if (level === Integrity.SEALED) Object.seal(obj);
      else Object.preventExtensions(obj);
    }
  }

  override resolve(slot: Slot): unknown {
    if (isRef(slot)) {
      const node = this.node(slot)!;
      if (this.memo.has(node)) return this.memo.get(node);
      return this.create(node);
    }
    if (Array.isArray(slot)) {
      if (slot[0] === Kind.BIGINT) return slot[1];
      throw new UnpickleError(`corrupt pickle: an inline node of kind ${String(slot[0])} where a value belongs`);
    }
    return slot;
  }

  private create(node: Node): unknown {
    const kind = node[0] as Kind;
    switch (kind) {
      case Kind.OBJECT: {
        const obj = node[1] === null ? (Object.create(null) as Record<string, unknown>) : {};
        return this.shell(node, obj, Object.prototype, undefined);
      }
      case Kind.ARRAY: {
        const elements = node[4] as Slot[];
        const arr: unknown[] = [];
        arr.length = elements.length;
        return this.shell(node, arr, Array.prototype, () => {
          for (let i = 0; i < elements.length; i++) if (i in elements) arr[i] = this.resolve(elements[i]);
        });
      }
      case Kind.DATE:
        return this.shell(node, new Date(node[4] as number), Date.prototype, undefined);
      case Kind.REGEXP:
        return this.shell(node, new RegExp(node[4] as string, node[5] as string), RegExp.prototype, undefined);
      case Kind.MAP: {
        const map = new Map<unknown, unknown>();
        const entries = (node[4] as Slot[] | undefined) ?? [];
        return this.shell(node, map, Map.prototype, () => {
          for (let i = 0; i < entries.length; i += 2) map.set(this.resolve(entries[i]), this.resolve(entries[i + 1]));
        });
      }
      case Kind.SET: {
        const set = new Set<unknown>();
        const values = (node[4] as Slot[] | undefined) ?? [];
        return this.shell(node, set, Set.prototype, () => {
          for (const value of values) set.add(this.resolve(value));
        });
      }
      case Kind.ERROR: {
        const error = new Error();
        delete (error as { stack?: string }).stack;
        return this.shell(node, error, Error.prototype, undefined);
      }
      case Kind.BOXED: {
        const boxed = Object(node[4]) as object;
        return this.shell(node, boxed, Object.getPrototypeOf(boxed) as object, undefined);
      }
      case Kind.ARRAYBUFFER:
        return this.keep(node, bufferOf(node[1]));
      case Kind.VIEW:
        return this.keep(node, viewOf(node, this.resolve(node[1])));
      case Kind.SYMBOL: {
        const sym = Symbol(node[1] as string | undefined);
        if (typeof node[2] === 'string') recordOrigin(sym, node[2]);
        return this.keep(node, sym);
      }
      case Kind.SYMBOL_FOR:
        return this.keep(node, Symbol.for(node[1] as string));
      case Kind.GLOBAL: {
        const p = node[1] as string[];
        const value = resolveGlobalPath(p);
        if (value === undefined)
          throw new UnpickleError(`the global ${p.join('.')} does not exist on this side (Node ${process.version})`);
        return this.keep(node, value);
      }
      case Kind.MODULE:
        return this.keep(
          node,
          this.requireModule({
            kind: node[1] as ModuleRef['kind'],
            id: node[2] as string,
            version: node[3] as string | undefined,
          }),
        );
      case Kind.MODULE_EXPORT: {
        let value = this.resolve(node[1]);
        const p = node[2] as string[];
        for (const key of p) {
          if (value === null || value === undefined) break;
          value = (value as Record<string, unknown>)[key];
        }
        if (value === undefined) {
          const module = this.node(node[1]);
          throw new UnpickleError(`module ${String(module?.[2])} has no export ${p.join('.')} on this side`);
        }
        return this.keep(node, value);
      }
      case Kind.MODULE_STAR:
        return this.keep(node, importStar(this.resolve(node[1])));
      case Kind.PROTOTYPE: {
        const ctor = this.resolve(node[1]) as { prototype?: unknown } | null;
        const proto = ctor?.prototype;
        if (typeof proto !== 'object' || proto === null)
          throw new UnpickleError('corrupt pickle: a prototype whose constructor has none');
        this.keep(node, proto);
        const props = node[3] as Slot[] | undefined;
        if (props || node[2] !== undefined) {
          this.later(() => {
            if (node[2] !== undefined) {
              const wanted = this.resolve(node[2]) as object | null;
              if (Object.getPrototypeOf(proto) !== wanted) Object.setPrototypeOf(proto, wanted);
            }
            if (props) this.applyProps(proto, props);
          });
        }
        return proto;
      }
      case Kind.FUNCTION:
        return this.materialize(node);
      case Kind.BOUND: {
        const target = this.resolve(node[2]);
        if (typeof target !== 'function')
          throw new UnpickleError('corrupt pickle: a bound function whose target is not a function');
        const args = (node[4] as Slot[]).map((arg) => this.resolve(arg));
        const bound = Function.prototype.bind.call(target, this.resolve(node[3]), ...args) as Function;
        this.keep(node, bound);
        const props = node[1] as Slot[] | undefined;
        this.later(() => {
          // bind took the target's name before its props were applied (an arrow's `add3` is given later)
          Object.defineProperty(bound, 'name', { value: `bound ${String(target.name)}`, configurable: true });
          if (props) this.applyProps(bound, props);
        });
        return bound;
      }
      case Kind.REQUIRE:
        return this.keep(node, this.context.require ?? ((id: string) => this.requireModule(refFor(id))));
      case Kind.ORIGIN: {
        const value = this.context.localClasses?.get(node[1] as string);
        if (value === undefined) {
          throw new UnpickleError(
            // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a label from the other side, shown as String shows it
            `${String(node[2] ?? 'a value')} came back from the other side, but this side no longer holds the original it was pickled from (id ${String(node[1])})`,
          );
        }
        return this.keep(node, value);
      }
      case Kind.URL:
        return this.keep(node, new URL(node[1] as string));
      case Kind.URL_SEARCH_PARAMS:
        return this.keep(node, new URLSearchParams(node[1] as string));
      default:
        throw new UnpickleError(`corrupt pickle: unknown node kind ${String(kind)}`);
    }
  }

  private keep<T>(node: Node, value: T): T {
    this.memo.set(node, value);
    return value;
  }

  /** Registers an object node's value and queues its prototype, props, contents and integrity. */
  private shell<T extends object>(node: Node, obj: T, defaultProto: object, contents: (() => void) | undefined): T {
    this.memo.set(node, obj);
    this.later(() => {
      const protoSlot = node[1];
      if (protoSlot !== undefined && protoSlot !== null) {
        const proto = this.resolve(protoSlot) as object | null;
        if (proto !== defaultProto) Object.setPrototypeOf(obj, proto);
      }
      contents?.();
      const props = node[2] as Slot[] | undefined;
      if (props) this.applyProps(obj, props);
      const level = node[3] as Integrity | undefined;
      if (level) this.integrity.push([obj, level]);
    });
    return obj;
  }

  protected override applyProps(obj: object, props: Slot[]): void {
    for (let i = 0; i < props.length; i += 2) {
      const keySlot = props[i];
      const key = (typeof keySlot === 'string' ? keySlot : this.resolve(keySlot)) as PropertyKey;
      const value = props[i + 1];
      if (Array.isArray(value) && value[0] === Kind.DESC) {
        const flags = value[1] as number;
        const common = {
          enumerable: (flags & DescFlags.ENUMERABLE) !== 0,
          configurable: (flags & DescFlags.CONFIGURABLE) !== 0,
        };
        if (flags & DescFlags.ACCESSOR) {
          Object.defineProperty(obj, key, {
            ...common,
            get: this.resolve(value[2]) as () => unknown,
            set: this.resolve(value[3]) as (v: unknown) => void,
          });
        } else {
          defineOwn(obj, key, {
            ...common,
            writable: (flags & DescFlags.WRITABLE) !== 0,
            value: this.resolve(value[2]),
          });
        }
      } else {
        defineOwn(obj, key, { value: this.resolve(value), writable: true, enumerable: true, configurable: true });
      }
    }
  }

  // ---- modules ---------------------------------------------------------------------------------------------------

  private requireModule(ref: ModuleRef): unknown {
    const exports = this.context.requireModule(ref);
    if (ref.kind === 'package' && ref.version !== undefined) {
      const name = packageName(ref.id) ?? ref.id;
      if (!this.warned.has(name)) {
        this.warned.add(name);
        const installed = this.context.installedVersion ? this.context.installedVersion(name) : installedVersion(name);
        if (installed !== ref.version) this.context.onVersionMismatch?.(name, ref.version, installed);
      }
    }
    return exports;
  }
}

function defineOwn(obj: object, key: PropertyKey, desc: PropertyDescriptor): void {
  try {
    Object.defineProperty(obj, key, desc);
  } catch (err) {
    // A non-configurable property the fresh object already has (a function's `prototype`): assign if writable.
    const current = Object.getOwnPropertyDescriptor(obj, key);
    if (current && current.writable && 'value' in desc) (obj as Record<PropertyKey, unknown>)[key] = desc.value;
    else throw err;
  }
}
