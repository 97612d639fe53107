// The pickle scenario matrix, as data, so that the same scenarios run through a child process here
// (test/kernel-ext/client/capture/capture-scenarios.test.ts) and through a real agent later.
//
// Each scenario's make() builds a fresh function (and arguments) with fresh state. A runner calls make() twice: once
// to compute the expected result locally by calling fn(...args) (unless `expected` is given), once to pickle with
// `pickleCall(fn, args, { codeRoot: PICKLE_FIXTURE_ROOT, ...context })`, run `fn(...args)` on the other side,
// pickle the result back with `pickleResult(result, { codeRoot })`, unpickle it here with
// `{ localClasses: localRegistry }`, and compare: `digest` (when given) maps both results first, then deep equality,
// then `check(result, call)` for what deep equality cannot see (instances of local classes, identity).
// Unpicklable scenarios give `error`: pickleCall must throw a PickleError with exactly that message.
//
// Local modules come from test/fixtures/pickle/project (the code root of these scenarios).

import * as assert from 'node:assert/strict';
import * as fsStar from 'fs';
import fsReq = require('fs');
import * as net from 'node:net';
import * as path from 'node:path';
import * as vm from 'node:vm';

export const PICKLE_FIXTURE_ROOT = path.resolve(__dirname, '../../../test/fixtures/pickle/project');

export interface ScenarioCall {
  fn: Function;
  args?: unknown[];
  /** The expected result; when absent, the result of calling fn(...args) of a fresh make() locally. */
  expected?: unknown;
  /** Maps both the local and the remote result before they are compared (checksums of large arrays). */
  digest?(result: unknown): unknown;
  /** Checks on the remote result that deep equality cannot make (instances of local classes, identity). */
  check?(result: unknown, call: ScenarioCall): void;
  /** PickleContext fields for this call (notebook locals, label). */
  context?: { locals?: Record<string, unknown>; label?: string };
  /** Runs after pickling, before the remote call: changes made here must not reach the remote side. */
  afterPickle?(): void;
  /** Unpicklable scenarios: the exact PickleError message. */
  error?: string;
  /** Anything check() needs from this make(): the classes pickled with the call, say. */
  refs?: Record<string, unknown>;
}

export interface PickleScenario {
  name: string;
  make(): ScenarioCall;
}

// Local modules, loaded from the code root so they travel as references.
const shapes = require(path.join(PICKLE_FIXTURE_ROOT, 'src/shapes.js')) as {
  Shape: new (name: string) => { name: string; describe(): string };
  Circle: new (r: number) => { r: number; area(): number; describe(): string };
  Square: new (side: number) => { side: number; area(): number };
  makeSquare(side: number): { side: number; area(): number };
};
const named = require(path.join(PICKLE_FIXTURE_ROOT, 'src/named.js')) as {
  scale(x: number): number;
  calls(): number;
  setFactor(f: number): void;
};
const greetModule = require(path.join(PICKLE_FIXTURE_ROOT, 'src/greet.js')) as {
  default(name: string): string;
  count(): number;
};
// A named import is just a value: the function itself, identical to the module's export.
const scale = named.scale;
// A default import as a value.
const greet = greetModule.default;

declare const __pickleScenarioGlobal: { v: number };

/** Checksum that depends on every element and its position. */
export function checksum(view: ArrayLike<number | bigint>): number {
  let sum = 0;
  for (let i = 0; i < view.length; i++) sum = (sum + Number(view[i]) * ((i % 7) + 1)) % 1_000_000_007;
  return sum;
}

/** Runs `code` the way tslab runs a cell: `(function (exports, require) { ... })(locals, require)`. */
function cell(locals: Record<string, unknown>, code: string): unknown {
  const wrapper = vm.runInThisContext(`(function (exports, require) { ${code}\n})`, {
    filename: 'notebook-cell.js',
  }) as (exports: unknown, req: NodeRequire) => unknown;
  return wrapper(locals, require);
}

/** tslab's locals: a Proxy over a plain object (its defineProperty trap stores values as data properties). */
function notebookLocals(): Record<string, unknown> {
  const target: Record<string, unknown> = {};
  return new Proxy(target, {
    defineProperty: (_t, prop, attrs) => {
      target[prop as string] = attrs.get ? attrs.get() : attrs.value;
      return true;
    },
  });
}

let scriptSerial = 0;

const BIG = 100_000; // elements: every kind's large array is above the 64 KiB out-of-band threshold

