// Pickle scenarios (pickle-scenarios.ts) that must fail before anything is sent, each with its exact PickleError message.

import fsReq = require('fs');
import * as net from 'node:net';

import type { PickleScenario } from './pickle-scenario';

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
