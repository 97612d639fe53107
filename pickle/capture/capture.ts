// The capture: how a function travels by value, both ways (the kernel's calls, the agent's results). Its source
// text travels with the values of its free variables, captured recursively through the one encoder (so sharing and
// cycles hold across functions and data).
//
// Where a free variable's value comes from, first match wins:
//   1. the function's closure scopes, innermost first, read through the inspector (`[[Scopes]]`); a Script scope
//      lists every top-level lexical binding of every script, so only the free names are taken from it;
//   2. `exports` when the notebook's locals are given: tslab rewrites earlier cells' names to `exports.NAME`, so a
//      free `exports` means the locals, and only the members the function reads (`exports.cfg`) travel;
//   3. `require`: the other side's require;
//   4. a global this process has but that is not a standard one (user code set `globalThis.x`): by value;
//   5. otherwise it stays free, so the other side's global of that name is used (Math, console, process...).
//
// Scopes are nodes of their own: closures that shared a scope locally share one binding remotely (a counter's
// `inc` and `get`), and closures of separate scopes (two counters of one factory, two iterations of a loop) get
// separate bindings even when their values are equal (scope-records.ts).
//
// A captured variable's value is taken at pickle time; reassigning it later changes nothing already pickled, and
// what the remote code does to captured values does not flow back.

import { types } from 'node:util';

import { Encoder, EncoderHooks } from '../encode';
import { Path, pathTo } from '../errors';
import { FnBits, Integrity, Kind, Node, Ref, Slot } from '../format';
import { globalIndex, standardGlobalNames } from '../globals';
import { ownConstructor } from '../object-shape';
import { isNativeSource } from '../unpicklable';
import { Analysis, analyzeSource } from './analyze';
import { describe, integrityOf, isBodyMethod, isFieldOf } from './function-facts';
import { ClosureInspector, UNINITIALIZED } from './inspect';
import { ScopeProbe, ScopeSide } from './scope-probe';
import { ScopeRecord, ScopeRecords } from './scope-records';

/** Gives functions, classes and unique symbols pickled by value an id the other side reports back (the kernel's registry). */
export interface OriginIds {
  idFor(value: object | symbol): string;
}

export interface CaptureOptions {
  locals?: Record<string, unknown>;
}

const FUNCTION_PROTOS = new Set<unknown>([
  Function.prototype,
  Object.getPrototypeOf(async function () {}),
  Object.getPrototypeOf(function* () {}),
  Object.getPrototypeOf(async function* () {}),
]);

/** The variables (name + index) that hold a class's static #private values while its static block copies them in. */
const PRIVATE_STATICS = '$tslabRemotePrivateStatics';

const fnSource = (fn: Function): string => Function.prototype.toString.call(fn);

export class Capture implements EncoderHooks {
  private readonly scopeRecords: ScopeRecords;
  private localsNode: Node | null = null;
  private localsRef: Ref | undefined;
  private readonly localsNames = new Set<string>();
  private readonly privateCache = new WeakMap<Function, boolean>();

  constructor(
    private readonly options: CaptureOptions,
    private readonly inspector: ClosureInspector,
    private readonly registry: OriginIds | undefined,
    probe: ScopeProbe,
  ) {
    this.scopeRecords = new ScopeRecords(inspector, probe);
  }

  originId(value: object | symbol): string | undefined {
    return this.registry?.idFor(value);
  }