function typedArrays(n: number): Record<string, ArrayBufferView> {
  const f = (i: number): number => ((i * 7919) % 251) - 125;
  return {
    i8: Int8Array.from({ length: n }, (_, i) => f(i)),
    u8: Uint8Array.from({ length: n }, (_, i) => f(i) & 0xff),
    u8c: Uint8ClampedArray.from({ length: n }, (_, i) => f(i) + 125),
    i16: Int16Array.from({ length: n }, (_, i) => f(i) * 200),
    u16: Uint16Array.from({ length: n }, (_, i) => (f(i) + 125) * 200),
    i32: Int32Array.from({ length: n }, (_, i) => f(i) * 1_000_000),
    u32: Uint32Array.from({ length: n }, (_, i) => (f(i) + 125) * 10_000_000),
    f32: Float32Array.from({ length: n }, (_, i) => f(i) / 3),
    f64: Float64Array.from({ length: n }, (_, i) => f(i) / 7),
    i64: BigInt64Array.from({ length: n }, (_, i) => BigInt(f(i)) * 10_000_000_000n),
    u64: BigUint64Array.from({ length: n }, (_, i) => BigInt(f(i) + 125) * 10_000_000_000n),
    dv: new DataView(Uint8Array.from({ length: n }, (_, i) => i % 256).buffer),
    buf: Buffer.from(Uint8Array.from({ length: n }, (_, i) => (i * 13) % 256)),
  };
}

function typedSums(arrays: Record<string, ArrayBufferView>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, view] of Object.entries(arrays)) {
    if (view instanceof DataView) out[key] = [view.byteLength, view.getUint8(view.byteLength - 1)];
    else
      out[key] = [
        view.constructor.name,
        Buffer.isBuffer(view),
        (view as unknown as ArrayLike<number>).length,
        checksum(view as unknown as ArrayLike<number>),
      ];
  }
  return out;
}

