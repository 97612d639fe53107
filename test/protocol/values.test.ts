import { expect } from 'chai';

import { decodeValue, encodeValue } from '../../protocol/values';

describe('protocol/values', () => {
  it('round-trips structured-clone values with cycles and shared references', () => {
    const shared = { n: 1n << 70n };
    const value: Record<string, unknown> = {
      map: new Map<unknown, unknown>([['a', shared]]),
      set: new Set([1, 'two']),
      date: new Date(1_700_000_000_000),
      re: /a+b/gi,
      left: shared,
      right: shared,
      nothing: undefined,
    };
    value.self = value;
    const copy = decodeValue(encodeValue(value)) as typeof value;
    expect(copy.self).to.equal(copy);
    expect(copy.left).to.equal(copy.right);
    expect((copy.map as Map<string, unknown>).get('a')).to.equal(copy.left);
    expect((copy.left as typeof shared).n).to.equal(1n << 70n);
    expect(copy.date).to.deep.equal(value.date);
    expect(String(copy.re)).to.equal('/a+b/gi');
    expect(copy).to.have.property('nothing', undefined);
  });

  it('sends large typed arrays as separate frames and views them without copying', () => {
    const big = new Float64Array(100_000).map((_, i) => i * 0.5);
    const frames = encodeValue({ big, small: new Int16Array([1, -2]) });
    expect(frames).to.have.length(2);
    expect(frames[1]!.buffer).to.equal(big.buffer); // out of band: the array's own memory, not a copy
    const copy = decodeValue(frames) as { big: Float64Array; small: Int16Array };
    expect(copy.big).to.be.instanceOf(Float64Array);
    expect(copy.big.buffer).to.equal(big.buffer);
    expect(copy.big[99_999]).to.equal(99_999 * 0.5);
    expect(Array.from(copy.small)).to.deep.equal([1, -2]);
  });

  it('keeps Buffer a Buffer and copies a misaligned frame before viewing it', () => {
    const bytes = Buffer.alloc(70_000, 7);
    const [body, frame] = encodeValue({ bytes, floats: new Float32Array(20_000).fill(1.5) });
    const misaligned = new Uint8Array(new ArrayBuffer(80_001), 1, 80_000);
    const floats = encodeValue(new Float32Array(20_000).fill(1.5));
    misaligned.set(floats[1]!);
    const viaMisaligned = decodeValue([floats[0]!, misaligned]) as Float32Array;
    expect(viaMisaligned[19_999]).to.equal(1.5);
    const copy = decodeValue([
      body!,
      frame!,
      ...encodeValue({ bytes, floats: new Float32Array(20_000).fill(1.5) }).slice(2),
    ]) as {
      bytes: Buffer;
    };
    expect(Buffer.isBuffer(copy.bytes)).to.equal(true);
    expect(copy.bytes.length).to.equal(70_000);
  });

  it('refuses what structured clone cannot carry', () => {
    expect(() => encodeValue({ f: () => 1 })).to.throw(/could not be cloned/);
  });
});