  encodeFunction(fn: Function, enc: Encoder, path: Path, owner: object | undefined): Ref {
    const source = fnSource(fn);
    if (isNativeSource(source)) return this.encodeNative(fn, enc, path);
    let analysis: Analysis;
    try {
      analysis = analyzeSource(source);
    } catch (err) {
      return enc.fail(
        path,
        `${describe(fn)} cannot be pickled: ${(err as Error).message}`,
        'Pickle the class or object it belongs to, or define it as an ordinary function',
      );
    }
    if (analysis.lexicalArguments) {
      enc.fail(
        path,
        `${describe(fn)} uses the \`arguments\` of the function it was created in, which cannot be read from outside`,
        'Use rest parameters (...args) in the enclosing function and capture them',
      );
    }
    if (analysis.lexicalThis && !isFieldOf(fn, source, owner)) {
      enc.fail(
        path,
        `${describe(fn)} is an arrow function that uses the \`this\` of the code it was created in, which cannot be read from outside`,
        'Use a method or an ordinary function, or capture the object in a variable (const self = this)',
      );
    }
    // A class's static #private fields: carried by a static block appended to its body, which runs after the
    // initializers and sets each field to its value here (read through the inspector).
    const statics = analysis.isClass && this.mayHavePrivate(fn) ? this.inspector.privateFields(fn) : [];
    let emitSource = analysis.emitSource;
    if (statics.length > 0) {
      const end = emitSource.lastIndexOf('}');
      const sets = statics.map((field, i) => `this.${field.name} = ${PRIVATE_STATICS}${i};`).join(' ');
      emitSource = `${emitSource.slice(0, end)}\nstatic { ${sets} }\n}`;
    }
    let bits = 0;
    if (analysis.definitionTime || statics.length > 0) bits |= FnBits.DEFINITION_TIME;
    if (analysis.form === 'method')
      bits |=
        FnBits.METHOD |
        (analysis.methodKind === 'get' ? FnBits.GETTER : analysis.methodKind === 'set' ? FnBits.SETTER : 0);
    if (Object.prototype.hasOwnProperty.call(fn, 'caller')) bits |= FnBits.SLOPPY;
    if (analysis.lexicalThis) bits |= FnBits.HAS_THIS;
    // [FUNCTION, proto, props, integrity, scope, source, bits, originId, heritageName, heritage, thisValue, prototype]
    const node: Node = [
      Kind.FUNCTION,
      undefined,
      undefined,
      Integrity.NONE,
      null,
      emitSource,
      bits,
      this.registry?.idFor(fn),
      undefined,
      undefined,
      undefined,
      undefined,
    ];
    const ref = enc.remember(fn, node);
    enc.functions.push(ref);

    if (analysis.free.length > 0) node[4] = this.captureScopes(fn, analysis, enc, path);
    if (statics.length > 0) {
      // One variable per field: an array would still be empty when the class is defined (contents come later).
      const names = statics.map((_, i) => `${PRIVATE_STATICS}${i}`);
      const values = statics.map((field) => enc.encode(field.value, pathTo(path, `static ${field.name}`)));
      node[4] = enc.add([Kind.SCOPE, node[4], names, values]);
    }
    if (analysis.lexicalThis) node[10] = enc.encode(owner, pathTo(path, 'this'));

    const heritage = analysis.isClass && analysis.heritageName ? (Object.getPrototypeOf(fn) as unknown) : undefined;
    if (analysis.heritageName) {
      node[8] = analysis.heritageName;
      node[9] = enc.encode(heritage, pathTo(path, 'extends'));
    } else {
      const proto = Object.getPrototypeOf(fn) as unknown;
      if (!FUNCTION_PROTOS.has(proto))
        node[1] = proto === null ? null : enc.encodePrototype(proto as object, pathTo(path, '[[Prototype]]'));
    }

    const classSource = analysis.isClass ? source : null;
    const bodyDefined = (owner: object, key: string | symbol): boolean => {
      if (classSource === null) return false;
      const desc = Object.getOwnPropertyDescriptor(owner, key);
      if (!desc) return false;
      // eslint-disable-next-line @typescript-eslint/unbound-method -- the accessors are values to pickle, never called here
      const fns = 'value' in desc ? [desc.value] : [desc.get, desc.set];
      return fns.some((f) => typeof f === 'function' && isBodyMethod(classSource, f as Function));
    };
    enc.later(() => {
      node[2] = enc.props(fn, path, (key) => {
        if (key === 'length' || key === 'arguments' || key === 'caller' || key === 'prototype') return true;
        if (key === 'name') {
          const desc = Object.getOwnPropertyDescriptor(fn, 'name');
          if (!desc || !('value' in desc) || typeof desc.value !== 'string') return bodyDefined(fn, key);
          return false;
        }
        return bodyDefined(fn, key);
      });
      const level = integrityOf(fn);
      if (level) node[3] = level;
    });

    const protoDesc = Object.getOwnPropertyDescriptor(fn, 'prototype');
    const prototype = protoDesc && 'value' in protoDesc ? (protoDesc.value as unknown) : undefined;
    if (typeof prototype === 'object' && prototype !== null) {
      const pnode: Node = [Kind.PROTOTYPE, ref, undefined, undefined];
      node[11] = enc.remember(prototype, pnode);
      enc.later(() => {
        const at = pathTo(path, '.prototype');
        pnode[3] = enc.props(prototype, at, (key) => {
          if (key === 'constructor') return (prototype as { constructor?: unknown }).constructor === fn;
          return bodyDefined(prototype, key);
        });
        const actual = Object.getPrototypeOf(prototype) as object | null;
        let expected: unknown = Object.prototype;
        if (analysis.isClass) {
          if (analysis.extendsNull) expected = null;
          else if (analysis.heritageName)
            // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- tsc needs it (heritage is {} to tsc)
            expected = heritage === null ? null : (heritage as { prototype?: unknown } | undefined)?.prototype;
        } else if (types.isGeneratorFunction(fn)) {
          expected = (Object.getPrototypeOf(fn) as { prototype?: unknown }).prototype;
        }
        if (actual !== expected)
          pnode[2] = actual === null ? null : enc.encodePrototype(actual, pathTo(at, '[[Prototype]]'));
      });
    }
    return ref;
  }

