// Pickle scenarios (pickle-scenarios.ts): closures and their scopes, recursion, classes with their statics and accessors,
// symbols, local-module instances, modules by reference, shared references and cycles.

import * as assert from 'node:assert/strict';
import * as fsStar from 'fs';
import fsReq = require('fs');
import * as path from 'node:path';

import { PICKLE_FIXTURE_ROOT, PickleScenario } from './pickle-scenario';

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

export const closureScenarios: PickleScenario[] = [
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
];
