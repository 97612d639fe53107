// Scope records: one SCOPE node per captured scope instance, shared by every function that closes over it. Scopes
// that differ in function, bindings or values are apart; equal-looking ones are told apart by scope-probe.ts (the
// inspector shows scopes as copies, without identity). Script and Module scopes exist once and need no probe.

import type { Encoder } from '../encode';
import { Kind, Node, Ref } from '../format';
import { ClosureInspector, ClosureScope, UNINITIALIZED } from './inspect';
import { isNativeSource } from '../unpicklable';
import { pausable, ScopeProbe, ScopeSide } from './scope-probe';

export interface ScopeRecord {
  /** The first function seen with this scope, and where the scope is in its list: what probes compare against. */
  witness: ScopeSide;
  node: Node;
  ref: Ref;
  description: string;
  names: string[];
  values: unknown[];
  parent: ScopeRecord | null;
  used: Set<string>;
}

const fnSource = (fn: Function): string => Function.prototype.toString.call(fn);

/** Function-valued bindings looked into per scope before probing instead (each costs an inspector call). */
const MAX_DECLARED_CHECKS = 8;

export class ScopeRecords {
  private readonly records = new Map<string, ScopeRecord[]>();

  constructor(
    private readonly inspector: ClosureInspector,
    private readonly probe: ScopeProbe,
  ) {}

  /** The record for a scope of the chain: an existing one when it is the same scope (see the top of this file). */
  record(scope: ClosureScope, side: ScopeSide, parent: ScopeRecord | null, enc: Encoder): ScopeRecord {
    const key = `${scope.description}\u0000${scope.names.join(',')}`;
    const candidates = this.records.get(key);
    const alike = (candidates ?? []).filter(
      (c) => c.parent === parent && c.values.every((v, i) => Object.is(v, scope.values[i])),
    );
    const same = this.sameScope(alike, side, scope);
    if (same) return same;
    const node: Node = [Kind.SCOPE, parent?.ref ?? null, [], []];
    const record: ScopeRecord = {
      witness: side,
      node,
      ref: enc.add(node),
      description: scope.description,
      names: scope.names,
      values: scope.values,
      parent,
      used: new Set(),
    };
    if (candidates) candidates.push(record);
    else this.records.set(key, [record]);
    return record;
  }

  /** Which equal-looking record is this scope's; when the probe cannot tell, equal values are taken as one scope. */
  private sameScope(alike: ScopeRecord[], side: ScopeSide, scope: ClosureScope): ScopeRecord | undefined {
    if (alike.length === 0) return undefined;
    const own = alike.find((c) => c.witness.fn === side.fn && c.witness.index === side.index);
    if (own || scope.type === 'Script' || scope.type === 'Module') return own ?? alike[0];
    const live = scope.names.flatMap((name, i) =>
      scope.values[i] === UNINITIALIZED ? [] : [{ name, value: scope.values[i] }],
    );
    if (live.length === 0) return alike[0]; // nothing that could be shared or told apart
    const stand = this.standIn(side);
    if (
      alike.length === 1 &&
      this.probe.known(alike[0]!.witness, stand) === undefined &&
      this.declaresOwnFunction(scope)
    ) {
      this.probe.remember(alike[0]!.witness, stand, true);
    }
    const found = this.probe.find(
      alike.map((c) => c.witness),
      stand,
      live.map((b) => b.name),
      live.map((b) => b.value),
    );
    return found === undefined ? alike[0] : found === -1 ? undefined : alike[found];
  }

  /**
   * Whether one of the scope's bindings holds a function made in a scope that looks the same: then that is this
   * very scope instance (another instance's binding would hold its own function, made there), so an equal-looking
   * scope is it, unless code assigned a function across instances of one scope. A module's or a cell's scope usually
   * holds such a function, so its closures need no probe; a factory that returns only inline arrows (a counter's
   * `inc` and `get`) does not, and is probed. The answer is kept with the probe's, so it is looked for once.
   */
  private declaresOwnFunction(scope: ClosureScope): boolean {
    let checked = 0;
    for (const value of scope.values) {
      if (typeof value !== 'function' || isNativeSource(fnSource(value))) continue;
      if (++checked > MAX_DECLARED_CHECKS) return false;
      const made = this.inspector
        .scopes(value)
        .some(
          (s) =>
            s.description === scope.description &&
            s.names.length === scope.names.length &&
            s.names.every((n, i) => n === scope.names[i] && Object.is(s.values[i], scope.values[i])),
        );
      if (made) return true;
    }
    return false;
  }

  /**
   * A class cannot be paused at its entry without running code; one of its methods sees the same scopes (after the
   * class's own), so the probe pauses that instead.
   */
  private standIn(side: ScopeSide): ScopeSide {
    if (!/^class\b/.test(fnSource(side.fn))) return side;
    const proto = (side.fn as { prototype?: object }).prototype;
    for (const holder of [side.fn, proto]) {
      if (!holder) continue;
      for (const desc of Object.values(Object.getOwnPropertyDescriptors(holder))) {
        // eslint-disable-next-line @typescript-eslint/unbound-method -- only looked at, never called here
        for (const m of [desc.value, desc.get, desc.set]) {
          if (typeof m !== 'function' || m === side.fn || !pausable(m as Function)) continue;
          const count = this.inspector.scopes(m as Function).length;
          if (count >= side.count)
            return { fn: m as Function, index: side.index + count - side.count, count, type: side.type };
        }
      }
    }
    return side;
  }
}
