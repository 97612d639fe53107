// Keeping module state across edits, through a real agent: after a new snapshot, a module whose file and whose
// code-root imports are unchanged keeps its state; a changed module and its importers reload; the call says so in
// one line; dispose callbacks run (and one that throws is reported, not fatal); lazy requires keep resolving to
// what they would have loaded before; TypeScript modules too.

import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { snapshotDirectory } from '../../../kernel-ext/client/snapshot';
import { agentWithClient, makeTree } from '../../support/agent-process';

const STATEFUL = `let loads = (globalThis.__loads = (globalThis.__loads || 0) + 1);
exports.state = { n: 0, loads };`;

describe('remote-agent worker: reload what changed, keep the rest', function () {
  this.timeout(30_000);
  const suite = agentWithClient();
  let root: string;

  beforeEach(async () => {
    root = await makeTree({
      'package.json': '{}',
      'data.js': STATEFUL,
      'model.js': "const data = require('./data'); exports.fit = () => ++data.state.n;",
      'train.js': "const model = require('./model'); exports.run = () => model.fit();",
      'other.js': 'exports.hits = 0;',
      'a.js': "const b = require('./b'); exports.fromA = () => 'a1+' + b.name; exports.name = 'a';",
      'b.js': "const a = require('./a'); exports.name = 'b1'; exports.fromB = () => a.name;",
      'lazy.js': "exports.later = () => require('./late').version;",
      'late.js': "exports.version = 'late v1';",
      'model.ts':
        'export const cache: number[] = []; export function remember(x: number): number { cache.push(x); return cache.length; }',
      'disposing.js':
        "globalThis.__disposed = globalThis.__disposed || []; module.hot.dispose(() => globalThis.__disposed.push('disposing v1')); exports.v = 1;",
      'throwing.js': "module.hot.dispose(() => { throw new Error('cannot release'); }); exports.v = 1;",
    });
    // Modules of equal content stay loaded from earlier tests' trees (rightly): each test starts from none.
    await suite.client.run({
      source: "() => { globalThis[Symbol.for('tslab-remote.reload')](); globalThis.__loads = 0; }",
    });
  });

  /** Ships the tree as it is now and runs `source` there, with its stderr. */
  async function call(source: string): Promise<{ value: unknown; stderr: string }> {
    const snapshot = await snapshotDirectory(root);
    await suite.client.upload(snapshot);
    let stderr = '';
    const value = await suite.client.run({
      source,
      snapshot: snapshot.hash,
      onOutput: (stream, text) => void (stream === 'stderr' && (stderr += text)),
    });
    return { value, stderr };
  }
  const edit = (file: string, text: string): void => fs.writeFileSync(path.join(root, file), text);

  it('keeps a module whose file and imports are unchanged; reloads an edited leaf and says so', async () => {
    expect((await call("() => require('./train').run()")).value).to.equal(1);
    expect((await call("() => require('./train').run()")).value).to.equal(2);
    edit('notes.txt', 'unrelated');
    const unrelated = await call("() => require('./train').run()");
    expect(unrelated.value, 'state kept across an unrelated write').to.equal(3);
    expect(unrelated.stderr).to.equal('');
    edit('train.js', "const model = require('./model'); exports.run = () => model.fit() * 100;");
    const edited = await call("() => require('./train').run()");
    expect(edited.value, 'the new train.js over the kept model and data').to.equal(400);
    expect(edited.stderr).to.match(/^tslab-remote: reloaded train\.js; \d+ kept\n$/);
  });

  it('reloads an edited shared dependency and every module that imports it', async () => {
    await call("() => require('./train').run() + require('./other').hits++");
    edit('data.js', `${STATEFUL}\nexports.edited = true;`);
    const after = await call("() => [require('./train').run(), require('./data').edited, require('./other').hits]");
    expect(after.value, 'data reset, other kept').to.deep.equal([1, true, 1]);
    expect(after.stderr).to.match(/reloaded data\.js and 2 modules that import it; \d+ kept/);
  });

  it('reloads both modules of a cycle when one of them changes', async () => {
    expect((await call("() => require('./a').fromA()")).value).to.equal('a1+b1');
    edit('b.js', "const a = require('./a'); exports.name = 'b2'; exports.fromB = () => a.name;");
    const after = await call("() => [require('./a').fromA(), require('./b').fromB()]");
    expect(after.value).to.deep.equal(['a1+b2', 'a']);
    expect(after.stderr).to.match(/reloaded b\.js and 1 module that imports it/);
  });

  it("lets a kept module's lazy require resolve to the content it would have loaded before", async () => {
    await call("() => typeof require('./lazy').later");
    edit('late.js', "exports.version = 'late v2';");
    const after = await call("() => [require('./lazy').later(), require('./late').version]");
    expect(after.value).to.deep.equal(['late v1', 'late v2']);
  });

  it('keeps and reloads TypeScript modules alike', async () => {
    expect((await call("() => require('./model.ts').remember(1)")).value).to.equal(1);
    edit('notes.txt', 'x');
    expect((await call("() => require('./model.ts').remember(2)")).value).to.equal(2);
    edit(
      'model.ts',
      'export const cache: number[] = []; export function remember(x: number): number { cache.push(x, x); return cache.length; }',
    );
    expect((await call("() => require('./model.ts').remember(3)")).value).to.equal(2);
  });

  it('runs dispose callbacks before a reload; one that throws is reported and the call goes on', async () => {
    await call("() => [require('./disposing').v, require('./throwing').v]");
    edit(
      'disposing.js',
      "globalThis.__disposed = globalThis.__disposed || []; module.hot.dispose(() => globalThis.__disposed.push('disposing v2')); exports.v = 2;",
    );
    edit('throwing.js', "module.hot.dispose(() => { throw new Error('cannot release'); }); exports.v = 2;");
    const after = await call("() => [require('./disposing').v, require('./throwing').v, globalThis.__disposed]");
    expect(after.value).to.deep.equal([2, 2, ['disposing v1']]);
    expect(after.stderr).to.contain('tslab-remote: a dispose callback threw: throwing.js: cannot release');
  });

  it('drops the named modules and their importers, or all, through the reload hook (%remote_reload)', async () => {
    const reload = (files?: string[]): string =>
      `() => globalThis[Symbol.for('tslab-remote.reload')](${files ? JSON.stringify(files) : ''}).dropped`;
    await call("() => [require('./train').run(), require('./train').run(), require('./other').hits++]");
    expect((await call(reload(['model.js']))).value).to.deep.equal(['model.js', 'train.js']);
    expect(
      (await call("() => [require('./train').run(), require('./other').hits]")).value,
      'data kept, model fresh',
    ).to.deep.equal([3, 1]);
    expect((await call(reload())).value).to.include.members(['data.js', 'model.js', 'other.js', 'train.js']);
    expect(
      (await call("() => [require('./train').run(), require('./other').hits]")).value,
      'everything fresh',
    ).to.deep.equal([1, 0]);
  });

  it('sends instances of a kept module back as the local class, after an edit elsewhere', async () => {
    edit(
      'point.js',
      'class Point { constructor(x) { this.x = x; } norm() { return Math.abs(this.x); } } exports.Point = Point;',
    );
    const { Point } = require(path.join(root, 'point.js')) as {
      Point: new (x: number) => { x: number; norm(): number };
    };
    const make = (x: number): unknown => new Point(x);
    const callMake = async (x: number): Promise<unknown> => {
      const snapshot = await snapshotDirectory(root);
      await suite.client.upload(snapshot);
      return suite.client.call(make, [x], { codeRoot: root, snapshot: snapshot.hash }).result;
    };
    expect(await callMake(-1)).to.be.instanceOf(Point);
    edit('notes.txt', 'an edit elsewhere: point.js is kept, from the first snapshot');
    const kept = await callMake(-2);
    expect(kept).to.be.instanceOf(Point);
    expect((kept as { norm(): number }).norm()).to.equal(2);
  });

  it('frees each replaced version of an edited module: 1,000 edit-and-call cycles editing one module of 50', async function () {
    // Each version of m49 holds 80 KB: kept alive, 1,000 versions would add 80 MB. What does grow is Node's own
    // resolution caches (relativeResolveCache, realpathCache: private to its loader, a few strings per new
    // snapshot directory, about 3 KB a cycle), which is why this bounds the growth per cycle, not a ratio.
    this.timeout(180_000);
    const files: Record<string, string> = { 'package.json': '{}' };
    for (let i = 0; i < 50; i++)
      files[`m${i}.js`] = i === 0 ? 'exports.v = 0;' : `const prev = require('./m${i - 1}'); exports.v = () => ${i};`;
    root = await makeTree(files);
    const heap =
      "() => { require('v8').setFlagsFromString('--expose-gc'); const gc = require('vm').runInNewContext('gc'); " +
      "for (let i = 1; i < 50; i++) require('./m' + i); gc(); gc(); return process.memoryUsage().heapUsed; }";
    let after10 = 0;
    for (let cycle = 1; cycle <= 1000; cycle++) {
      edit(
        'm49.js',
        `const prev = require('./m48'); exports.v = () => ${cycle}; exports.big = new Float64Array(10000).fill(${cycle}); exports.list = Array.from(exports.big);`,
      );
      const measured = cycle === 10 || cycle === 1000;
      const { value } = await call(measured ? heap : "() => require('./m49').v()");
      if (!measured) expect(value).to.equal(cycle);
      if (cycle === 10) after10 = value as number;
      if (cycle === 1000) {
        const perCycle = ((value as number) - after10) / 990;
        expect(
          perCycle,
          `heap growth per cycle in bytes (after 10 cycles: ${after10} bytes, after 1,000: ${value as number})`,
        ).to.be.below(20_000);
      }
    }
  });
});
