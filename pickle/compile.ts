// Compiles every FUNCTION node of a pickle at once, in one generated program whose nested blocks mirror the
// captured scopes:
//
//   [ (() => { let a, b;                                                         // a captured scope
//         return [($i, $v) => { switch ($i) { case 0: a = $v; break; ... } },      //   its setter
//                 [function () { "use strict"; return (SOURCE); }, ...],            //   functions created in it
//                 [ ...child scopes... ]]; })(), ... ]
//
// so closures that shared a variable locally share one binding here. The decoder calls the thunks and setters.

import * as vm from 'node:vm';

import { DYNAMIC_IMPORT } from './dynamic-import';
import { UnpickleError } from './errors';
import { FnBits, isRef, Kind, Node, Slot } from './format';

export type ScopeSetter = ((index: number, value: unknown) => void) | null;
export type Thunk = (heritage?: unknown) => unknown;

export interface Compiled {
  /** Each captured scope's setter (null for a scope without variables). */
  scopes: Map<Node, ScopeSetter>;
  /** Each function's thunk: evaluates its source inside its scope. */
  fns: Map<Node, Thunk>;
}

export function compileFunctions(
  functions: readonly Node[],
  node: (slot: Slot) => Node | null,
  options: { filename?: string; onProgram?(program: string): void },
): Compiled {
  const scopes = new Map<Node, ScopeSetter>();
  const fns = new Map<Node, Thunk>();
  const childScopes = new Map<Node | null, Node[]>();
  const fnsIn = new Map<Node | null, Node[]>();
  const seenScopes = new Set<Node>();
  for (const fn of functions) {
    const scope = node(fn[4]);
    push(fnsIn, scope, fn);
    for (let s = scope; s && !seenScopes.has(s); s = node(s[1])) {
      seenScopes.add(s);
      push(childScopes, node(s[1]), s);
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
    // A binding in its temporal dead zone is declared after the return, so it stays there: reading it throws.
    const values = scope[3] as Slot[];
    const dead = names.filter((_, i) => isRef(values[i]) && node(values[i])?.[0] === Kind.UNINITIALIZED);
    const live = names.flatMap((name, i) => (dead.includes(name) ? [] : [{ name, i }]));
    const cases = live.map(({ name, i }) => `case ${i}: ${name} = ${vName}; break;`).join(' ');
    const decl = live.length > 0 ? `let ${live.map((v) => v.name).join(', ')}; ` : '';
    const deadDecl = dead.length > 0 ? ` let ${dead.join(', ')};` : '';
    const setter = live.length > 0 ? `(${iName}, ${vName}) => { switch (${iName}) { ${cases} } }` : 'null';
    const inner = children.map(scopeExpr);
    return `(() => { ${decl}return [${setter}, [\n${fns.map(thunk).join(',\n')}\n], [${inner.join(', ')}]];${deadDecl} })()`;
  };
  for (const root of childScopes.get(null) ?? []) parts.push(scopeExpr(root));
  const top = fnsIn.get(null) ?? [];
  if (top.length > 0) {
    order.push({ kind: 'top', scope: null, fns: top, children: [] });
    parts.push(`[null, [\n${top.map(thunk).join(',\n')}\n], []]`);
  }
  const code = `[\n${parts.join(',\n')}\n]`;
  options.onProgram?.(code);
  let results: unknown[];
  try {
    results = new vm.Script(code, {
      filename: options.filename ?? 'tslab-remote-pickle.js',
      ...DYNAMIC_IMPORT,
    }).runInThisContext() as unknown[];
  } catch (err) {
    throw new UnpickleError(`the pickled functions do not compile on this side: ${(err as Error).message}`, {
      cause: err,
    });
  }
  // Walk the results in the order the expressions were generated: depth first, scopes before their children.
  let at = 0;
  const take = (result: unknown): void => {
    const entry = order[at++]!;
    const [setter, thunks, children] = result as [ScopeSetter, Thunk[], unknown[]];
    if (entry.scope) scopes.set(entry.scope, setter);
    entry.fns.forEach((fn, i) => fns.set(fn, thunks[i]!));
    for (const child of children) take(child);
  };
  for (const result of results) take(result);
  return { scopes, fns };
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