export const pickleScenarios: PickleScenario[] = [
  {
    name: 'closure over one variable',
    make() {
      const k = 3;
      return { fn: (x: number) => x * k, args: [14] };
    },
  },
  {
    name: 'closures at several depths (function, block and loop scopes)',
    make() {
      const a = 1;
      function outer(b: number) {
        const c = b * 10;
        return function middle(d: number) {
          const fns: (() => number)[] = [];
          for (let i = 0; i < 3; i++) {
            const e = i * 1000;
            fns.push(() => a + b + c + d + e);
          }
          return fns;
        };
      }
      const fns = outer(2)(300);
      return { fn: () => fns.map((f) => f()), expected: [323, 1323, 2323] };
    },
  },
  {
    name: 'counter in a closure keeps counting remotely',
    make() {
      let n = 10;
      const inc = (): number => ++n;
      return { fn: () => [inc(), inc(), inc()], expected: [11, 12, 13] };
    },
  },
  {
    name: 'sibling closures share one captured variable',
    make() {
      function makeCounter() {
        let n = 0;
        return { inc: () => ++n, get: () => n, reset: () => (n = 0) };
      }
      const c = makeCounter();
      c.inc();
      return {
        fn: () => {
          c.inc();
          c.inc();
          return c.get();
        },
        expected: 3,
      };
    },
  },
  {
    name: 'two counters from one factory keep their own state',
    make() {
      function makeCounter(start: number) {
        let n = start;
        return { inc: () => ++n, get: () => n };
      }
      const c1 = makeCounter(0);
      const c2 = makeCounter(100);
      return {
        fn: () => {
          c1.inc();
          c1.inc();
          c2.inc();
          return [c1.get(), c2.get()];
        },
        expected: [2, 101],
      };
    },
  },
  {
    name: 'recursion through the function name',
    make() {
      function fact(n: bigint): bigint {
        return n <= 1n ? 1n : n * fact(n - 1n);
      }
      return { fn: fact, args: [25n], expected: 15511210043330985984000000n };
    },
  },
  {
    name: 'mutual recursion through captured bindings',
    make() {
      const isEven = (n: number): boolean => (n === 0 ? true : isOdd(n - 1));
      const isOdd = (n: number): boolean => (n === 0 ? false : isEven(n - 1));
      return { fn: (n: number) => [isEven(n), isOdd(n)], args: [41], expected: [false, true] };
    },
  },
  {
    name: 'higher-order functions',
    make() {
      const compose =
        <T>(...fs: ((x: T) => T)[]) =>
        (x: T): T =>
          fs.reduceRight((acc, f) => f(acc), x);
      const double = (x: number) => x * 2;
      const inc = (x: number) => x + 1;
      const pipeline = compose(double, inc);
      const applyAll = (fns: ((x: number) => number)[], xs: number[]) =>
        xs.map((x) => fns.reduce((acc, f) => f(acc), x));
      return { fn: (xs: number[]) => [xs.map(pipeline), applyAll([inc, double, pipeline], xs)], args: [[1, 2, 3]] };
    },
  },
  {
    name: 'currying',
    make() {
      const add = (a: number) => (b: number) => (c: number) => a * 100 + b * 10 + c;
      const add12 = add(1)(2);
      return { fn: add12, args: [3], expected: 123 };
    },
  },
  {
    name: 'class hierarchy with super calls, methods through this, statics',
    make() {
      class Animal {
        static created = 0;
        constructor(public name: string) {
          Animal.created++;
        }
        speak(): string {
          return `${this.name} makes ${this.sound()}`;
        }
        sound(): string {
          return 'a sound';
        }
        static create(name: string): Animal {
          return new this(name);
        }
      }
      class Dog extends Animal {
        override sound(): string {
          return 'woof';
        }
        override speak(): string {
          return `${super.speak()}!`;
        }
      }
      class Puppy extends Dog {
        override sound(): string {
          return `small ${super.sound()}`;
        }
      }
      const rex = new Dog('rex');
      return {
        fn: () => {
          const p = Puppy.create('bit');
          return [
            rex.speak(),
            p.speak(),
            p instanceof Dog,
            p instanceof Animal,
            Animal.created,
            Object.getPrototypeOf(Puppy) === Dog,
          ];
        },
        expected: ['rex makes woof!', 'bit makes small woof!', true, true, 2, true],
      };
    },
  },
  {
    name: 'getters and setters (class accessors, object literal accessors)',
    make() {
      class Temperature {
        private celsius = 0;
        get fahrenheit(): number {
          return this.celsius * 1.8 + 32;
        }
        set fahrenheit(f: number) {
          this.celsius = (f - 32) / 1.8;
        }
      }
      const t = new Temperature();
      let backing = 5;
      const box = {
        get value() {
          return backing * 2;
        },
        set value(v: number) {
          backing = v;
        },
      };
      return {
        fn: () => {
          t.fahrenheit = 212;
          box.value = 21;
          return [Math.round(t.fahrenheit), box.value];
        },
        expected: [212, 42],
      };
    },
  },
  {
    name: 'static members: fields changed after definition, methods, inheritance',
    make() {
      class Registry {
        static items: string[] = [];
        static version = 1;
        static add(item: string): number {
          return this.items.push(item);
        }
      }
      class SubRegistry extends Registry {
        static label = 'sub';
      }
      Registry.version = 7; // changed after the class was defined: the current value travels
      Registry.add('first');
      return {
        fn: () => {
          SubRegistry.add('second');
          return [Registry.version, Registry.items, SubRegistry.label, SubRegistry.version];
        },
        expected: [7, ['first', 'second'], 'sub', 7],
      };
    },
  },
  {
    name: 'symbols as keys: unique, registered and well-known',
    make() {
      const secret = Symbol('secret');
      const shared = Symbol.for('tslab-remote.test.shared');
      class Bag {
        [secret] = 42;
        *[Symbol.iterator]() {
          yield 1;
          yield 2;
        }
      }
      const bag = new Bag();
      const obj = { [secret]: 'hidden', [shared]: 'registered', plain: 'visible' };
      return {
        fn: () => [
          bag[secret],
          [...bag],
          obj[secret],
          obj[shared],
          Object.getOwnPropertySymbols(obj).length,
          Symbol.for('tslab-remote.test.shared') === shared,
        ],
        expected: [42, [1, 2], 'hidden', 'registered', 2, true],
      };
    },
  },
  {
    name: 'instances of local-module classes go and come back as instances of the local class',
    make() {
      const c = new shapes.Circle(2);
      return {
        fn: (s: { side: number; area(): number }) => ({
          circle: c.describe(),
          square: s.area(),
          made: shapes.makeSquare(3),
          back: c,
        }),
        args: [new shapes.Square(4)],
        digest: (r) => {
          const result = r as { circle: string; square: number; made: { side: number }; back: { r: number } };
          return { circle: result.circle, square: result.square, side: result.made.side, r: result.back.r };
        },
        check: (r) => {
          const result = r as { made: unknown; back: unknown };
          assert.ok(result.made instanceof shapes.Square, 'a Square made remotely comes back as a local Square');
          assert.ok(result.back instanceof shapes.Circle, 'a Circle comes back as a local Circle');
          assert.equal((result.back as { describe(): string }).describe(), 'circle with area 12.57');
        },
      };
    },
  },
  {
    name: 'module by namespace import (import * as fs)',
    make() {
      const file = path.join(PICKLE_FIXTURE_ROOT, 'package.json');
      return {
        fn: () => [
          fsStar.existsSync(file),
          typeof (fsStar as unknown as { default: typeof fsReq }).default.readFileSync,
          JSON.parse(fsStar.readFileSync(file, 'utf8')).name,
        ],
      };
    },
  },
  {
    name: 'closure over fs (a module object from require)',
    make() {
      const fs = fsReq;
      const file = path.join(PICKLE_FIXTURE_ROOT, 'src/named.js');
      return { fn: () => [fs === require('fs'), fs.statSync(file).isFile()], expected: [true, true] };
    },
  },
  {
    name: 'default import: the module object and the default export as a value',
    make() {
      return {
        fn: () => {
          const before = greetModule.count();
          const a = greetModule.default('ada');
          const b = greet('bob');
          return [a.startsWith('hello, ada'), b.startsWith('hello, bob'), greetModule.count() - before];
        },
        expected: [true, true, 2], // 2: both calls reached the one remote module instance
      };
    },
  },
  {
    name: 'named import travels as a reference and shares module state',
    make() {
      return {
        fn: () => {
          const before = named.calls();
          return [scale(2), scale(3), named.calls() - before];
        },
        expected: [20, 30, 2],
      };
    },
  },
  {
    name: 'shared references and cycles between captured values',
    make() {
      const shared = { hits: 0 };
      const a = { shared, name: 'a' } as { shared: typeof shared; name: string; self?: unknown; peer?: unknown };
      const b = { shared, name: 'b', peer: a };
      a.self = a;
      a.peer = b;
      const hitA = () => ++a.shared.hits;
      const hitB = () => ++b.shared.hits;
      return {
        fn: (arg: typeof shared) => {
          hitA();
          hitB();
          return [a.shared === b.shared, a.self === a, b.peer === a, a.peer === b, shared.hits, arg === shared];
        },
        args: [shared],
        expected: [true, true, true, true, 2, true],
      };
    },
  },
  {
    name: 'plain data: Map, Set, Date, RegExp, BigInt, Error with cause, undefined and holes',
    make() {
      const key = { k: 1 };
      // eslint-disable-next-line no-sparse-arrays
      const holes = [1, , 3];
      const err = new RangeError('too big', { cause: new Error('root cause') }) as RangeError & { code?: string };
      err.code = 'E_BIG';
      const data = {
        map: new Map<unknown, unknown>([
          [key, 'object key'],
          ['s', 2],
        ]),
        set: new Set([1, 'two', key]),
        date: new Date(Date.UTC(2024, 1, 29)),
        re: /a(b+)c/giu,
        big: 2n ** 100n,
        nothing: undefined,
        holes,
        err,
        nested: [[[['deep']]]],
        neg0: -0,
        nan: NaN,
      };
      return {
        fn: (d: typeof data) => ({
          sameKey: d.map.has([...d.set][2]),
          hole: 1 in d.holes,
          length: d.holes.length,
          errName: d.err.name,
          isRange: d.err instanceof RangeError,
          cause: (d.err.cause as Error).message,
          code: d.err.code,
          back: d,
        }),
        args: [data],
        digest: (r) => {
          const result = r as Record<string, unknown> & { back: typeof data };
          return {
            ...result,
            back: {
              ...result.back,
              err: [result.back.err.message, result.back.err.code],
              neg0: Object.is(result.back.neg0, -0),
            },
          };
        },
        check: (r) => {
          const back = (r as { back: typeof data }).back;
          assert.ok(back.err instanceof RangeError);
          assert.equal(1 in back.holes, false);
          assert.equal(back.re.flags, 'giu');
          assert.ok(back.map.has([...back.set][2]), 'the Map key and the Set member stay one object');
        },
      };
    },
  },
  {
    name: 'typed arrays of every kind, in band and out of band, and back',
    make() {
      const small = typedArrays(16);
      const large = typedArrays(BIG);
      return {
        fn: (s: Record<string, ArrayBufferView>, l: Record<string, ArrayBufferView>) => ({
          small: typedSums(s),
          large: typedSums(l),
          echo: l,
        }),
        args: [small, large],
        digest: (r) => {
          const result = r as { small: unknown; large: unknown; echo: Record<string, ArrayBufferView> };
          return { small: result.small, large: result.large, echo: typedSums(result.echo) };
        },
      };
    },
  },
  {
    name: 'a 64 MB Float64Array, compared by checksum both ways',
    make() {
      const big = new Float64Array(8 * 1024 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i % 1000) / 8;
      return {
        fn: (arr: Float64Array) => ({ length: arr.length, sum: checksum(arr), back: arr }),
        args: [big],
        digest: (r) => {
          const result = r as { length: number; sum: number; back: Float64Array };
          return {
            length: result.length,
            sum: result.sum,
            back: [result.back.constructor.name, result.back.length, checksum(result.back)],
          };
        },
      };
    },
  },
  {
    name: 'a method that calls another through this (object literal and class)',
    make() {
      const calc = {
        base: 10,
        add(x: number) {
          return this.base + x;
        },
        twiceAdd(x: number) {
          return this.add(x) * 2;
        },
      };
      class Stack {
        items: number[] = [];
        push(x: number) {
          this.items.push(x);
          return this;
        }
        pushAll(xs: number[]) {
          for (const x of xs) this.push(x);
          return this.size();
        }
        size() {
          return this.items.length;
        }
      }
      const stack = new Stack();
      return { fn: () => [calc.twiceAdd(5), stack.pushAll([1, 2, 3])], expected: [30, 3] };
    },
  },
  {
    name: 'captured variable reassigned after capture: the pickle has the value at pickle time',
    make() {
      let mode = 'before';
      let list = [1];
      return {
        fn: () => [mode, list],
        expected: ['before', [1]],
        afterPickle: () => {
          mode = 'after';
          list = [2];
        },
      };
    },
  },
  {
    name: 'function forms: async, generators, async generators, bound, own properties',
    make() {
      const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      async function fetchTwice(x: number) {
        await delay(1);
        return x * 2;
      }
      function* range(n: number) {
        for (let i = 0; i < n; i++) yield i;
      }
      async function* ticks(n: number) {
        for (let i = 0; i < n; i++) yield i * 10;
      }
      function greetWith(this: { greeting: string }, punct: string, name: string) {
        return `${this.greeting}, ${name}${punct}`;
      }
      const hi = greetWith.bind({ greeting: 'hi' }, '!');
      const withProps = Object.assign((x: number) => x + withProps.offset, { offset: 5, label: 'adder' });
      return {
        fn: async () => {
          const collected: number[] = [];
          for await (const t of ticks(3)) collected.push(t);
          return [await fetchTwice(21), [...range(4)], collected, hi('ada'), hi.name, withProps(1), withProps.label];
        },
        expected: [42, [0, 1, 2, 3], [0, 10, 20], 'hi, ada!', 'bound greetWith', 6, 'adder'],
      };
    },
  },
  {
    name: 'object methods: shorthand, async, generator, computed key',
    make() {
      const key = 'dyn' + 'amic';
      const obj = {
        n: 3,
        plain() {
          return this.n;
        },
        async later() {
          return this.n * 2;
        },
        *gen() {
          yield this.n;
        },
        [key]() {
          return `computed ${this.n}`;
        },
        arrow: (x: number) => x + 1,
      };
      return {
        fn: async () => [
          obj.plain(),
          await obj.later(),
          [...obj.gen()],
          (obj as unknown as Record<string, () => string>)[key]!(),
          obj.arrow(1),
        ],
        expected: [3, 6, [3], 'computed 3', 2],
      };
    },
  },
  {
    name: 'classes extending built-ins: Error, Array, Map',
    make() {
      class HttpError extends Error {
        constructor(
          readonly status: number,
          message: string,
        ) {
          super(message);
          this.name = 'HttpError';
        }
        get retryable() {
          return this.status >= 500;
        }
      }
      class Stack<T> extends Array<T> {
        top() {
          return this[this.length - 1];
        }
      }
      class DefaultMap extends Map<string, number> {
        override get(key: string) {
          return super.get(key) ?? 0;
        }
      }
      const s = new Stack<number>();
      s.push(1, 2, 3);
      const m = new DefaultMap([['a', 1]]);
      return {
        fn: () => {
          const e = new HttpError(503, 'unavailable');
          return [
            e instanceof Error,
            e.retryable,
            e.message,
            `${e}`,
            s.top(),
            s.length,
            Array.isArray(s),
            m.get('a'),
            m.get('zz'),
            m instanceof Map,
          ];
        },
        expected: [true, true, 'unavailable', 'HttpError: unavailable', 3, 3, true, 1, 0, true],
      };
    },
  },
  {
    name: 'a class with #private members travels by value; instances made remotely work',
    make() {
      class Account {
        static #opened = 0;
        #balance: number;
        constructor(start: number) {
          this.#balance = start;
          Account.#opened++;
        }
        #fee() {
          return 1;
        }
        get balance() {
          return this.#balance;
        }
        deposit(x: number) {
          this.#balance += x - this.#fee();
          return this;
        }
        static opened() {
          return Account.#opened;
        }
        static isAccount(o: object) {
          return #balance in o;
        }
      }
      return {
        fn: () => [new Account(10).deposit(5).balance, Account.opened(), Account.isAccount(new Account(0))],
        expected: [14, 1, true],
      };
    },
  },
  {
    name: 'errors come back as errors: name, message, cause and own properties',
    make() {
      class ValidationError extends Error {
        constructor(
          message: string,
          readonly field: string,
        ) {
          super(message, { cause: new TypeError('not a number') });
          this.name = 'ValidationError';
        }
      }
      return {
        fn: () => new ValidationError('bad input', 'age'),
        digest: (r) => {
          const e = r as ValidationError;
          return [e.name, e.message, e.field, (e.cause as Error).message, e.cause instanceof TypeError];
        },
        check: (r, call) =>
          assert.ok(r instanceof (call.refs!.ValidationError as Function), 'an instance of the notebook class'),
        refs: { ValidationError },
      };
    },
  },
  {
    name: 'results: a notebook class instance comes back as an instance of that class; a function as itself',
    make() {
      class Point {
        constructor(
          readonly x: number,
          readonly y: number,
        ) {}
        norm() {
          return Math.hypot(this.x, this.y);
        }
      }
      const double = (p: Point) => new Point(p.x * 2, p.y * 2);
      return {
        fn: (p: Point) => ({ doubled: double(p), fn: double, cls: Point }),
        args: [new Point(3, 4)],
        digest: (r) => (r as { doubled: Point }).doubled.norm(),
        check: (r, call) => {
          const result = r as { doubled: unknown; fn: unknown; cls: unknown };
          assert.ok(result.doubled instanceof (call.refs!.Point as Function));
          assert.equal(result.cls, call.refs!.Point, 'the class comes back as the notebook class itself');
          assert.equal(result.fn, call.refs!.double, 'the function comes back as the notebook function itself');
        },
        refs: { Point, double },
      };
    },
  },
  {
    name: 'notebook cells: exports.NAME reads notebook locals, only the members read travel',
    make() {
      const locals = notebookLocals();
      cell(locals, `exports.base = 21; exports.double = (x) => x * 2; exports.conn = new (require('net').Socket)();`);
      const fn = cell(
        locals,
        `const offset = 1; exports.f = function f() { return exports.double(exports.base) + offset; }; return exports.f;`,
      ) as Function;
      return { fn, context: { locals }, expected: 43 };
    },
  },
  {
    name: 'script-level bindings (the Script scope) and a class-field arrow using this',
    make() {
      const id = `topCounter${++scriptSerial}`;
      const fn = vm.runInThisContext(
        `let ${id} = 5; const step_${id} = 2; (() => { ${id} += step_${id}; return ${id}; })`,
      ) as () => number;
      class Button {
        label = 'ok';
        onClick = () => this.label.toUpperCase();
      }
      return {
        fn: (b: Button) => {
          b.label = 'changed';
          return [fn(), fn(), b.onClick()];
        },
        args: [new Button()],
        expected: [7, 9, 'CHANGED'],
      };
    },
  },
  {
    name: 'a global set by user code travels by value',
    make() {
      (globalThis as Record<string, unknown>).__pickleScenarioGlobal = { v: 7 };
      return { fn: () => __pickleScenarioGlobal.v * 6, expected: 42 };
    },
  },
  {
    name: 'a deep graph: a 100,000-node circular doubly linked list',
    make() {
      interface Cell {
        i: number;
        prev?: Cell;
        next?: Cell;
      }
      const head: Cell = { i: 0 };
      let tail = head;
      for (let i = 1; i < 100_000; i++) {
        const cell: Cell = { i, prev: tail };
        tail.next = cell;
        tail = cell;
      }
      tail.next = head;
      head.prev = tail;
      return {
        fn: (start: Cell) => {
          let n = 0;
          let sum = 0;
          let p = start;
          do {
            if (p.next!.prev !== p) return 'broken link';
            sum += p.i;
            n++;
            p = p.next!;
          } while (p !== start);
          return [n, sum];
        },
        args: [head],
        expected: [100_000, 4_999_950_000],
      };
    },
  },
  {
    name: 'frozen objects, non-enumerable and accessor properties, null prototypes',
    make() {
      const frozen = Object.freeze({ a: 1, inner: { b: 2 } });
      const hidden = Object.defineProperty({ visible: 1 }, 'hidden', { value: 2, enumerable: false });
      const bare = Object.assign(Object.create(null) as Record<string, number>, { x: 1 });
      return {
        fn: () => [
          Object.isFrozen(frozen),
          Object.isFrozen(frozen.inner),
          Object.keys(hidden),
          (hidden as { hidden?: number }).hidden,
          Object.getPrototypeOf(bare),
          bare.x,
        ],
        expected: [true, false, ['visible'], 2, null, 1],
      };
    },
  },
  {
    name: 'typed arrays sharing one buffer keep sharing it, at their offsets, as arguments, captured and returned',
    make() {
      const buf = new ArrayBuffer(32);
      const whole = new Float32Array(buf);
      const tail = whole.subarray(4); // byteOffset 16
      const bytes = new Uint8Array(buf, 8, 8);
      const dv = new DataView(buf, 4, 12);
      const captured = new Int32Array(buf, 12, 2);
      const big = Float64Array.from({ length: 1 << 17 }, (_, i) => i); // 1 MiB: out of band
      const bigTail = big.subarray(1000);
      return {
        fn: (w: Float32Array, t: Float32Array, b: Uint8Array, d: DataView, bg: Float64Array, bt: Float64Array) => {
          t[0] = 7; // seen through w[4]
          d.setUint8(0, 9); // byte 4: seen through w[1]'s bytes
          captured[0] = 5; // byte 12: seen through w[3]
          bt[0] = -1; // seen through bg[1000]
          const out = new ArrayBuffer(24);
          const u16 = new Uint16Array(out);
          const sub = u16.subarray(2);
          const outView = new DataView(out, 6, 10);
          sub[0] = 3;
          return {
            shared: [
              t.buffer === w.buffer,
              b.buffer === w.buffer,
              d.buffer === w.buffer,
              captured.buffer === w.buffer,
              bt.buffer === bg.buffer,
            ],
            offsets: [
              w.byteOffset,
              t.byteOffset,
              b.byteOffset,
              d.byteOffset,
              d.byteLength,
              captured.byteOffset,
              bt.byteOffset,
              w.buffer.byteLength,
            ],
            seen: [w[4], new Uint8Array(w.buffer)[4], new Int32Array(w.buffer)[3], bg[1000], bg.length],
            back: { u16, sub, outView },
          };
        },
        args: [whole, tail, bytes, dv, big, bigTail],
        digest: (r) => {
          const { back, ...rest } = r as { back: { u16: Uint16Array; sub: Uint16Array; outView: DataView } };
          return {
            ...rest,
            back: [
              back.u16[2],
              back.sub.byteOffset,
              back.outView.byteOffset,
              back.outView.byteLength,
              back.u16.buffer.byteLength,
            ],
          };
        },
        check: (r) => {
          const { back } = r as { back: { u16: Uint16Array; sub: Uint16Array; outView: DataView } };
          assert.equal(back.sub.buffer, back.u16.buffer, 'views returned from one buffer share one here');
          assert.equal(back.outView.buffer, back.u16.buffer);
          back.outView.setUint16(0, 0x0101);
          assert.equal(back.u16[3], 0x0101, 'a write through the DataView is seen through the array');
        },
      };
    },
  },
  {
    name: 'a small typed array arrives at offset 0 of a buffer of its own size, both ways (no pool or message bytes)',
    make() {
      const pooled = Buffer.from('abc'); // cut from Node's 8 KiB pool here
      const f4 = new Float32Array([1, 2, 3, 4]);
      const lone = new Float64Array(10).fill(2).subarray(3, 5);
      return {
        fn: (p: Buffer, f: Float32Array, l: Float64Array) => {
          const describe = (v: ArrayBufferView) => [v.byteOffset, v.byteLength, v.buffer.byteLength];
          const reply = Buffer.from('xyz'); // cut from the agent's pool
          const r4 = new Float32Array([5, 6, 7, 8]);
          return {
            args: [
              describe(p),
              p.toString(),
              describe(f),
              Array.from(new Float32Array(f.buffer)),
              describe(l),
              Array.from(l),
            ],
            reply,
            r4,
          };
        },
        args: [pooled, f4, lone],
        expected: {
          args: [[0, 3, 3], 'abc', [0, 16, 16], [1, 2, 3, 4], [0, 16, 16], [2, 2]],
          reply: [0, 3, 3, 'xyz'],
          r4: [0, 16, 16, 5, 6, 7, 8],
        },
        digest: (r) => {
          const result = r as { args: unknown; reply: Buffer | unknown[]; r4: Float32Array | unknown[] };
          if (Array.isArray(result.reply)) return result; // the expected value
          const reply = result.reply;
          const r4 = result.r4 as Float32Array;
          return {
            args: result.args,
            reply: [reply.byteOffset, reply.byteLength, reply.buffer.byteLength, reply.toString()],
            r4: [r4.byteOffset, r4.byteLength, r4.buffer.byteLength, ...Array.from(new Float32Array(r4.buffer))],
          };
        },
        check: (r) => assert.ok(Buffer.isBuffer((r as { reply: unknown }).reply), 'a Buffer comes back as a Buffer'),
      };
    },
  },
  {
    name: 'the shipped function is called without a receiver: undefined in strict code, globalThis in sloppy code',
    make() {
      const locals: Record<string, unknown> = {};
      const sloppy = cell(
        locals,
        `exports.sloppy = function sloppy() { return this === globalThis; }; return exports.sloppy;`,
      ) as () => boolean;
      function strict(this: unknown): unknown[] {
        return [this === undefined, sloppy()];
      }
      return { fn: strict, context: { locals }, expected: [true, true] };
    },
  },
  {
    name: "a class-field arrow keeps its instance's this when reached through the instance",
    make() {
      class Clicker {
        n = 2;
        onClick = (k: number) => this.n * k;
      }
      const clicker = new Clicker();
      return { fn: (c: Clicker) => [c.onClick(3), c.onClick === c.onClick], args: [clicker] };
    },
  },
  {
    name: 'a bound arrow keeps the name bind gave it from the const it was assigned to',
    make() {
      const add3 = (a: number, b: number) => a + b + 3;
      const addOne = add3.bind(null, 1);
      return { fn: () => [addOne.name, addOne(2), add3.name] };
    },
  },
  {
    name: 'a class with static private methods and accessors (no state) travels',
    make() {
      class Ids {
        static #prefix(): string {
          return 'id-';
        }
        static get #width(): number {
          return 3;
        }
        static make(n: number): string {
          return Ids.#prefix() + String(n).padStart(Ids.#width, '0');
        }
      }
      return { fn: (n: number) => Ids.make(n), args: [7] };
    },
  },
  {
    name: "a class's static private fields keep their current values",
    make() {
      class Sequence {
        static #next = 0;
        static #label: string | undefined;
        static take(): string {
          return `${Sequence.#label ?? '?'}${Sequence.#next++}`;
        }
        static name2(label: string): void {
          Sequence.#label = label;
        }
      }
      Sequence.take();
      Sequence.name2('n');
      return { fn: () => [Sequence.take(), Sequence.take()] };
    },
  },
];