  private encodeNative(fn: Function, enc: Encoder, path: Path): Ref {
    const bound = this.inspector.bound(fn);
    if (!bound) {
      return enc.fail(
        path,
        `the native function ${fn.name || '(anonymous)'} cannot be pickled: it is neither a standard global nor a module export`,
        'Reach it inside the remote function through its module (require) instead of capturing it',
      );
    }
    const node: Node = [Kind.BOUND, undefined, undefined, undefined, []];
    const ref = enc.remember(fn, node);
    node[2] = enc.encode(bound.target, pathTo(path, 'bound target'));
    node[3] = enc.encode(bound.thisArg, pathTo(path, 'bound this'));
    node[4] = bound.args.map((arg, i) => enc.encode(arg, pathTo(path, `bound argument ${i}`)));
    enc.later(() => {
      node[1] = enc.props(fn, path, (key) => key === 'name' || key === 'length');
    });
    return ref;
  }

  /** Binds each free name to its value: closure scopes, notebook locals, require, user globals. */
  private captureScopes(fn: Function, analysis: Analysis, enc: Encoder, path: Path): Ref | null {
    const locals = this.options.locals;
    const needInspector = analysis.free.some(
      (name) => !(name === 'exports' && locals !== undefined && analysis.free.length === 1),
    );
    const chain = needInspector ? this.inspector.scopes(fn) : [];
    const records: ScopeRecord[] = [];
    let parent: ScopeRecord | null = null;
    for (let i = chain.length - 1; i >= 0; i--) {
      const side: ScopeSide = { fn, index: i, count: chain.length, type: chain[i]!.type };
      parent = this.scopeRecords.record(chain[i]!, side, parent, enc);
      records.unshift(parent);
    }
    const syntheticNames: string[] = [];
    const syntheticValues: Slot[] = [];
    const standard = standardGlobalNames();
    for (const name of analysis.free) {
      const record = records.find((r) => r.names.includes(name));
      if (record) {
        this.use(record, name, analysis, enc, path);
        continue;
      }
      if (name === 'exports' && locals !== undefined) {
        syntheticNames.push(name);
        syntheticValues.push(this.localsSlot(analysis, enc, path));
      } else if (name === 'require') {
        syntheticNames.push(name);
        syntheticValues.push(enc.add([Kind.REQUIRE]));
      } else if (
        !standard.has(name) &&
        Object.prototype.hasOwnProperty.call(globalThis, name) &&
        !globalIndex().has((globalThis as Record<string, unknown>)[name])
      ) {
        syntheticNames.push(name);
        syntheticValues.push(
          enc.encode((globalThis as Record<string, unknown>)[name], pathTo(path, `captured global ${name}`)),
        );
      }
    }
    const innermost = records[0]?.ref ?? null;
    if (syntheticNames.length === 0) return innermost;
    return enc.add([Kind.SCOPE, innermost, syntheticNames, syntheticValues]);
  }

