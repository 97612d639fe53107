// pickle/ on its own, without the kernel's capture: plain data and typed arrays through the format and back.

import { expect } from 'chai';

import { pickleResult, unpickle } from '../../pickle';
import { context, roundTrip } from './pickle-harness';

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
});
