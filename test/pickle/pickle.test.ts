// pickle/ on its own: the format, the unpickler and the lean result pickler, without the kernel's capture.

import * as path from 'node:path';

import { expect } from 'chai';
import * as net from 'node:net';

import {
  Kind,
  MAGIC,
  PickleError,
  pickleResult,
  recordOrigin,
  requireFromRoot,
  unpickle,
  UnpickleError,
  VERSION,
} from '../../pickle';
import { classifyModuleFile } from '../../pickle/modules';
import { decodeValue, encodeValue } from '../../protocol/values';
import { waitFor } from '../support/agent-process';

const ROOT = path.resolve(__dirname, '../../../test/fixtures/pickle/project');
const context = { requireModule: requireFromRoot(ROOT) };
const roundTrip = <T>(value: T): T => unpickle(pickleResult(value, { codeRoot: ROOT }), context) as T;
/** A hand-made pickle: `table` holds the nodes, `root` is a slot (a bigint ref indexes the table). */
const handMade = (root: unknown, table: unknown[][]) => encodeValue([MAGIC, VERSION, root, [], table]);

describe('pickle/', () => {
  describe('plain data', () => {
    it('keeps shared references, cycles, Map/Set with object keys, holes and undefined', () => {
      const shared = { n: 1 };
      const value: Record<string, unknown> = {
        a: shared,
        // eslint-disable-next-line no-sparse-arrays
        b: [shared, , undefined],
        m: new Map([[shared, 'v']]),
        s: new Set([shared]),
      };
      value.self = value;
      const copy = roundTrip(value);
      const b = copy.b as unknown[];
      expect(copy.self).to.equal(copy);
      expect(b[0]).to.equal(copy.a);
      expect(1 in b).to.equal(false);
      expect(2 in b).to.equal(true);
      expect(b[2]).to.equal(undefined);
      expect((copy.m as Map<unknown, string>).get(copy.a)).to.equal('v');
      expect((copy.s as Set<unknown>).has(copy.a)).to.equal(true);
    });

    it('keeps property attributes, accessor-free getters as values, integrity levels and null prototypes', () => {
      const obj = Object.defineProperties(
        {},
        {
          hidden: { value: 1, enumerable: false, writable: false, configurable: false },
          shown: { value: 2, enumerable: true, writable: true, configurable: true },
        },
      );
      const frozen = Object.freeze({ x: 1 });
      const sealed = Object.seal({ y: 2 });
      const bare = Object.create(null) as Record<string, number>;
      bare.z = 3;
      const copy = roundTrip({ obj, frozen, sealed, bare });
      expect(Object.getOwnPropertyDescriptor(copy.obj, 'hidden')).to.deep.equal({
        value: 1,
        enumerable: false,
        writable: false,
        configurable: false,
      });
      expect(Object.keys(copy.obj)).to.deep.equal(['shown']);
      expect(Object.isFrozen(copy.frozen)).to.equal(true);
      expect(Object.isSealed(copy.sealed) && !Object.isFrozen(copy.sealed)).to.equal(true);
      expect(Object.getPrototypeOf(copy.bare)).to.equal(null);
      expect(copy.bare.z).to.equal(3);
    });

    it('carries errors with name, cause, own properties and their built-in class', () => {
      const err = new TypeError('outer', { cause: new RangeError('inner') }) as TypeError & { code: string };
      err.code = 'E_X';
      const copy = roundTrip(err);
      expect(copy).to.be.instanceOf(TypeError);
      expect(copy.message).to.equal('outer');
      expect(copy.code).to.equal('E_X');
      expect(copy.cause).to.be.instanceOf(RangeError);
      expect(copy.stack).to.equal(err.stack);
      expect(Object.prototype.toString.call(copy)).to.equal('[object Error]');
    });

    it('carries Date, RegExp (flags and lastIndex), BigInt, boxed primitives, URL, ArrayBuffer, -0 and NaN', () => {
      const re = /a+/gy;
      re.lastIndex = 2;
      const bytes = new Uint8Array([1, 2, 3]).buffer;
      const copy = roundTrip({
        d: new Date(5),
        re,
        big: -(2n ** 80n),
        boxed: Object('s'),
        num: new Number(4),
        url: new URL('https://x.test/a?b=1'),
        bytes,
        z: -0,
        nan: NaN,
      });
      expect(copy.d.getTime()).to.equal(5);
      expect(copy.re.flags).to.equal('gy');
      expect(copy.re.lastIndex).to.equal(2);
      expect(copy.big).to.equal(-(2n ** 80n));
      expect(copy.boxed).to.be.instanceOf(String);
      expect(String(copy.boxed)).to.equal('s');
      expect(Number(copy.num)).to.equal(4);
      expect(copy.url).to.be.instanceOf(URL);
      expect(copy.url.searchParams.get('b')).to.equal('1');
      expect(Array.from(new Uint8Array(copy.bytes))).to.deep.equal([1, 2, 3]);
      expect(Object.is(copy.z, -0)).to.equal(true);
      expect(Number.isNaN(copy.nan)).to.equal(true);
    });

    it('walks deep structures without growing the stack', () => {
      let list: { next: unknown; i: number } | null = null;
      for (let i = 0; i < 200_000; i++) list = { next: list, i };
      const copy = roundTrip(list)!;
      let n = 0;
      for (let p: { next: unknown } | null = copy; p; p = p.next as { next: unknown } | null) n++;
      expect(n).to.equal(200_000);
    });
  });

  describe('typed arrays', () => {
    it('sends large views out of band without copying, and views the received frames without copying', () => {
      const big = new Float64Array(50_000).map((_, i) => i);
      const frames = pickleResult({ big, small: new Int16Array([1, -2]) });
      expect(frames).to.have.length(2);
      expect(frames[1]!.buffer).to.equal(big.buffer);
      const copy = unpickle(frames, context) as { big: Float64Array; small: Int16Array };
      expect(copy.big.buffer).to.equal(frames[1]!.buffer);
      expect(copy.big[49_999]).to.equal(49_999);
      expect(Array.from(copy.small)).to.deep.equal([1, -2]);
    });

    it('gives an in-band view a buffer of its own, never the message body', () => {
      const frames = pickleResult(new Float32Array([1, 2, 3, 4]));
      const copy = unpickle(frames, context) as Float32Array;
      expect([copy.byteOffset, copy.buffer.byteLength]).to.deep.equal([0, 16]);
      expect(copy.buffer).to.not.equal(frames[0]!.buffer);
    });

    it('keeps views of one buffer aligned when the reached span starts mid-element, padding with zeros', () => {
      const buf = new ArrayBuffer(64);
      new Uint8Array(buf).fill(0xff);
      const bytes = new Uint8Array(buf, 3, 2);
      const doubles = new Float64Array(buf, 8, 2);
      const copy = unpickle(pickleResult([bytes, doubles]), context) as [Uint8Array, Float64Array];
      expect(copy[1].buffer).to.equal(copy[0].buffer);
      expect(copy[1].byteOffset - copy[0].byteOffset).to.equal(5);
      expect(copy[1].byteOffset % 8).to.equal(0);
      expect(Array.from(new Uint8Array(copy[0].buffer, 0, copy[0].byteOffset))).to.deep.equal([0, 0, 0]);
    });

    it('honours the threshold and keeps a view reached twice one view', () => {
      const view = new Uint8Array(1000);
      expect(pickleResult({ view }, { outOfBandBytes: 100 })).to.have.length(2);
      expect(pickleResult({ view }, { outOfBandBytes: 10_000 })).to.have.length(1);
      const copy = roundTrip({ a: view, b: view });
      expect(copy.a).to.equal(copy.b);
    });
  });

  describe('references', () => {
    it('sends standard globals and module values as references', () => {
      const fs = require('node:fs') as typeof import('node:fs');
      const named = require(path.join(ROOT, 'src/named.js')) as { scale: unknown };
      const value = {
        max: Math.max,
        iter: Symbol.iterator,
        fs,
        read: fs.readFileSync,
        scale: named.scale,
        proto: Array.prototype,
        gen: Object.getPrototypeOf(function* () {}),
      };
      const [, , root, , table] = decodeValue(pickleResult(value, { codeRoot: ROOT })) as [
        string,
        number,
        bigint,
        unknown[],
        unknown[][],
      ];
      const props = table[Number(root)]![2] as unknown[];
      const kindOf = (ref: unknown) => table[Number(ref)]![0];
      const kinds = Object.fromEntries(
        Array.from({ length: props.length / 2 }, (_, i) => [props[2 * i], kindOf(props[2 * i + 1])]),
      );
      expect(kinds).to.deep.equal({
        max: Kind.GLOBAL,
        iter: Kind.GLOBAL,
        fs: Kind.MODULE,
        read: Kind.MODULE_EXPORT,
        scale: Kind.MODULE_EXPORT,
        proto: Kind.GLOBAL,
        gen: Kind.GLOBAL,
      });
      const copy = roundTrip(value);
      expect(copy).to.deep.equal(value);
      expect(copy.scale).to.equal(named.scale);
    });

    it("indexes exports added after load: a local module's at once, a package's within a second", async () => {
      const kindOf = (value: unknown): unknown => {
        const [, , root, , table] = decodeValue(pickleResult({ value }, { codeRoot: ROOT })) as [
          string,
          number,
          bigint,
          unknown[],
          unknown[][],
        ];
        const props = table[Number(root)]![2] as unknown[];
        return table[Number(props[1])]![0];
      };
      const named = require(path.join(ROOT, 'src/named.js')) as Record<string, unknown>;
      const acorn = require('acorn') as Record<string, unknown>;
      kindOf(named.scale); // indexed now, before the additions
      const late = { late: true };
      const lateInPackage = { lateInPackage: true };
      named.lateExport = late;
      acorn.tslabRemoteLateExport = lateInPackage;
      try {
        expect(kindOf(late)).to.equal(Kind.MODULE_EXPORT);
        // A package's exports are recounted at most once a second (PACKAGE_RECOUNT_MS).
        await waitFor(() => kindOf(lateInPackage) === Kind.MODULE_EXPORT, 5_000, "the package's late export indexed");
      } finally {
        delete named.lateExport;
        delete acorn.tslabRemoteLateExport;
      }
    });

    it('classifies module files: packages (main, subpath, scoped) with versions, code-root files, the rest', () => {
      const acornMain = require.resolve('acorn');
      expect(classifyModuleFile(acornMain, null)?.ref).to.deep.include({ kind: 'package', id: 'acorn' });
      expect(classifyModuleFile(acornMain, null)?.ref.version).to.match(/^8\./);
      const sub = path.join(path.dirname(path.dirname(acornMain)), 'dist', 'bin.js');
      expect(classifyModuleFile(sub, null)?.ref.id).to.equal('acorn/dist/bin.js');
      const scoped = require.resolve('@types/node/package.json');
      expect(classifyModuleFile(scoped, null)?.ref.id).to.equal('@types/node/package.json');
      expect(classifyModuleFile(path.join(ROOT, 'src/shapes.js'), ROOT)?.ref).to.deep.equal({
        kind: 'local',
        id: 'src/shapes.js',
      });
      expect(classifyModuleFile('/elsewhere/x.js', ROOT)).to.equal(null);
    });

    it('warns once per package whose installed version differs', () => {
      const calls: unknown[][] = [];
      const table = [
        [Kind.MODULE, 'package', 'acorn', '0.0.1'],
        [Kind.MODULE_EXPORT, 0n, ['parse']],
        [Kind.ARRAY, undefined, undefined, 0, [0n, 1n, 0n]],
      ];
      const value = unpickle(handMade(2n, table), {
        ...context,
        onVersionMismatch: (...args) => calls.push(args),
      }) as unknown[];
      expect(value[1]).to.equal((require('acorn') as { parse: unknown }).parse);
      expect(calls).to.have.length(1);
      expect(calls[0]![0]).to.equal('acorn');
      expect(calls[0]![1]).to.equal('0.0.1');
      expect(calls[0]![2]).to.match(/^8\./);
    });

    it('resolves ORIGIN references through localClasses and says so when the original is gone', () => {
      class Local {
        v = 1;
      }
      const remoteCopy = class Local {};
      recordOrigin(remoteCopy, 'k:1');
      const instance = Object.assign(new remoteCopy(), { v: 5 });
      const frames = pickleResult({ instance, cls: remoteCopy });
      const back = unpickle(frames, { ...context, localClasses: new Map([['k:1', Local]]) }) as {
        instance: Local;
        cls: unknown;
      };
      expect(back.instance).to.be.instanceOf(Local);
      expect(back.instance.v).to.equal(5);
      expect(back.cls).to.equal(Local);
      expect(() => unpickle(frames, { ...context, localClasses: new Map() })).to.throw(
        UnpickleError,
        /class Local came back from the other side, but this side no longer holds the original/,
      );
    });
  });

  describe('the result pickler', () => {
    it('tells a result that holds a live handle to return data, not to create the handle inside the function', () => {
      const server = net.createServer();
      const error = (() => {
        try {
          pickleResult({ server });
        } catch (thrown) {
          return thrown as Error;
        }
        throw new Error('a net.Server was pickled as a result');
      })();
      expect(error.message).to.match(
        /^result → \.server: net\.Server cannot be pickled \(live handle\)\. A result travels back by value/,
      );
      expect(error.message).not.to.include('inside the remote function');
    });

    it('sends functions and classes created on the agent back by value', () => {
      const helper = (x: number) => x + 1;
      const copy = roundTrip({ deep: [{ helper }] });
      expect(copy.deep[0]!.helper).to.not.equal(helper);
      expect(copy.deep[0]!.helper(1)).to.equal(2);
    });

    it('sends instances of classes made on the agent back as instances of the rebuilt class', () => {
      class RemoteError extends Error {
        extra = 1;
      }
      class Plain {
        x = 2;
        twice(): number {
          return 2 * this.x;
        }
      }
      const copy = roundTrip({ e: new RemoteError('m'), p: new Plain(), q: new Plain() });
      expect(copy.e).to.be.instanceOf(Error);
      expect(copy.e.constructor.name).to.equal('RemoteError');
      expect(copy.e.extra).to.equal(1);
      expect(copy.p.constructor).to.not.equal(Plain);
      expect(copy.p.constructor.name).to.equal('Plain');
      expect(copy.p.twice()).to.equal(4);
      expect(Object.getPrototypeOf(copy.q)).to.equal(Object.getPrototypeOf(copy.p));
    });

    it('refuses an instance with #private fields made on the agent, naming the class and the path', () => {
      class Secret {
        #key = 1;
        key(): number {
          return this.#key;
        }
      }
      expect(() => pickleResult({ s: [new Secret()] })).to.throw(
        PickleError,
        "result → .s → [0]: an instance of class Secret has private members (#key) that cannot be read from outside the class. Use ordinary properties (TypeScript's `private` keyword is fine), or return plain data and keep the instance on the agent",
      );
    });
  });

  describe('bad input', () => {
    it('says what is wrong with frames that are not a pickle of this version', () => {
      expect(() => unpickle([new Uint8Array([1, 2, 3])], context)).to.throw(UnpickleError, /not a pickle/);
      expect(() => unpickle(encodeValue({ a: 1 }), context)).to.throw(
        UnpickleError,
        /does not start with the pickle header/,
      );
      expect(() => unpickle(encodeValue([MAGIC, 99, 1, [], []]), context)).to.throw(
        UnpickleError,
        /version 99 is not supported/,
      );
      expect(() => unpickle(handMade(0n, [[Kind.GLOBAL, ['NoSuchGlobalHere']]]), context)).to.throw(
        UnpickleError,
        /the global NoSuchGlobalHere does not exist/,
      );
      expect(() => unpickle(handMade(0n, [[99]]), context)).to.throw(UnpickleError, /unknown node kind 99/);
      expect(() => unpickle(handMade(5n, [[Kind.OBJECT]]), context)).to.throw(
        UnpickleError,
        /5 is not a node reference/,
      );
    });
  });
});
