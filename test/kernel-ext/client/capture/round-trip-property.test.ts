// Property-based round trip: random graphs of objects, arrays, Maps, Sets, typed arrays that share buffers at
// offsets, cycles, class instances and closures go to a real agent on loopback (as an argument or captured by the
// shipped function), come back as its result, and must equal the local value: structure, identity (sharing and
// cycles), prototypes, buffer sharing with the same distances between views, and what every closure returns when
// called remotely. A third way builds the graph on the agent: its closures, counters (often over equal values) and
// instances of a class made there come back by value and go on as the local ones do. Seeded: a failure prints the
// seed and path, and PICKLE_PROPERTY_SEED=n replays it.

import { expect } from 'chai';
import * as fc from 'fast-check';

import { agentWithClient } from '../../../support/agent-process';

const RUNS = 2000;
const TIME_LIMIT_MS = 40_000;
const SEED = process.env.PICKLE_PROPERTY_SEED ? Number(process.env.PICKLE_PROPERTY_SEED) : 20261203;

class Point {
  constructor(
    public x: unknown,
    public y: unknown,
  ) {}
  norm(): string {
    return `${String(this.x)},${String(this.y)}`;
  }
}

class Box extends Point {
  label = 'box';
}

type Recipe =
  | { t: 'prim'; v: unknown }
  | { t: 'obj'; entries: [string, Recipe][] }
  | { t: 'arr'; items: Recipe[] }
  | { t: 'map'; entries: [Recipe, Recipe][] }
  | { t: 'set'; items: Recipe[] }
  | { t: 'view'; type: number; buffer: number; offset: number; length: number }
  | { t: 'point'; box: boolean; x: Recipe; y: Recipe }
  | { t: 'closure'; over: Recipe }
  | { t: 'counter'; start: number }
  | { t: 'thing'; v: Recipe }
  | { t: 'ref'; index: number };

const VIEWS = [Uint8Array, Int16Array, Float32Array, Float64Array, DataView] as const;
const BUFFER_BYTES = 64;

const primitive = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(-0, NaN, Infinity, null, undefined, true, false),
  fc.string({ maxLength: 8 }),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
);

const { recipe } = fc.letrec<{ recipe: Recipe }>((tie) => ({
  recipe: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    primitive.map((v): Recipe => ({ t: 'prim', v })),
    fc.nat().map((index): Recipe => ({ t: 'ref', index })),
    fc
      .record({ type: fc.nat(VIEWS.length - 1), buffer: fc.nat(2), offset: fc.nat(BUFFER_BYTES), length: fc.nat(16) })
      .map((v): Recipe => ({ t: 'view', ...v })),
    fc
      .array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'next', 'self'), tie('recipe')), { maxLength: 4 })
      .map((entries): Recipe => ({ t: 'obj', entries })),
    fc.array(tie('recipe'), { maxLength: 4 }).map((items): Recipe => ({ t: 'arr', items })),
    fc
      .array(fc.tuple(tie('recipe'), tie('recipe')), { maxLength: 3 })
      .map((entries): Recipe => ({ t: 'map', entries })),
    fc.array(tie('recipe'), { maxLength: 3 }).map((items): Recipe => ({ t: 'set', items })),
    fc.record({ box: fc.boolean(), x: tie('recipe'), y: tie('recipe') }).map((v): Recipe => ({ t: 'point', ...v })),
    tie('recipe').map((over): Recipe => ({ t: 'closure', over })),
    fc.integer({ min: -5, max: 5 }).map((start): Recipe => ({ t: 'counter', start })),
    tie('recipe').map((v): Recipe => ({ t: 'thing', v })),
  ),
}));

function makeCounter(start: number): () => number {
  let n = start;
  return () => ++n;
}

function makeReader(value: unknown): () => unknown {
  return () => value;
}

/** A class made anew by each build: made on the agent when the agent builds. */
function makeThingClass(): new (v: unknown) => { v: unknown; describe(): string } {
  let made = 0;
  return class Thing {
    readonly serial = ++made;
    constructor(public v: unknown) {}
    describe(): string {
      return `thing ${this.serial} of ${made}`;
    }
  };
}

