// The kernel's pure parts: MIME bundles for values, the display relay, and remote stack
// frames mapped back to cells through tslab's own compiler output.

import { expect } from 'chai';
import * as util from 'node:util';

import { converterModule, jupyter } from '../../../kernel-ext/kernel/tslab-parts';
import { mimeBundle } from '../../../kernel-ext/kernel/display';
import { installRemoteDisplay, showIn } from '../../../kernel-ext/kernel/display-relay';
import { CellHistory } from '../../../kernel-ext/kernel/cell-history';
import { alignLines, LineMap } from '../../../kernel-ext/kernel/line-map';
import { mapRemoteStack, programFunctions } from '../../../kernel-ext/kernel/stack-map';

describe('kernel display of values', () => {
  it('gives text/plain exactly as tslab prints a value (console.log formatting)', () => {
    for (const value of ['plain string', 42, { a: { b: { c: { d: 1 } } } }, [1, 2, 3], new Map([[1, 2]])]) {
      expect(mimeBundle(value)['text/plain']).to.equal(util.format(value));
    }
  });

  it('shows arrays of plain objects as an HTML table, escaped', () => {
    const bundle = mimeBundle([
      { name: '<b>', n: 1 },
      { name: 'y', extra: true },
    ]);
    expect(bundle['text/html']).to.include('<th>name</th><th>n</th><th>extra</th>');
    expect(bundle['text/html']).to.include('&lt;b&gt;');
    expect(mimeBundle([1, 2])['text/html']).to.equal(undefined);
    expect(mimeBundle([new Date(0)])['text/html']).to.equal(undefined);
  });

  it('summarises typed arrays and shows objects of equal columns as a table', () => {
    const html = mimeBundle(new Float64Array([1, 2, 3, 6]))['text/html']!;
    expect(html)
      .to.include('Float64Array')
      .and.include('<th>mean</th><td>3</td>')
      .and.include('<th>max</th><td>6</td>');
    const columns = mimeBundle({ x: new Float32Array(60), y: Array.from({ length: 60 }, (_, i) => i) })['text/html']!;
    expect(columns).to.include('<th>x</th><th>y</th>').and.include('50 of 60 rows shown');
  });

  it('shows PNG bytes and SVG text as images', () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
    const bundle = mimeBundle(new Uint8Array(png));
    expect(bundle['image/png']).to.equal(png.toString('base64'));
    expect(bundle['text/plain']).to.include('image/png');
    expect(mimeBundle('<svg xmlns="http://www.w3.org/2000/svg"></svg>')['image/svg+xml']).to.include('<svg');
  });
});

describe('kernel display relay', () => {
  it("points tslab's display API at the worker's display hook, once, and shows displays in the cell", () => {
    const g = globalThis as unknown as Record<symbol, unknown>;
    const hook = Symbol.for('tslab-remote.display');
    const installed = Symbol.for('tslab-remote.display-installed');
    const saved = jupyter.lastWriteDisplayData;
    const sent: unknown[][] = [];
    try {
      installRemoteDisplay(); // no hook: not a worker, nothing changes
      expect(jupyter.lastWriteDisplayData).to.equal(saved);
      g[hook] = (...args: unknown[]) => sent.push(args);
      installRemoteDisplay();
      const message = { data: { 'text/html': '<b>x</b>' }, metadata: {}, transient: { display_id: 'd' } };
      expect(jupyter.lastWriteDisplayData).to.equal(g[hook]);
      jupyter.lastWriteDisplayData?.(message, true);
      expect(sent).to.deep.equal([[message, true]]);
    } finally {
      jupyter.lastWriteDisplayData = saved;
      delete g[hook];
      delete g[installed];
    }

    const shown: unknown[][] = [];
    const io = { stream: () => undefined, result: () => undefined, display: (...args: unknown[]) => shown.push(args) };
    showIn(io)({ data: { 'text/plain': 'a' }, metadata: { m: 1 }, displayId: 'd1', update: true });
    showIn(io)({ data: { 'text/plain': 'b' }, metadata: {}, displayId: null, update: false });
    expect(shown).to.deep.equal([
      [{ data: { 'text/plain': 'a' }, metadata: { m: 1 }, transient: { display_id: 'd1' } }, true],
      [{ data: { 'text/plain': 'b' }, metadata: {} }, false],
    ]);
  });
});

describe('kernel stack mapping', () => {
  it("maps a line of tslab's CommonJS to the TypeScript through the source map of a fresh transpile", () => {
    const ts = "let a: number = 1;\nif (a) {\n  throw new Error('x');\n}\n";
    const cjs =
      '"use strict";\nObject.defineProperty(exports, "__esModule", { value: true });\nlet a = 1;\nif (a) {\n    throw new Error(\'x\');\n}\n';
    const map = new LineMap(ts, cjs);
    // `new` at column 10 of the CommonJS line 4 is column 8 of the TypeScript line 2 (0-based).
    expect(map.map(4, 10)).to.deep.equal({ line: 2, column: 8 });
    // Left of the statement: its first character.
    expect(map.map(4, 0)).to.deep.equal({ line: 2, column: 2 });
    // CommonJS bookkeeping has no TypeScript line.
    expect(map.map(1, 0)).to.equal(undefined);
  });

  it('aligns lines by common subsequence and places the others between', () => {
    expect(alignLines(['h', 'a', 'x', 'b', 'e'], ['a', 'y', 'b'])).to.deep.equal([undefined, 0, 1, 2, 2]);
  });

  it('finds the functions of an unpickler program', () => {
    const program =
      '[\n(() => { let a; return [null, [\nfunction () { "use strict"; return (\nfunction f() {\n  return 1;\n}\n); },\nfunction () { return ({\nm() {}\n}); }\n], []]; })()\n]';
    expect(programFunctions(program)).to.deep.equal([
      { startLine: 3, source: 'function f() {\n  return 1;\n}' },
      { startLine: 8, source: 'm() {}' },
    ]);
  });

  it('maps a frame in a cell function to the cell and its TypeScript line through tslab compiler output', function () {
    this.timeout(30_000);
    const converter = converterModule.createConverter({ isJS: false, isBrowser: false });
    try {
      const ts =
        'interface Cfg {\n  rate: number\n}\n\nfunction check(c: Cfg): number {\n  // explain\n  if (c.rate > 1) {\n    throw new RangeError("too high")\n  }\n  return c.rate\n}\n';
      const out = converter.convert('', ts);
      expect(out.diagnostics).to.deep.equal([]);
      const history = new CellHistory();
      history.add({ count: 4, ts, js: out.output! });
      const source = out.output!.slice(out.output!.indexOf('function check'), out.output!.indexOf('\n}\n') + 2);
      const program = `[\n[null, [\nfunction () { return (\n${source}\n); }\n], []]\n]`;
      // Program line 7 is the function's 4th line, `        throw new RangeError(...)`: `new` at column 15.
      expect(program.split('\n')[6]).to.equal('        throw new RangeError("too high");');
      const stack =
        '    at check (notebooks/cell-9.js:7:15)\n    at train (src/model.ts:5:11)\n    at tslabRemoteEntry (notebooks/cell-9.js:2:1)';
      const mapped = mapRemoteStack(stack, {
        history,
        ownFunctions: new Set(['tslabRemoteEntry']),
        program: () => program,
      });
      expect(mapped.split('\n')).to.deep.equal([
        '    at check (In [4]:8:11)',
        '    at train (src/model.ts:5:11)',
        '    at tslabRemoteEntry (notebooks/cell-9.js:2:1)',
      ]);
    } finally {
      converter.close();
    }
  });
});
