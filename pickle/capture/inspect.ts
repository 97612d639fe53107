// Reading what JavaScript cannot: a function's closure scopes, a bound function's parts, an object's private
// members, through an in-process `inspector.Session`. In-process, `post` answers synchronously (the callback runs
// before `post` returns), so the capture stays synchronous. A function's `[[Scopes]]` internal property is a list
// of {description, object}; calling a function on the list hands us the scope objects themselves, whose own
// properties are the scope's bindings. About 50 us per function here.
//
// A binding still in its temporal dead zone reads as `undefined` in those objects unless V8's
// --experimental-value-unavailable is on; with it, reading the binding throws, which is how UNINITIALIZED is told
// apart from a real `undefined`. The flag changes only what debuggers show for such bindings.

import * as inspector from 'node:inspector';
import * as v8 from 'node:v8';

/** The value of a captured `let`/`const`/`class` binding still in its temporal dead zone. */
export const UNINITIALIZED: unique symbol = Symbol('tslab-remote.uninitialized');

const STASH = Symbol.for('tslab-remote.pickle.stash');
const STASH_EXPR = 'globalThis[Symbol.for("tslab-remote.pickle.stash")]';
const GROUP = 'tslab-remote-pickle';

interface Stash {
  value?: unknown;
  out?: unknown;
  uninitialized: typeof UNINITIALIZED;
}

export interface ClosureScope {
  /** 'Closure', 'Block', 'Script', 'Local', 'Catch', 'With', 'Module', 'Eval' */
  type: string;
  /** As the inspector shows it: 'Closure (makeCounter)'. */
  description: string;
  names: string[];
  values: unknown[];
}

interface RemoteObject {
  type: string;
  subtype?: string;
  value?: unknown;
  unserializableValue?: string;
  objectId?: string;
  description?: string;
}

interface PropertyDescriptorResult {
  name: string;
  value?: RemoteObject;
}

interface GetPropertiesResult {
  result: PropertyDescriptorResult[];
  internalProperties?: PropertyDescriptorResult[];
  privateProperties?: PropertyDescriptorResult[];
}

export class ClosureInspector {
  private session: inspector.Session | null = null;
  private used = false;

  private stash(): Stash {
    const g = globalThis as unknown as Record<symbol, Stash | undefined>;
    let stash = g[STASH];
    if (!stash) {
      stash = { uninitialized: UNINITIALIZED };
      Object.defineProperty(globalThis, STASH, {
        value: stash,
        configurable: true,
        enumerable: false,
        writable: false,
      });
    }
    return stash;
  }

  private post<T>(method: string, params: object): T {
    if (!this.session) {
      v8.setFlagsFromString('--experimental-value-unavailable');
      this.session = new inspector.Session();
      this.session.connect();
    }
    this.used = true;
    let error: Error | null = null;
    let result: T | undefined;
    let answered = false;
    this.session.post(method, params, (err: Error | null, res?: object) => {
      answered = true;
      error = err;
      result = res as T;
    });
    if (!answered) throw new Error(`inspector ${method} did not answer synchronously`);
    if (error) throw error as Error;
    return result as T;
  }

  private objectId(value: unknown): string {
    const stash = this.stash();
    stash.value = value;
    try {
      const { result } = this.post<{ result: RemoteObject }>('Runtime.evaluate', {
        expression: `${STASH_EXPR}.value`,
        objectGroup: GROUP,
        silent: true,
      });
      if (!result.objectId) throw new Error('the inspector gave no object id');
      return result.objectId;
    } finally {
      stash.value = undefined;
    }
  }

  /** The JavaScript value a RemoteObject stands for. */
  private toValue(remote: RemoteObject | undefined): unknown {
    if (!remote || remote.type === 'undefined') return undefined;
    const stash = this.stash();
    const argument = remote.objectId
      ? { objectId: remote.objectId }
      : remote.unserializableValue
        ? { unserializableValue: remote.unserializableValue }
        : { value: remote.value };
    const holder = this.objectId(stash);
    this.post('Runtime.callFunctionOn', {
      objectId: holder,
      functionDeclaration: 'function (v) { this.out = v; }',
      arguments: [argument],
      objectGroup: GROUP,
      silent: true,
    });
    const out = stash.out;
    stash.out = undefined;
    return out;
  }

  private internals(value: unknown): GetPropertiesResult {
    return this.post<GetPropertiesResult>('Runtime.getProperties', {
      objectId: this.objectId(value),
      ownProperties: true,
      nonIndexedPropertiesOnly: true,
      generatePreview: false,
    });
  }

  /** The closure scopes of `fn`, innermost first, without the Global scope. */
  scopes(fn: Function): ClosureScope[] {
    const props = this.internals(fn);
    const list = props.internalProperties?.find((p) => p.name === '[[Scopes]]')?.value?.objectId;
    if (!list) return [];
    const stash = this.stash();
    stash.uninitialized = UNINITIALIZED; // a stash left by another copy of this module holds that copy's symbol
    this.post('Runtime.callFunctionOn', {
      objectId: list,
      functionDeclaration: `function () {
        const uninitialized = ${STASH_EXPR}.uninitialized;
        const out = [];
        for (let i = 0; i < this.length; i++) {
          const scope = this[i];
          const description = String(scope.description);
          if (description === 'Global') continue;
          const object = scope.object;
          const names = Object.getOwnPropertyNames(object);
          const values = names.map((name) => { try { return object[name]; } catch { return uninitialized; } });
          out.push({ description, names, values });
        }
        ${STASH_EXPR}.out = out;
      }`,
      objectGroup: GROUP,
      silent: true,
    });
    const raw = (stash.out as { description: string; names: string[]; values: unknown[] }[] | undefined) ?? [];
    stash.out = undefined;
    return raw.map((scope) => ({ ...scope, type: scope.description.split(' ')[0] ?? scope.description }));
  }

  /** A bound function's target, `this` and arguments; null when `fn` is not bound. */
  bound(fn: Function): { target: Function; thisArg: unknown; args: unknown[] } | null {
    const props = this.internals(fn);
    const internal = new Map((props.internalProperties ?? []).map((p) => [p.name, p.value]));
    if (!internal.has('[[TargetFunction]]')) return null;
    const target = this.toValue(internal.get('[[TargetFunction]]')) as Function;
    const thisArg = this.toValue(internal.get('[[BoundThis]]'));
    const args = this.toValue(internal.get('[[BoundArgs]]'));
    return { target, thisArg, args: Array.isArray(args) ? args : [] };
  }

  /** Names of an object's private members (`#x`, and 'private methods' when it has any). */
  privateMembers(obj: object): string[] {
    const props = this.internals(obj);
    const names = (props.privateProperties ?? []).map((p) => p.name);
    if (props.internalProperties?.some((p) => p.name === '[[PrivateMethods]]')) names.push('private methods');
    return names;
  }

  /** An object's private fields and their values (not accessors or methods, which evaluating the class recreates). */
  privateFields(obj: object): { name: string; value: unknown }[] {
    const fields = (this.internals(obj).privateProperties ?? []).filter((p) => p.value !== undefined);
    return fields.map((p) => ({ name: p.name, value: this.toValue(p.value) }));
  }

  /** Lets the inspector drop the objects this pickle looked at. */
  release(): void {
    if (!this.session || !this.used) return;
    this.post('Runtime.releaseObjectGroup', { objectGroup: GROUP });
    this.used = false;
  }
}

let shared: ClosureInspector | null = null;

export function closureInspector(): ClosureInspector {
  shared ??= new ClosureInspector();
  return shared;
}
