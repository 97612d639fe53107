// Pickle scenarios (pickle-scenarios.ts) of what the runtime holds: notebook cells and their locals, script-level
// bindings, globals, deep graphs, property attributes, shared buffers, receivers, bound and class-field arrows.

import * as assert from 'node:assert/strict';
import * as vm from 'node:vm';

import type { PickleScenario } from './pickle-scenario';

declare const __pickleScenarioGlobal: { v: number };

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

export const runtimeScenarios: PickleScenario[] = [
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
