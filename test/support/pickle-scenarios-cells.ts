// Scenarios of closure cells (issue 14, theme 3): which closures share a variable. Locally, each call of a factory
// and each iteration of a `let` loop makes a scope of its own, whatever values its variables hold; closures made in
// one scope share it. Remotely it must be the same, also when two scopes' variables hold equal values. Run with the
// rest of the matrix (test/support/pickle-scenarios.ts describes the fields).

import type { PickleScenario } from './pickle-scenario';

export const closureCellScenarios: PickleScenario[] = [
  {
    name: 'two counters from one factory with equal starting values keep their own state',
    make() {
      function makeCounter() {
        let n = 0;
        return { inc: () => ++n, get: () => n };
      }
      const c1 = makeCounter();
      const c2 = makeCounter();
      return {
        fn: () => {
          c1.inc();
          c1.inc();
          c2.inc();
          return [c1.get(), c2.get()];
        },
        expected: [2, 1],
      };
    },
  },
  {
    name: 'closures made by iterations of one loop over equal values keep their own variables; siblings share',
    make() {
      const counters: { inc(): number; get(): number }[] = [];
      for (let i = 0; i < 3; i++) {
        let n = 0;
        counters.push({ inc: () => ++n, get: () => n });
      }
      return {
        fn: () => {
          counters[0]!.inc();
          counters[0]!.inc();
          counters[1]!.inc();
          return counters.map((c) => c.get());
        },
        expected: [2, 1, 0],
      };
    },
  },
  {
    name: 'a factory whose closures sit in a block: equal outer variables stay apart per call',
    make() {
      function makeAdder() {
        let total = 0;
        {
          const step = 1;
          return { add: () => (total += step), total: () => total };
        }
      }
      const a = makeAdder();
      const b = makeAdder();
      return {
        fn: () => {
          a.add();
          a.add();
          b.add();
          return [a.total(), b.total()];
        },
        expected: [2, 1],
      };
    },
  },
  {
    name: 'one object reachable from two factory scopes: the scopes stay apart, the object is shared',
    make() {
      const shared = { hits: 0 };
      function makeTracker(target: { hits: number }) {
        let calls = 0;
        return { hit: () => (++target.hits, ++calls), calls: () => calls };
      }
      const t1 = makeTracker(shared);
      const t2 = makeTracker(shared);
      return {
        fn: () => {
          t1.hit();
          t1.hit();
          t2.hit();
          return [t1.calls(), t2.calls(), shared.hits];
        },
        expected: [2, 1, 3],
      };
    },
  },
  {
    name: 'classes made by one factory over equal values keep their own static state',
    make() {
      function makeModel() {
        let made = 0;
        return class Model {
          constructor() {
            made++;
          }
          static made(): number {
            return made;
          }
        };
      }
      const A = makeModel();
      const B = makeModel();
      return {
        fn: () => {
          new A();
          new A();
          new B();
          return [A.made(), B.made()];
        },
        expected: [2, 1],
      };
    },
  },
  {
    name: 'a closure over a let still in its temporal dead zone throws ReferenceError remotely too',
    make() {
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
      return {
        fn: () => {
          try {
            return ['no error', read()];
          } catch (err) {
            return [(err as Error).name, (err as Error).message];
          }
        },
      };
    },
  },
];
