// The unpickler: frames → value, on both sides (the agent's worker unpickles a call, the kernel a result).
//
// Objects are created as empty shells when first reached and filled from a work queue, so cycles and sharing come
// out as they went in and deep structures do not grow the stack. Functions: all FUNCTION nodes of the pickle are
// compiled at once, in one generated program whose nested blocks mirror the captured scopes:
//
//   [ (() => { let a, b;                                                         // a captured scope
//         return [($i, $v) => { switch ($i) { case 0: a = $v; break; ... } },      //   its setter
//                 [function () { "use strict"; return (SOURCE); }, ...],            //   functions created in it
//                 [ ...child scopes... ]]; })(), ... ]
//
// so closures that shared a variable locally share one binding here. A plain function is created at once and its
// variables are bound from the queue; a class (or a method with a computed key) is created only after the variables
// its definition reads are bound, and its base class before it.

import Module = require('node:module');
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';

import { DYNAMIC_IMPORT } from './dynamic-import';
import { decodeValue } from '../protocol/values';
import { packageName } from '../common/package-name';
import { UnpickleError } from './errors';
import { DescFlags, FnBits, Integrity, isRef, Kind, MAGIC, ModuleRef, Node, Slot, VERSION } from './format';
import { resolveGlobalPath } from './globals';
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

class InProgress {
  constructor(readonly fn: Node) {}
}

interface ScopeState {
  setter: ((index: number, value: unknown) => void) | null;
  bound: boolean[];
}

interface FnState {
  thunk: (heritage?: unknown) => unknown;
}