/** Builds the value of a recipe; containers are registered before their contents, so refs can make cycles. */
function build(root: Recipe): unknown {
  const built: object[] = [];
  const Thing = makeThingClass();
  const buffers = [new ArrayBuffer(BUFFER_BYTES), new ArrayBuffer(BUFFER_BYTES), new ArrayBuffer(BUFFER_BYTES)];
  const make = (r: Recipe): unknown => {
    switch (r.t) {
      case 'prim':
        return r.v;
      case 'ref':
        return built.length === 0 ? null : built[r.index % built.length];
      case 'view': {
        const ctor = VIEWS[r.type]!;
        const size = 'BYTES_PER_ELEMENT' in ctor ? ctor.BYTES_PER_ELEMENT : 1;
        const offset = Math.min(r.offset - (r.offset % size), BUFFER_BYTES);
        const length = Math.min(r.length, Math.floor((BUFFER_BYTES - offset) / size));
        const view = new ctor(buffers[r.buffer]!, offset, length);
        if (!(view instanceof DataView)) for (let i = 0; i < length; i++) view[i] = (offset + i) % 100;
        built.push(view);
        return view;
      }
      case 'obj': {
        const obj: Record<string, unknown> = {};
        built.push(obj);
        for (const [key, value] of r.entries) obj[key] = key === 'self' ? obj : make(value);
        return obj;
      }
      case 'arr': {
        const arr: unknown[] = [];
        built.push(arr);
        for (const item of r.items) arr.push(make(item));
        return arr;
      }
      case 'map': {
        const map = new Map<unknown, unknown>();
        built.push(map);
        for (const [key, value] of r.entries) map.set(make(key), make(value));
        return map;
      }
      case 'set': {
        const set = new Set<unknown>();
        built.push(set);
        for (const item of r.items) set.add(make(item));
        return set;
      }
      case 'point': {
        const point = r.box ? new Box(undefined, undefined) : new Point(undefined, undefined);
        built.push(point);
        point.x = make(r.x);
        point.y = make(r.y);
        return point;
      }
      case 'closure': {
        const fn = makeReader(make(r.over));
        built.push(fn);
        return fn;
      }
      case 'thing': {
        const thing = new Thing(undefined);
        built.push(thing);
        thing.v = make(r.v);
        return thing;
      }
      case 'counter': {
        // Small starting values, so that two counters' variables often hold equal values: they stay two counters.
        const fn = makeCounter(r.start);
        built.push(fn);
        return fn;
      }
    }
  };
  return make(root);
}

/** Calls every function of a graph once, in a fixed walk order; runs remotely (shipped) and locally alike. */
function callAll(root: unknown): unknown[] {
  const seen = new Set<unknown>();
  const out: unknown[] = [];
  const walk = (v: unknown): void => {
    if ((typeof v !== 'object' && typeof v !== 'function') || v === null || seen.has(v)) return;
    seen.add(v);
    if (typeof v === 'function') {
      const got = (v as () => unknown)();
      out.push(typeof got === 'object' && got !== null ? 'object' : typeof got === 'function' ? 'function' : got);
      return;
    }
    if (ArrayBuffer.isView(v)) return;
    if (typeof (v as { describe?: unknown }).describe === 'function')
      out.push((v as { describe(): string }).describe());
    if (v instanceof Map) {
      for (const [k, x] of v) {
        walk(k);
        walk(x);
      }
    } else if (v instanceof Set) for (const x of v) walk(x);
    for (const key of Reflect.ownKeys(v)) walk((v as Record<PropertyKey, unknown>)[key]);
  };
  walk(root);
  return out;
}

const SHARED_PROTOTYPES = new Set<unknown>([
  Object.prototype,
  Array.prototype,
  Map.prototype,
  Set.prototype,
  Point.prototype,
  Box.prototype,
  DataView.prototype,
  ...VIEWS.map((v) => v.prototype),
]);

/**
 * Asserts that `remote` is the same graph as `local`: shapes, prototypes, sharing, buffers and their offsets. With
 * `madeRemotely`, functions and classes made on the agent came back by value: a function is paired with its local
 * counterpart (one each way), a class's prototype likewise, with the same constructor name.
 */
