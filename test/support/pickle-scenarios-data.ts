// Pickle scenarios (pickle-scenarios.ts): plain data, typed arrays of every kind and size, method and function forms,
// classes extending built-ins, #private members, errors, and results.

import * as assert from 'node:assert/strict';

import type { PickleScenario } from './pickle-scenario';

/** Checksum that depends on every element and its position. */
export function checksum(view: ArrayLike<number | bigint>): number {
  let sum = 0;
  for (let i = 0; i < view.length; i++) sum = (sum + Number(view[i]) * ((i % 7) + 1)) % 1_000_000_007;
  return sum;
}

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

export const dataScenarios: PickleScenario[] = [
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
];