export function unpickle(frames: readonly Uint8Array[], context: UnpickleContext): unknown {
  let header: unknown;
  try {
    header = decodeValue(frames);
  } catch (err) {
    throw new UnpickleError(`not a pickle: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(header) || header[0] !== MAGIC) throw new UnpickleError('not a pickle: the body does not start with the pickle header');
  if (header[1] !== VERSION) throw new UnpickleError(`pickle format version ${String(header[1])} is not supported (this side reads version ${VERSION})`);
  const functions = header[3];
  const table = header[4];
  if (!Array.isArray(functions) || !Array.isArray(table)) throw new UnpickleError('corrupt pickle: no function list or node table');
  const decoder = new Decoder(context, table as Node[], functions as Slot[]);
  const value = decoder.resolve(header[2]);
  decoder.finish();
  return value;
}

class Decoder {
  private readonly memo = new Map<Node, unknown>();
  private readonly queue: (() => void)[] = [];
  private readonly scopes = new Map<Node, ScopeState>();
  private readonly fns = new Map<Node, FnState>();
  private readonly inProgress = new Set<Node>();
  private readonly deferred = new Map<Node, (() => void)[]>();
  private readonly integrity: [object, Integrity][] = [];
  private readonly warned = new Set<string>();
  private compiled = false;
  private readonly functions: Node[];

  constructor(
    private readonly context: UnpickleContext,
    private readonly table: Node[],
    functionRefs: Slot[],
  ) {
    this.functions = functionRefs.map((ref) => this.node(ref)!);
  }

  /** The node a ref names (null for null). */
  private node(slot: Slot): Node | null {
    if (slot === null || slot === undefined) return null;
    const node = isRef(slot) ? this.table[Number(slot)] : undefined;
    if (!Array.isArray(node)) throw new UnpickleError(`corrupt pickle: ${String(slot)} is not a node reference`);
    return node;
  }

  finish(): void {
    for (let i = 0; i < this.queue.length; i++) this.queue[i]!();
    this.queue.length = 0;
    for (const [obj, level] of this.integrity) {
      if (level === Integrity.FROZEN) Object.freeze(obj);
      else if (level === Integrity.SEALED) Object.seal(obj);
      else Object.preventExtensions(obj);
    }
  }

  private later(task: () => void): void {
    this.queue.push(task);
  }

  resolve(slot: Slot): unknown {
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
        const obj = node[1] === null ? Object.create(null) : {};
        return this.shell(node, obj as object, Object.prototype, undefined);
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
        if (value === undefined) throw new UnpickleError(`the global ${p.join('.')} does not exist on this side (Node ${process.version})`);
        return this.keep(node, value);
      }
      case Kind.MODULE:
        return this.keep(node, this.requireModule({ kind: node[1] as ModuleRef['kind'], id: node[2] as string, version: node[3] as string | undefined }));
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
        if (typeof proto !== 'object' || proto === null) throw new UnpickleError('corrupt pickle: a prototype whose constructor has none');
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
        if (typeof target !== 'function') throw new UnpickleError('corrupt pickle: a bound function whose target is not a function');
        const args = (node[4] as Slot[]).map((arg) => this.resolve(arg));
        const bound = Function.prototype.bind.call(target, this.resolve(node[3]), ...args) as Function;
        this.keep(node, bound);
        const props = node[1] as Slot[] | undefined;
        this.later(() => {
          // bind took the target's name before its props were applied (an arrow's `add3` is given later)
          Object.defineProperty(bound, 'name', { value: `bound ${String((target as Function).name)}`, configurable: true });
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

  private applyProps(obj: object, props: Slot[]): void {
    for (let i = 0; i < props.length; i += 2) {
      const keySlot = props[i];
      const key = (typeof keySlot === 'string' ? keySlot : this.resolve(keySlot)) as PropertyKey;
      const value = props[i + 1];
      if (Array.isArray(value) && value[0] === Kind.DESC) {
        const flags = value[1] as number;
        const common = { enumerable: (flags & DescFlags.ENUMERABLE) !== 0, configurable: (flags & DescFlags.CONFIGURABLE) !== 0 };
        if (flags & DescFlags.ACCESSOR) {
          Object.defineProperty(obj, key, { ...common, get: this.resolve(value[2]) as () => unknown, set: this.resolve(value[3]) as (v: unknown) => void });
        } else {
          defineOwn(obj, key, { ...common, writable: (flags & DescFlags.WRITABLE) !== 0, value: this.resolve(value[2]) });
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

  // ---- functions -------------------------------------------------------------------------------------------------

  private materialize(node: Node): unknown {
    if (this.inProgress.has(node)) throw new InProgress(node);
    if (!this.compiled) this.compile();
    const state = this.fns.get(node);
    if (!state) throw new UnpickleError('corrupt pickle: a function that is not in the function list');
    const bits = node[6] as number;
    let made: unknown;
    if (bits & FnBits.DEFINITION_TIME) {
      this.inProgress.add(node);
      try {
        this.bindChain(this.node(node[4]));
        let heritage: unknown;
        if (node[8]) {
          try {
            heritage = this.resolve(node[9]);
          } catch (err) {
            if (err instanceof InProgress) throw new UnpickleError('a class extends itself through its captured values');
            throw err;
          }
        }
        made = this.callThunk(state, node, heritage);
      } finally {
        this.inProgress.delete(node);
      }
      this.memo.set(node, made);
    } else {
      made = this.callThunk(state, node, undefined);
      this.memo.set(node, made);
      this.later(() => this.bindChain(this.node(node[4])));
    }
    if (typeof node[7] === 'string') recordOrigin(made as object, node[7]);
    const waiting = this.deferred.get(node);
    if (waiting) {
      this.deferred.delete(node);
      for (const task of waiting) task();
    }
    const fn = made as Function;
    this.later(() => {
      if (node[1] !== undefined) {
        const proto = this.resolve(node[1]) as object | null;
        if (Object.getPrototypeOf(fn) !== proto) Object.setPrototypeOf(fn, proto);
      }
      const props = node[2] as Slot[] | undefined;
      if (props) this.applyProps(fn, props);
      if (node[11] !== undefined) this.resolve(node[11]); // the prototype's own props and proto
      const level = node[3] as Integrity | undefined;
      if (level) this.integrity.push([fn, level]);
    });
    return made;
  }

  private callThunk(state: FnState, node: Node, heritage: unknown): unknown {
    const bits = node[6] as number;
    const self = bits & FnBits.HAS_THIS ? this.resolve(node[10]) : undefined;
    const made = state.thunk.call(self, heritage);
    if (!(bits & FnBits.METHOD)) return made;
    const holder = made as object;
    const key = Reflect.ownKeys(holder)[0];
    const desc = key === undefined ? undefined : Object.getOwnPropertyDescriptor(holder, key);
    const value = bits & FnBits.GETTER ? desc?.get : bits & FnBits.SETTER ? desc?.set : desc?.value;
    if (typeof value !== 'function') throw new UnpickleError('corrupt pickle: a method source that defines no method');
    return value;
  }

  /** Binds every variable of a scope chain that is not bound yet; a value still being created binds when done. */
  private bindChain(scope: Node | null): void {
    for (let s = scope; s; s = this.node(s[1])) {
      const state = this.scopes.get(s);
      if (!state?.setter) continue;
      const values = s[3] as Slot[];
      for (let i = 0; i < values.length; i++) {
        if (state.bound[i]) continue;
        state.bound[i] = true;
        try {
          state.setter(i, this.resolve(values[i]));
        } catch (err) {
          if (!(err instanceof InProgress)) throw err;
          const setter = state.setter;
          const list = this.deferred.get(err.fn) ?? [];
          list.push(() => setter(i, this.resolve(values[i])));
          this.deferred.set(err.fn, list);
        }
      }
    }
  }

  /** Compiles every function of the pickle in one program (see the top of this file). */
  private compile(): void {
    this.compiled = true;
    const childScopes = new Map<Node | null, Node[]>();
    const fnsIn = new Map<Node | null, Node[]>();
    const seenScopes = new Set<Node>();
    for (const fn of this.functions) {
      const scope = this.node(fn[4]);
      push(fnsIn, scope, fn);
      for (let s = scope; s && !seenScopes.has(s); s = this.node(s[1])) {
        seenScopes.add(s);
        push(childScopes, this.node(s[1]), s);
      }
    }
    const order: { kind: 'scope' | 'top'; scope: Node | null; fns: Node[]; children: Node[] }[] = [];
    const parts: string[] = [];
    // Strictness is per function: a strict function's thunk carries the directive, so one scope can hold strict
    // and sloppy functions (the Script scope is shared by all of a realm's scripts).
    const thunk = (fn: Node): string => {
      const source = fn[5] as string;
      const param = typeof fn[8] === 'string' ? fn[8] : '';
      const bits = fn[6] as number;
      const body = bits & FnBits.METHOD ? `({\n${source}\n})` : `(\n${source}\n)`;
      return `function (${param}) { ${bits & FnBits.SLOPPY ? '' : '"use strict"; '}return ${body}; }`;
    };
    const scopeExpr = (scope: Node): string => {
      const names = scope[2] as string[];
      const fns = fnsIn.get(scope) ?? [];
      const children = childScopes.get(scope) ?? [];
      order.push({ kind: 'scope', scope, fns, children });
      const taken = new Set(names);
      const iName = freshName('$i', taken);
      taken.add(iName);
      const vName = freshName('$v', taken);
      const cases = names.map((name, i) => `case ${i}: ${name} = ${vName}; break;`).join(' ');
      const decl = names.length > 0 ? `let ${names.join(', ')}; ` : '';
      const setter = names.length > 0 ? `(${iName}, ${vName}) => { switch (${iName}) { ${cases} } }` : 'null';
      const inner = children.map(scopeExpr);
      return `(() => { ${decl}return [${setter}, [\n${fns.map(thunk).join(',\n')}\n], [${inner.join(', ')}]]; })()`;
    };
    for (const root of childScopes.get(null) ?? []) parts.push(scopeExpr(root));
    const top = fnsIn.get(null) ?? [];
    if (top.length > 0) {
      order.push({ kind: 'top', scope: null, fns: top, children: [] });
      parts.push(`[null, [\n${top.map(thunk).join(',\n')}\n], []]`);
    }
    const code = `[\n${parts.join(',\n')}\n]`;
    this.context.onProgram?.(code);
    let results: unknown[];
    try {
      results = new vm.Script(code, { filename: this.context.filename ?? 'tslab-remote-pickle.js', ...DYNAMIC_IMPORT }).runInThisContext() as unknown[];
    } catch (err) {
      throw new UnpickleError(`the pickled functions do not compile on this side: ${(err as Error).message}`, { cause: err });
    }
    // Walk the results in the order the expressions were generated: depth first, scopes before their children.
    let at = 0;
    const take = (result: unknown): void => {
      const entry = order[at++]!;
      const [setter, thunks, children] = result as [ScopeState['setter'], FnState['thunk'][], unknown[]];
      if (entry.scope) this.scopes.set(entry.scope, { setter, bound: [] });
      entry.fns.forEach((fn, i) => this.fns.set(fn, { thunk: thunks[i]! }));
      for (const child of children) take(child);
    };
    for (const result of results) take(result);
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function freshName(base: string, taken: Set<string>): string {
  let name = base;
  for (let i = 0; taken.has(name); i++) name = `${base}${i}`;
  return name;
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

/** TypeScript's __importStar: the module itself when it is an ES module, else getters over it plus `default`. */
function importStar(mod: unknown): unknown {
  if (mod && (mod as { __esModule?: unknown }).__esModule) return mod;
  const result: Record<string, unknown> = {};
  if (mod !== null && mod !== undefined) {
    for (const key of Object.getOwnPropertyNames(mod)) {
      if (key === 'default') continue;
      Object.defineProperty(result, key, { enumerable: true, get: () => (mod as Record<string, unknown>)[key] });
    }
  }
  Object.defineProperty(result, 'default', { enumerable: true, value: mod });
  return result;
}

/** A require id as a module reference: builtins by name, relative and absolute paths as local, the rest packages. */
export function refFor(id: string): ModuleRef {
  if (Module.isBuiltin(id)) return { kind: 'builtin', id: id.startsWith('node:') ? id.slice(5) : id };
  if (id.startsWith('./') || id.startsWith('../') || id.startsWith('/')) return { kind: 'local', id: path.posix.normalize(id).replace(/^\.\//, '') };
  return { kind: 'package', id };
}

const versionCache = new Map<string, string | undefined>();

/** The version in the package.json of the loaded copy of package `name`, found through require.cache. */
export function installedVersion(name: string): string | undefined {
  const needle = `${path.sep}node_modules${path.sep}${name.split('/').join(path.sep)}${path.sep}`;
  for (const filename of Object.keys(require.cache)) {
    const at = filename.lastIndexOf(needle);
    if (at < 0) continue;
    const dir = filename.slice(0, at + needle.length - 1);
    if (versionCache.has(dir)) return versionCache.get(dir);
    let version: string | undefined;
    try {
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: unknown };
      version = typeof json.version === 'string' ? json.version : undefined;
    } catch {
      version = undefined;
    }
    versionCache.set(dir, version);
    return version;
  }
  return undefined;
}
