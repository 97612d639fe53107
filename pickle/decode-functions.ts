// The function half of the unpickler: materializes FUNCTION nodes from the program compile.ts builds and binds
// their captured variables. A plain function is created at once and its variables are bound from the queue; a class
// (or a method with a computed key) is created only after the variables its definition reads are bound, and its base
// class before it. The data half (decode.ts) extends this class.

import { compileFunctions, ScopeSetter, Thunk } from './compile';
import type { UnpickleContext } from './decode';
import { UnpickleError } from './errors';
import { FnBits, Integrity, isRef, Kind, Node, Slot } from './format';
import { recordOrigin } from './origins';

/** Thrown while a class is being defined and something reaches it again (its captured values refer to it). */
class InProgress {
  constructor(readonly fn: Node) {}
}

interface ScopeState {
  setter: ScopeSetter;
  bound: boolean[];
}

export abstract class FunctionDecoder {
  protected readonly memo = new Map<Node, unknown>();
  protected readonly queue: (() => void)[] = [];
  protected readonly integrity: [object, Integrity][] = [];
  private readonly scopes = new Map<Node, ScopeState>();
  private readonly fns = new Map<Node, Thunk>();
  private readonly inProgress = new Set<Node>();
  private readonly deferred = new Map<Node, (() => void)[]>();
  private compiled = false;
  private readonly functions: Node[];

  constructor(
    protected readonly context: UnpickleContext,
    private readonly table: Node[],
    functionRefs: Slot[],
  ) {
    this.functions = functionRefs.map((ref) => this.node(ref)!);
  }

  abstract resolve(slot: Slot): unknown;
  protected abstract applyProps(obj: object, props: Slot[]): void;

  /** The node a ref names (null for null). */
  protected node(slot: Slot): Node | null {
    if (slot === null || slot === undefined) return null;
    const node = isRef(slot) ? this.table[Number(slot)] : undefined;
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a corrupt pickle holds anything: shown as String shows it
    if (!Array.isArray(node)) throw new UnpickleError(`corrupt pickle: ${String(slot)} is not a node reference`);
    return node;
  }

  protected later(task: () => void): void {
    this.queue.push(task);
  }

  protected materialize(node: Node): unknown {
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- InProgress is a signal caught by the decoder, not an error
    if (this.inProgress.has(node)) throw new InProgress(node);
    if (!this.compiled) this.compile();
    const thunk = this.fns.get(node);
    if (!thunk) throw new UnpickleError('corrupt pickle: a function that is not in the function list');
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
            if (err instanceof InProgress)
              throw new UnpickleError('a class extends itself through its captured values');
            throw err;
          }
        }
        made = this.callThunk(thunk, node, heritage);
      } finally {
        this.inProgress.delete(node);
      }
      this.memo.set(node, made);
    } else {
      made = this.callThunk(thunk, node, undefined);
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

  private callThunk(thunk: Thunk, node: Node, heritage: unknown): unknown {
    const bits = node[6] as number;
    const self = bits & FnBits.HAS_THIS ? this.resolve(node[10]) : undefined;
    const made = thunk.call(self, heritage);
    if (!(bits & FnBits.METHOD)) return made;
    const holder = made as object;
    const key = Reflect.ownKeys(holder)[0];
    const desc = key === undefined ? undefined : Object.getOwnPropertyDescriptor(holder, key);
    // eslint-disable-next-line @typescript-eslint/unbound-method -- the accessor or method is the value being rebuilt, not called here
    const value: unknown = bits & FnBits.GETTER ? desc?.get : bits & FnBits.SETTER ? desc?.set : desc?.value;
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
        if (isRef(values[i]) && this.node(values[i])?.[0] === Kind.UNINITIALIZED) continue; // stays in its temporal dead zone
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

  /** Compiles every function of the pickle in one program (see compile.ts). */
  private compile(): void {
    this.compiled = true;
    const { scopes, fns } = compileFunctions(this.functions, (slot) => this.node(slot), this.context);
    for (const [scope, setter] of scopes) this.scopes.set(scope, { setter, bound: [] });
    for (const [fn, thunk] of fns) this.fns.set(fn, thunk);
  }
}
