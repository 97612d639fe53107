// kernel-ext/client/capture: the source analysis and the capture's details (scopes, classes, labels, registry). The
// scenario matrix (pickle-scenarios.test.ts) covers behaviour end to end; these pin the pieces.

import * as path from 'node:path';
import * as vm from 'node:vm';

import { expect } from 'chai';

import Module = require('node:module');

import { analyzeSource, localRegistry, pickle, pickleCall, requireLoaded } from '../../../../kernel-ext/client/capture';
import { Kind, PickleError, pickleResult, recordOrigin, requireFromRoot, unpickle } from '../../../../pickle';
import { decodeValue } from '../../../../protocol/values';

const ROOT = path.resolve(__dirname, '../../../../../test/fixtures/pickle/project');
const context = { requireModule: requireFromRoot(ROOT), localClasses: localRegistry };
const roundTrip = <T>(value: T): T => unpickle(pickle(value, { codeRoot: ROOT }), context) as T;

describe('kernel-ext/client/capture', () => {
  describe('source analysis', () => {
    it('parses every function form, wrapping methods and accessors', () => {
      const obj = {
        m() {},
        get g() {
          return 1;
        },
        set g(_v: number) {},
        async *ag() {},
        ['comp' + 'uted']() {},
      };
      const forms = (fn: Function) => {
        const a = analyzeSource(Function.prototype.toString.call(fn));
        return [a.form, a.methodKind, a.isClass, a.isArrow, a.definitionTime];
      };
      const desc = Object.getOwnPropertyDescriptor(obj, 'g')!;
      expect(forms(() => 1)).to.deep.equal(['expr', 'value', false, true, false]);
      expect(forms(async function named() {})).to.deep.equal(['expr', 'value', false, false, false]);
      expect(forms(function* gen() {})).to.deep.equal(['expr', 'value', false, false, false]);
      expect(forms(class A {})).to.deep.equal(['expr', 'value', true, false, true]);
      expect(forms(obj.m)).to.deep.equal(['method', 'value', false, false, false]);
      expect(forms(desc.get!)).to.deep.equal(['method', 'get', false, false, false]);
      expect(forms(desc.set!)).to.deep.equal(['method', 'set', false, false, false]);
      expect(forms(obj.ag)).to.deep.equal(['method', 'value', false, false, false]);
      expect(forms((obj as unknown as Record<string, Function>).computed!)).to.deep.equal([
        'method',
        'value',
        false,
        false,
        true,
      ]);
    });

    it('finds free variables: loops, defaults, shadowing, and what exports.NAME reads', () => {
      const a = analyzeSource(`function f(x = outerDefault) {
        let local = 1;
        for (let i = 0; i < n; i++) local += i;
        const inner = (shadow) => shadow + free1;
        return exports.alpha + exports['beta'] + inner(local) + Math.max(x, 1);
      }`);
      expect(a.free).to.deep.equal(['outerDefault', 'n', 'free1', 'exports', 'Math']);
      expect([...(a.exportsMembers as Set<string>)]).to.have.members(['alpha', 'beta']);
      expect(analyzeSource('() => exports[key] + key').exportsMembers).to.equal('all');
      expect(analyzeSource('() => this.x').lexicalThis).to.equal(true);
      expect(analyzeSource('() => function () { return this; }').lexicalThis).to.equal(false);
      expect(analyzeSource('() => arguments[0]').lexicalArguments).to.equal(true);
    });

    it('rewrites classes so evaluating them runs no user code', () => {
      const a = analyzeSource(`class A extends mixin(Base) {
        static count = expensive();
        static #secret = init();
        static { sideEffect(); }
        field = perInstance();
        m() { return helper(); }
      }`);
      expect(a.heritageName).to.equal('$extends');
      expect(a.emitSource).to.contain('class A extends $extends {');
      expect(a.emitSource).to.contain('static count;');
      expect(a.emitSource).to.contain('static #secret = init();');
      expect(a.emitSource).not.to.contain('sideEffect');
      expect(a.free).to.deep.equal(['init', 'perInstance', 'helper']);
    });

    it('refuses a private method on its own and says why', () => {
      expect(() => analyzeSource('#m() { return this.#x; }')).to.throw(SyntaxError, /private \(#\) members/);
    });
  });

  describe('capture', () => {
    it('does not re-run a mixin, static initializers or static blocks when the class is rebuilt', () => {
      let mixinCalls = 0;
      let staticRuns = 0;
      const Mixin = <T extends new (...args: any[]) => object>(B: T) => {
        mixinCalls++;
        return class extends B {
          mixed() {
            return 'mixed';
          }
        };
      };
      class Base {
        base() {
          return 'base';
        }
      }
      class Both extends Mixin(Base) {
        static registry = [++staticRuns];
        static {
          staticRuns++;
        }
      }
      Both.registry.push(99);
      const copy = roundTrip(Both);
      const instance = new copy();
      expect([instance.mixed(), instance.base(), copy.registry]).to.deep.equal(['mixed', 'base', [1, 99]]);
      expect([mixinCalls, staticRuns]).to.deep.equal([1, 2]);
    });

    it('keeps the prototype chain of an old-style constructor function and its extra prototype members', () => {
      function Vec(this: { x: number }, x: number) {
        this.x = x;
      }
      Vec.prototype.len = function (this: { x: number }) {
        return Math.abs(this.x);
      };
      const v = new (Vec as unknown as new (x: number) => { x: number; len(): number })(-3);
      const copy = roundTrip({ v, Vec });
      expect(copy.v.len()).to.equal(3);
      expect(copy.v).to.be.instanceOf(copy.Vec);
    });

    it('labels error paths with the function name, the context label or `argument N`', () => {
      const sock = new (require('node:net') as typeof import('node:net')).Socket();
      const leak = () => sock;
      expect(() => pickle(leak)).to.throw(PickleError, /^leak → captured sock: net\.Socket/);
      expect(() => pickle(leak, { label: 'cell 3' })).to.throw(PickleError, /^cell 3 → captured sock:/);
      expect(() => pickleCall(() => 1, [1, { s: sock }])).to.throw(PickleError, /^argument 1 → \.s: net\.Socket/);
    });

    it('pickles a call as one graph: an argument and a captured value stay one object', () => {
      const shared = { n: 1 };
      const f = (arg: object) => arg === shared;
      const [fn, arg] = unpickle(pickleCall(f, [shared]), context) as [(a: object) => boolean, object];
      expect(fn(arg)).to.equal(true);
    });

    it('references module exports instead of copying them', () => {
      const shapes = require(path.join(ROOT, 'src/shapes.js')) as { Circle: Function; makeSquare: Function };
      const [, , root, , table] = decodeValue(
        pickle({ c: shapes.Circle, m: shapes.makeSquare, all: shapes }, { codeRoot: ROOT }),
      ) as [string, number, bigint, unknown[], unknown[][]];
      const props = table[Number(root)]![2] as unknown[];
      const nodes = [1, 3, 5].map((i) => table[Number(props[i] as bigint)]!);
      expect(nodes.map((n) => n[0])).to.deep.equal([Kind.MODULE_EXPORT, Kind.MODULE_EXPORT, Kind.MODULE]);
      expect(nodes[0]![2]).to.deep.equal(['Circle']);
      expect(table[Number(nodes[0]![1])]).to.deep.equal([Kind.MODULE, 'local', 'src/shapes.js', undefined]);
    });

    it("finds modules that never entered require.cache (tslab's compiled local modules) and resolves results to them", () => {
      const filename = path.join(ROOT, 'src/side-output.js'); // tslab's in-memory output: no such file on disk
      const side = new Module(filename, module) as Module & { _compile(code: string, file: string): void };
      side.filename = filename;
      side._compile(
        'class Side { constructor(v) { this.v = v; } twice() { return this.v * 2; } }\nexports.Side = Side;',
        filename,
      );
      const Side = (side.exports as { Side: new (v: number) => { v: number; twice(): number } }).Side;
      const frames = pickle(new Side(21), { codeRoot: ROOT });
      const [, , root, , table] = decodeValue(frames) as [string, number, bigint, unknown[], unknown[][]];
      const protoRef = table[Number(root)]![1] as bigint;
      const classRef = table[Number(protoRef)]![1] as bigint;
      const moduleNode = table[Number(table[Number(classRef)]![1])];
      expect(moduleNode).to.deep.equal([Kind.MODULE, 'local', 'src/side-output.js', undefined]);
      const back = unpickle(frames, { requireModule: requireLoaded(ROOT) }) as { twice(): number };
      expect(back).to.be.instanceOf(Side);
      expect(back.twice()).to.equal(42);
    });

    it('keeps two scopes of one factory apart when their bindings hold identical values, and siblings together', () => {
      const make = () => {
        let n = 0;
        return { inc: () => ++n, get: () => n };
      };
      const a = make();
      const b = make();
      const copy = roundTrip({ a, b });
      copy.a.inc();
      expect([copy.a.get(), copy.b.get()]).to.deep.equal([1, 0]);
      expect([a.get(), b.get()], 'the probe leaves the local variables as they were').to.deep.equal([0, 0]);
    });

    it('tells scopes apart without running the probed functions, and leaves debugger statements alone', () => {
      const ran: string[] = [];
      const make = (name: string) => {
        let n = 0;
        return { inc: () => (ran.push(name), ++n), get: () => (ran.push(name), n) };
      };
      const copy = roundTrip([make('a'), make('b')]);
      expect(ran, 'no probed function ran').to.deep.equal([]);
      copy[0]!.inc();
      expect([copy[0]!.get(), copy[1]!.get()]).to.deep.equal([1, 0]);
      // The probe's debugger session must not stop at a debugger statement.
      const stops = vm.runInThisContext('(function () { debugger; return "went on"; })') as () => string;
      expect(stops()).to.equal('went on');
    });

    it('keeps a const-only scope of one factory apart or together alike (nothing can tell)', () => {
      const make = () => {
        const k = 7;
        return () => k;
      };
      const copy = roundTrip([make(), make()]);
      expect(copy.map((f) => f())).to.deep.equal([7, 7]);
    });

    it('gives pickled functions, classes and unique symbols stable ids that resolve back to the originals', () => {
      const tag = Symbol('tag');
      class Thing {}
      const fn = () => tag;
      expect(localRegistry.idFor(Thing)).to.equal(localRegistry.idFor(Thing));
      const remote = unpickle(pickle({ tag, Thing, fn }), context) as { tag: symbol; Thing: Function; fn: Function };
      expect(remote.Thing).not.to.equal(Thing);
      expect(remote.fn()).to.equal(remote.tag);
      const back = unpickle(
        pickleResult({
          tag: remote.tag,
          Thing: remote.Thing,
          fn: remote.fn,
          instance: Reflect.construct(remote.Thing, []),
        }),
        context,
      ) as Record<string, unknown>;
      expect(back.tag).to.equal(tag);
      expect(back.Thing).to.equal(Thing);
      expect(back.fn).to.equal(fn);
      expect(back.instance).to.be.instanceOf(Thing);
      recordOrigin(remote.Thing, 'gone:1');
      expect(() => unpickle(pickleResult(remote.Thing), context)).to.throw(/no longer holds the original/);
    });

    it('keeps a sloppy function sloppy and strict code strict, even in one shared scope', () => {
      // Both read a Script-scope binding, so they land in one captured scope remotely.
      vm.runInThisContext('let sharedForStrictness = "";');
      const sloppy = vm.runInThisContext(
        '(function () { return sharedForStrictness + (this === undefined ? "strict" : "sloppy"); })',
      ) as () => string;
      const strict = vm.runInThisContext(
        '"use strict"; (function () { return sharedForStrictness + (this === undefined ? "strict" : "sloppy"); })',
      ) as () => string;
      const copy = roundTrip({ sloppy, strict });
      const [a, b] = [copy.sloppy, copy.strict];
      expect([a(), b()]).to.deep.equal(['sloppy', 'strict']);
    });
  });
});