  private use(record: ScopeRecord, name: string, analysis: Analysis, enc: Encoder, path: Path): void {
    if (record.used.has(name)) {
      if (name === 'exports' && record.values[record.names.indexOf(name)] === this.options.locals)
        this.localsSlot(analysis, enc, path);
      return;
    }
    record.used.add(name);
    const names = record.node[2] as string[];
    const values = record.node[3] as Slot[];
    const index = names.length;
    names.push(name);
    values.push(undefined);
    const value = record.values[record.names.indexOf(name)];
    if (value === UNINITIALIZED) values[index] = enc.add([Kind.UNINITIALIZED]);
    else
      values[index] =
        value === this.options.locals && value !== undefined
          ? this.localsSlot(analysis, enc, path)
          : enc.encode(value, pathTo(path, `captured ${name}`));
  }

  /** The notebook locals as one object node for the whole pickle, holding the members functions read. */
  private localsSlot(analysis: Analysis, enc: Encoder, path: Path): Ref {
    const locals = this.options.locals!;
    if (!this.localsNode || this.localsRef === undefined) {
      this.localsNode = [Kind.OBJECT, undefined, [], Integrity.NONE];
      this.localsRef = enc.remember(locals, this.localsNode);
    }
    const props = this.localsNode[2] as Slot[];
    const members =
      analysis.exportsMembers === 'all' || analysis.exportsMembers === null
        ? Object.keys(locals)
        : [...analysis.exportsMembers];
    for (const name of members) {
      if (this.localsNames.has(name)) continue;
      this.localsNames.add(name);
      if (!(name in locals)) continue; // read but never defined: stays undefined remotely as here
      props.push(name, enc.encode(locals[name], pathTo(path, `captured ${name}`)));
    }
    return this.localsRef;
  }

  checkInstance(obj: object, enc: Encoder, path: Path): void {
    const globals = globalIndex();
    for (
      let proto = Object.getPrototypeOf(obj) as object | null;
      proto && !globals.has(proto);
      proto = Object.getPrototypeOf(proto) as object | null
    ) {
      const ctor = ownConstructor(proto);
      if (!ctor || !this.mayHavePrivate(ctor)) continue;
      const names = this.inspector.privateMembers(obj);
      if (names.length > 0) {
        enc.fail(
          path,
          `an instance of class ${ctor.name || '(anonymous)'} has private members (${names.join(', ')}) that cannot be read from outside the class`,
          enc.options.refusalHint === undefined
            ? "Use ordinary properties (TypeScript's `private` keyword is fine), or create the instance inside the remote function"
            : "Use ordinary properties (TypeScript's `private` keyword is fine), or return plain data and keep the instance on the agent",
        );
      }
      return;
    }
  }

  private mayHavePrivate(ctor: Function): boolean {
    let known = this.privateCache.get(ctor);
    if (known === undefined) {
      const source = fnSource(ctor);
      known = /^class\b/.test(source) && /#[\p{ID_Start}$_]/u.test(source);
      this.privateCache.set(ctor, known);
    }
    return known;
  }
}