export const unpicklableScenarios: PickleScenario[] = [
  {
    name: 'a socket inside a captured object',
    make() {
      const cfg = { host: 'db', conn: new net.Socket() };
      return {
        fn: function f() {
          return cfg.conn;
        },
        error:
          'f → captured cfg → .conn: net.Socket cannot be pickled (live handle). Open or create it inside the remote function instead (it is bound to this process)',
      };
    },
  },
  {
    name: 'a server as an argument',
    make() {
      return {
        fn: function serve(s: unknown) {
          return s;
        },
        args: [net.createServer()],
        error:
          'argument 0: net.Server cannot be pickled (live handle). Open or create it inside the remote function instead (it is bound to this process)',
      };
    },
  },
  {
    name: 'a timer handle',
    make() {
      const timer = setTimeout(() => {}, 1);
      clearTimeout(timer);
      const state = { timer };
      return {
        fn: function poll() {
          return state.timer;
        },
        error:
          'poll → captured state → .timer: a timer (setTimeout/setInterval) cannot be pickled (live handle). Open or create it inside the remote function instead (it is bound to this process)',
      };
    },
  },
  {
    name: 'a file stream',
    make() {
      const stream = fsReq.createReadStream(__filename);
      stream.destroy();
      return {
        fn: function read() {
          return stream;
        },
        error:
          'read → captured stream: fs.ReadStream cannot be pickled (live handle). Open or create it inside the remote function instead (it is bound to this process)',
      };
    },
  },
  {
    name: 'a Promise',
    make() {
      const pending = Promise.resolve(1);
      return {
        fn: function later() {
          return pending;
        },
        error: 'later → captured pending: a Promise cannot be pickled. Await it before the call and pass the result',
      };
    },
  },
  {
    name: 'a WeakMap and a WeakSet',
    make() {
      const cache = { byKey: new WeakMap<object, number>() };
      return {
        fn: function lookup() {
          return cache.byKey;
        },
        error:
          'lookup → captured cache → .byKey: a WeakMap cannot be pickled (its entries cannot be enumerated). Use a Map or Set, or create it inside the remote function',
      };
    },
  },
  {
    name: 'a WeakSet in a Map value',
    make() {
      const seen = new Map([['ids', new WeakSet<object>()]]);
      return {
        fn: function check() {
          return seen;
        },
        error:
          'check → captured seen → .get("ids"): a WeakSet cannot be pickled (its entries cannot be enumerated). Use a Map or Set, or create it inside the remote function',
      };
    },
  },
  {
    name: 'a native function that is neither a global nor a module export',
    make() {
      const sizeOf = Object.getOwnPropertyDescriptor(Map.prototype, 'size')!.get!;
      return {
        fn: function measure(m: Map<unknown, unknown>) {
          return sizeOf.call(m);
        },
        error:
          'measure → captured sizeOf: the native function get size cannot be pickled: it is neither a standard global nor a module export. Reach it inside the remote function through its module (require) instead of capturing it',
      };
    },
  },
  {
    name: 'an instance with #private fields',
    make() {
      class Account {
        #balance = 100;
        deposit(x: number) {
          this.#balance += x;
          return this.#balance;
        }
      }
      const account = new Account();
      return {
        fn: function pay() {
          return account.deposit(1);
        },
        error:
          "pay → captured account: an instance of class Account has private members (#balance) that cannot be read from outside the class. Use ordinary properties (TypeScript's `private` keyword is fine), or create the instance inside the remote function",
      };
    },
  },
  {
    name: "an arrow function that uses its creator's this",
    make() {
      class Widget {
        size = 3;
        sizer() {
          return () => this.size;
        }
      }
      const getSize = new Widget().sizer();
      return {
        fn: function render() {
          return getSize();
        },
        error:
          'render → captured getSize: function (anonymous) is an arrow function that uses the `this` of the code it was created in, which cannot be read from outside. Use a method or an ordinary function, or capture the object in a variable (const self = this)',
      };
    },
  },
  {
    name: 'a suspended generator',
    make() {
      function* numbers() {
        yield 1;
      }
      const it = numbers();
      return {
        fn: function next() {
          return it.next();
        },
        error:
          'next → captured it: a suspended iterator or generator cannot be pickled. Collect its values into an array first (Array.from)',
      };
    },
  },
  {
    name: 'a Proxy',
    make() {
      const watched = new Proxy({ a: 1 }, {});
      return {
        fn: function read() {
          return watched.a;
        },
        error:
          'read → captured watched: a Proxy cannot be pickled (its handler runs here). Pass the target object instead',
      };
    },
  },
  {
    name: 'a SharedArrayBuffer',
    make() {
      const shared = new SharedArrayBuffer(8);
      return {
        fn: function sum() {
          return shared.byteLength;
        },
        error:
          'sum → captured shared: a SharedArrayBuffer cannot be pickled (shared memory). Copy it into an ArrayBuffer or typed array',
      };
    },
  },
  {
    name: 'a class-field arrow reached through a table of handlers, away from its instance',
    make() {
      class Button {
        label = 'ok';
        onClick = () => this.label;
      }
      const handlers = [new Button().onClick];
      return {
        fn: function clickAll() {
          return handlers.map((h) => h());
        },
        error:
          'clickAll → captured handlers → [0]: function onClick is an arrow function that uses the `this` of the code it was created in, which cannot be read from outside. Use a method or an ordinary function, or capture the object in a variable (const self = this)',
      };
    },
  },
  {
    name: 'an arrow made by a method, its this an object that is not where the arrow was found',
    make() {
      const counter = {
        n: 1,
        reader() {
          return () => this.n;
        },
      };
      const table = { read: counter.reader() };
      return {
        fn: function readAll() {
          return table.read();
        },
        error:
          'readAll → captured table → .read: function (anonymous) is an arrow function that uses the `this` of the code it was created in, which cannot be read from outside. Use a method or an ordinary function, or capture the object in a variable (const self = this)',
      };
    },
  },
  {
    name: 'a view of a SharedArrayBuffer',
    make() {
      const view = new Int32Array(new SharedArrayBuffer(8));
      return {
        fn: function sumShared() {
          return view[0];
        },
        error:
          'sumShared → captured view: a view of a SharedArrayBuffer cannot be pickled (shared memory). Copy it into an ArrayBuffer or typed array',
      };
    },
  },
];
