// Scenarios of results coming back (issue 14, theme 4): functions and classes made on the agent come back by value,
// as they go out; instances of notebook classes come back as instances of the notebook's class, their agent-made
// arrow fields with their `this`. Each digest calls what came back, here, and is compared with the same calls on
// the value the function returns locally. Run with the rest of the matrix (test/support/pickle-scenarios.ts).

import * as assert from 'node:assert/strict';

import type { PickleScenario } from './pickle-scenario';

export const resultScenarios: PickleScenario[] = [
  {
    name: 'results: a counter made on the agent comes back and keeps counting here',
    make() {
      return {
        fn: (start: number) => {
          let n = start;
          return { inc: () => ++n, get: () => n };
        },
        args: [5],
        digest: (r) => {
          const c = r as { inc(): number; get(): number };
          return [c.inc(), c.inc(), c.get()];
        },
      };
    },
  },
  {
    name: 'results: an instance of a notebook class with arrow-function fields made on the agent keeps its this',
    make() {
      class Clicker {
        n = 2;
        onClick = (k: number): number => this.n * k;
      }
      return {
        fn: () => new Clicker(),
        refs: { Clicker },
        digest: (r) => {
          const c = r as Clicker;
          const first = c.onClick(3);
          c.n = 5;
          return [first, c.onClick(3)];
        },
        check: (r, call) =>
          assert.ok(r instanceof (call.refs!.Clicker as typeof Clicker), 'an instance of the notebook class'),
      };
    },
  },
  {
    name: 'results: an object with a getter and a setter made on the agent',
    make() {
      return {
        fn: () => {
          let hits = 0;
          return {
            get next(): number {
              return ++hits;
            },
            set reset(v: number) {
              hits = v;
            },
          };
        },
        digest: (r) => {
          const o = r as { next: number; reset: number };
          const a = [o.next, o.next];
          o.reset = 10;
          return [...a, o.next];
        },
      };
    },
  },
  {
    name: 'results: instances of a class defined inside the remote function come back as instances of that class',
    make() {
      return {
        fn: () => {
          class Vec {
            static made = 0;
            constructor(public x: number) {
              Vec.made++;
            }
            len(): number {
              return Math.abs(this.x);
            }
          }
          class Vec2 extends Vec {
            constructor(
              x: number,
              public y: number,
            ) {
              super(x);
            }
            override len(): number {
              return Math.hypot(this.x, this.y);
            }
          }
          return [new Vec(-3), new Vec2(3, 4), Vec];
        },
        digest: (r) => {
          const [v, w, Vec] = r as [
            { len(): number; constructor: Function },
            { len(): number },
            { made: number; new (x: number): object },
          ];
          new Vec(1);
          return [
            v.constructor.name,
            v.len(),
            w.len(),
            v instanceof Vec,
            w instanceof Vec,
            Object.getPrototypeOf(v) === Vec.prototype,
            Vec.made,
          ];
        },
      };
    },
  },
  {
    name: 'results: closures made on the agent by one factory over equal values come back apart; siblings together',
    make() {
      return {
        fn: () => {
          const make = () => {
            let n = 0;
            return { inc: () => ++n, get: () => n };
          };
          return [make(), make()];
        },
        digest: (r) => {
          const [a, b] = r as { inc(): number; get(): number }[];
          a!.inc();
          a!.inc();
          b!.inc();
          return [a!.get(), b!.get()];
        },
      };
    },
  },
  {
    name: 'results: a closure made on the agent over a let in its temporal dead zone throws here too',
    make() {
      return {
        fn: () => {
          let read: () => unknown = () => 'unset';
          try {
            (() => {
              read = () => late;
              throw new Error('stop before the declaration');
              // eslint-disable-next-line prefer-const -- the point: a `let` that never leaves its temporal dead zone
              let late = 1;
            })();
          } catch {
            // the closure is made; its variable is not
          }
          return read;
        },
        digest: (r) => {
          try {
            return ['no error', (r as () => unknown)()];
          } catch (err) {
            return [(err as Error).name, (err as Error).message];
          }
        },
      };
    },
  },
  {
    name: 'results: a bound function and a class with static private state made on the agent',
    make() {
      return {
        fn: () => {
          const add3 = (a: number, b: number) => a + b + 3;
          class Ids {
            static #next = 0;
            static take(): number {
              return Ids.#next++;
            }
          }
          Ids.take();
          return { addOne: add3.bind(null, 1), Ids };
        },
        digest: (r) => {
          const { addOne, Ids } = r as { addOne: (b: number) => number; Ids: { take(): number } };
          return [addOne.name, addOne(2), Ids.take(), Ids.take()];
        },
      };
    },
  },
  {
    name: 'results: a notebook function given back is the notebook function itself',
    make() {
      const twice = (x: number) => 2 * x;
      return {
        fn: () => ({ twice, wrapped: (x: number) => twice(x) + 1 }),
        refs: { twice },
        digest: (r) => {
          const o = r as { twice(x: number): number; wrapped(x: number): number };
          return [o.twice(4), o.wrapped(4)];
        },
        check: (r, call) => assert.equal((r as { twice: unknown }).twice, call.refs!.twice),
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
];