function assertSameGraph(local: unknown, remote: unknown, madeRemotely = false): void {
  const pairs = new Map<unknown, unknown>();
  const reverse = new Map<unknown, unknown>();
  const bufferShift = new Map<ArrayBufferLike, [ArrayBufferLike, number]>();
  const pair = (a: unknown, b: unknown, at: string, what: string): void => {
    expect(typeof b, `${at}: ${what}`).to.equal(typeof a);
    if (pairs.has(a) || reverse.has(b)) expect(pairs.get(a), `${at}: ${what} is shared as here`).to.equal(b);
    pairs.set(a, b);
    reverse.set(b, a);
  };
  const same = (a: unknown, b: unknown, at: string): void => {
    if (typeof a === 'function') {
      if (!madeRemotely) expect(b, `${at}: a function comes back as itself`).to.equal(a);
      else pair(a, b, at, 'a function made on the agent');
      return;
    }
    if (typeof a !== 'object' || a === null) {
      expect(Object.is(a, b), `${at}: ${String(a)} vs ${String(b)}`).to.equal(true);
      return;
    }
    expect(typeof b === 'object' && b !== null, `${at}: an object`).to.equal(true);
    if (pairs.has(a) || reverse.has(b)) {
      expect(pairs.get(a), `${at}: sharing and cycles are kept`).to.equal(b);
      return;
    }
    pairs.set(a, b);
    reverse.set(b, a);
    const bo = b as object;
    const proto = Object.getPrototypeOf(a) as object;
    if (!madeRemotely || SHARED_PROTOTYPES.has(proto))
      expect(Object.getPrototypeOf(bo), `${at}: prototype`).to.equal(proto);
    else {
      pair(proto, Object.getPrototypeOf(bo), at, 'the prototype of a class made on the agent');
      expect((Object.getPrototypeOf(bo) as { constructor: Function }).constructor.name, `${at}: class`).to.equal(
        (proto as { constructor: Function }).constructor.name,
      );
    }
    if (ArrayBuffer.isView(a)) {
      const bv = bo as ArrayBufferView;
      expect(
        Buffer.from(bv.buffer, bv.byteOffset, bv.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength)),
        `${at}: bytes`,
      ).to.equal(true);
      const known = bufferShift.get(a.buffer);
      const shift = bv.byteOffset - a.byteOffset;
      if (known)
        expect([known[0], known[1]], `${at}: views of one buffer share one, at the same distances`).to.deep.equal([
          bv.buffer,
          shift,
        ]);
      else {
        for (const [, [other]] of bufferShift)
          expect(other, `${at}: views of different buffers do not share one`).to.not.equal(bv.buffer);
        bufferShift.set(a.buffer, [bv.buffer, shift]);
      }
      return;
    }
    if (a instanceof Map) {
      const be = [...(bo as Map<unknown, unknown>)];
      const ae = [...a];
      expect(be.length, `${at}: Map size`).to.equal(ae.length);
      ae.forEach(([k, v], i) => (same(k, be[i]![0], `${at}<key ${i}>`), same(v, be[i]![1], `${at}<value ${i}>`)));
    } else if (a instanceof Set) {
      const bs = [...(bo as Set<unknown>)];
      const as = [...a];
      expect(bs.length, `${at}: Set size`).to.equal(as.length);
      as.forEach((v, i) => same(v, bs[i], `${at}<member ${i}>`));
    }
    const keys = Reflect.ownKeys(a);
    expect(Reflect.ownKeys(bo), `${at}: keys`).to.deep.equal(keys);
    for (const key of keys)
      same((a as Record<PropertyKey, unknown>)[key], (bo as Record<PropertyKey, unknown>)[key], `${at}.${String(key)}`);
  };
  same(local, remote, 'value');
}

describe('pickle round trip through a real agent, property-based', function () {
  this.timeout(TIME_LIMIT_MS + 30_000);
  const suite = agentWithClient();

  it(`random graphs come back as the same graph (seed ${SEED}, up to ${RUNS} cases)`, async () => {
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(recipe, fc.constantFrom('argument', 'captured', 'made remotely'), async (r, how) => {
        cases++;
        const expectedCalls = callAll(build(r)); // a fresh copy: calling counters changes them
        if (how === 'made remotely') {
          // Built on the agent: its closures, counters and Thing class come back by value, with their state.
          const local = build(r);
          callAll(local);
          const back = (await suite.client.call(() => {
            const value = build(r);
            return { value, calls: callAll(value) };
          }, []).result) as { value: unknown; calls: unknown[] };
          expect(back.calls, 'closures called remotely return what they return here').to.deep.equal(expectedCalls);
          assertSameGraph(local, back.value, true);
          expect(callAll(back.value), 'what came back goes on as the local value does').to.deep.equal(callAll(local));
          return;
        }
        const value = build(r);
        const echo =
          how === 'captured'
            ? () => ({ value, calls: callAll(value) })
            : (v: unknown) => ({ value: v, calls: callAll(v) });
        const back = (await suite.client.call(echo, how === 'captured' ? [] : [value]).result) as {
          value: unknown;
          calls: unknown[];
        };
        assertSameGraph(value, back.value);
        expect(back.calls, 'closures called remotely return what they return here').to.deep.equal(expectedCalls);
      }),
      { seed: SEED, numRuns: RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false },
    );
    expect(cases, 'cases run before the time limit').to.be.greaterThan(100);
  });
});
