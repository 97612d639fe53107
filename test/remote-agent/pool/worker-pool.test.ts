// The worker pool running jobs (pool-harness.ts): values both ways, snapshot switching, TypeScript and modules, output.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { FIXTURES, Harness, lineOf, REQUIRE_ESM } from './pool-harness';

describe('remote-agent/worker-pool', function () {
  this.timeout(20_000);
  let h: Harness | undefined;

  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  describe('running jobs', () => {
    it('round-trips arguments and the return value, including a 10 MB Float64Array', async () => {
      h = await Harness.create();
      const big = new Float64Array((10 * 1024 * 1024) / 8).map((_, i) => i * 0.25);
      const outcome = await h.run(
        `(big, extra) => ({ sum: big.reduce((a, b) => a + b, 0), doubled: big.map((x) => x * 2), extra })`,
        {},
        [big, { map: new Map([['k', 1n]]), when: new Date(5) }],
      );
      expect(outcome.error).to.equal(undefined);
      const value = outcome.value as {
        sum: number;
        doubled: Float64Array;
        extra: { map: Map<string, bigint>; when: Date };
      };
      expect(value.sum).to.equal(big.reduce((a, b) => a + b, 0));
      expect(value.doubled).to.be.instanceOf(Float64Array);
      expect(value.doubled.length).to.equal(big.length);
      expect(value.doubled[12345]).to.equal(12345 * 0.5);
      expect(value.extra.map.get('k')).to.equal(1n);
      expect(value.extra.when.getTime()).to.equal(5);
    });

    it('awaits a returned promise and reports a rejection as REMOTE_EXCEPTION with its name and props', async () => {
      h = await Harness.create();
      expect(
        await h.value(`async (x) => { await new Promise((r) => setTimeout(r, 5)); return x + 1; }`, {}, [41]),
      ).to.equal(42);
      const outcome = await h.run(`async () => { const e = new TypeError('nope'); e.detail = { n: 1 }; throw e; }`);
      expect(outcome.error?.code).to.equal('REMOTE_EXCEPTION');
      expect(outcome.error?.name).to.equal('TypeError');
      expect(outcome.error?.message).to.equal('nope');
      expect(outcome.error?.props).to.deep.equal({ detail: { n: 1 } });
      expect(outcome.error?.stack).to.match(/remote-job\.js:1:\d+/);
      expect(outcome.error?.stack).not.to.include('remote-agent/worker');
      const unsendable = await h.run(`() => () => 1`);
      expect(unsendable.error?.code).to.equal('UNPICKLABLE');
      expect(unsendable.error?.name).to.equal('PickleError');
      expect(unsendable.error?.message).to.include('cannot be sent back');
    });

    it('keeps module state between calls of one client, on one worker', async () => {
      h = await Harness.create();
      const v1 = h.snapshot('v1');
      const next = `() => require('./src/counter').next()`;
      const first = await h.run(next, { snapshot: v1 });
      const second = await h.run(next, { snapshot: v1 });
      expect([first.value, second.value]).to.deep.equal([1, 2]);
      expect(second.worker).to.equal(first.worker);
    });

    it('runs the job in options.cwd inside the snapshot and names its file code.filename', async () => {
      h = await Harness.create();
      const v1 = h.snapshot('v1');
      const value = await h.value(`() => [process.cwd(), __filename, require('../lib').value()]`, {
        snapshot: v1,
        options: { cwd: 'src' },
        code: {
          kind: 'source',
          source: `() => [process.cwd(), __filename, require('../lib').value()]`,
          filename: 'cell-3.js',
        },
      });
      const dir = path.join(h.options.snapshotsRoot, v1, 'src');
      expect(value).to.deep.equal([dir, path.join(dir, 'cell-3.js'), 1]);
    });
  });

  describe('snapshot switching', () => {
    it('runs the new version after a switch and purges the old snapshot from require.cache', async () => {
      h = await Harness.create();
      const v1 = h.snapshot('v1');
      const v2 = h.snapshot('v2');
      const call = `(old) => ({ value: require('./lib').value(), oldCached: Object.keys(require.cache).filter((k) => k.includes(old)) })`;
      const first = (await h.value(call, { snapshot: v1 }, [v1])) as { value: number; oldCached: string[] };
      expect(first.value).to.equal(1);
      const second = (await h.value(call, { snapshot: v2 }, [v1])) as { value: number; oldCached: string[] };
      expect(second.value).to.equal(2);
      expect(second.oldCached).to.deep.equal([]);
      expect(h.pool.status()[0]!.snapshot).to.equal(v2);
    });

    it("keeps a node_modules package's module-level cache across a switch", async () => {
      const dir = await tmp.dir({ unsafeCleanup: true });
      h = await Harness.create({ nodePaths: [path.join(fs.realpathSync(dir.path), 'node_modules')] });
      fs.cpSync(path.join(FIXTURES, 'agent-packages', 'cachepkg'), path.join(h.options.nodePaths[0]!, 'cachepkg'), {
        recursive: true,
      });
      const v1 = h.snapshot('v1');
      const v2 = h.snapshot('v2');
      const load = `() => ({ lib: require('./lib').value(), model: require('cachepkg').get('model', () => Math.random()) })`;
      const before = (await h.value(load, { snapshot: v1 })) as {
        lib: number;
        model: { value: number; loads: number };
      };
      const after = (await h.value(load, { snapshot: v2 })) as { lib: number; model: { value: number; loads: number } };
      expect([before.lib, after.lib]).to.deep.equal([1, 2]);
      expect(after.model).to.deep.equal({ value: before.model.value, loads: 1 });
      await dir.cleanup();
    });

    it('lets a function from the old snapshot require lazily from its own snapshot after the switch', async () => {
      h = await Harness.create();
      const v1 = h.snapshot('v1');
      const v2 = h.snapshot('v2');
      await h.value(`() => { globalThis.keptLoadLate = require('./lib').loadLate; }`, { snapshot: v1 });
      expect(await h.value(`() => require('./lib').value()`, { snapshot: v2 })).to.equal(2);
      expect(
        await h.value(`() => [globalThis.keptLoadLate(), require('./lib').loadLate()]`, { snapshot: v2 }),
      ).to.deep.equal(['v1-late', 'v2-late']);
    });

    it('reports the snapshots a worker has modules from', async () => {
      h = await Harness.create({ size: 1 });
      const v1 = h.snapshot('v1');
      const v2 = h.snapshot('v2');
      await h.value(`() => require('./lib').value()`, { snapshot: v1 });
      await h.value(`() => require('./lib').value()`, { snapshot: v2 });
      expect(h.inUse).to.deep.equal([
        [0, [v1]],
        [0, [v2]],
      ]);
    });
  });

  describe('TypeScript and modules', () => {
    it("shows a TypeScript error's stack with the snapshot-relative path and the TypeScript line", async () => {
      h = await Harness.create();
      const v1 = h.snapshot('v1');
      const line = lineOf(path.join(FIXTURES, 'snapshots/v1/src/model.ts'), 'THROW-HERE');
      const outcome = await h.run(`() => require('./src/model').train({ size: -1, name: 'm', layers: [] })`, {
        snapshot: v1,
      });
      expect(outcome.error?.code).to.equal('REMOTE_EXCEPTION');
      expect(outcome.error?.name).to.equal('RangeError');
      const stack = outcome.error?.stack ?? '';
      expect(stack).to.include(`(src/model.ts:${line}:`);
      expect(stack).not.to.include(h.options.snapshotsRoot);
      expect(stack).to.include('remote-job.js:1:');
    });

    it('resolves TypeScript files from extensionless, .js-suffixed and .mts requests', async () => {
      h = await Harness.create();
      const v1 = h.snapshot('v1');
      fs.writeFileSync(
        path.join(h.options.snapshotsRoot, v1, 'src', 'extra.mts'),
        `export const kind: string = 'mts';\n`,
      );
      expect(await h.value(`() => require('./src/esm-style').loaded`, { snapshot: v1 })).to.equal(true);
      expect(await h.value(`() => require('./src/extra').kind`, { snapshot: v1 })).to.equal('mts');
    });

    (REQUIRE_ESM ? it : it.skip)(
      'loads ES modules of a snapshot by require and by import() (Node 20.19+: require of ES modules)',
      async () => {
        h = await Harness.create({ size: 1 });
        const v1 = h.snapshot('v1');
        const esm = path.join(h.options.snapshotsRoot, v1, 'esm');
        fs.mkdirSync(esm);
        fs.writeFileSync(path.join(esm, 'package.json'), '{"type": "module"}\n');
        fs.writeFileSync(path.join(esm, 'helper.js'), 'export const helper = () => 41;\n');
        fs.writeFileSync(
          path.join(esm, 'lib.js'),
          "import { helper } from './helper.js';\nexport const answer = () => helper() + 1;\n",
        );
        expect(await h.value(`() => require('./esm/lib.js').answer()`, { snapshot: v1 })).to.equal(42);
        expect(await h.value(`async () => (await import('./esm/lib.js')).answer()`, { snapshot: v1 })).to.equal(42);
      },
    );

    it('compiles a TypeScript file once: a second worker uses the cached output', async () => {
      h = await Harness.create();
      const v1 = h.snapshot('v1');
      expect(await h.value(`() => require('./lib').value()`, { snapshot: v1, options: { worker: 0 } })).to.equal(1);
      const cached = fs.readdirSync(h.options.compileCacheDir).filter((f) => f.endsWith('.js'));
      expect(cached).to.have.length(1);
      const file = path.join(h.options.compileCacheDir, cached[0]!);
      // Doctor the cached output: a worker that recompiled would still answer 1.
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('exports.version = 1', 'exports.version = 42'));
      expect(await h.value(`() => require('./lib').value()`, { snapshot: v1, options: { worker: 1 } })).to.equal(42);
    });

    it('reports a bare import that is not installed as MODULE_NOT_INSTALLED with how to install it', async () => {
      const modules = path.join(
        fs.realpathSync(os.tmpdir()),
        `agent-${randomBytes(4).toString('hex')}`,
        'node_modules',
      );
      h = await Harness.create({ nodePaths: [modules] });
      const outcome = await h.run(`() => require('left-padder/sub')`);
      expect(outcome.error?.code).to.equal('MODULE_NOT_INSTALLED');
      const message = outcome.error?.message ?? '';
      expect(message).to.include("'left-padder'");
      expect(message).to.include('testhost:5555');
      expect(message).to.include(modules);
      expect(message).to.include(`cd ${path.dirname(modules)} && npm install left-padder`);
      // Libraries probe optional dependencies with try/catch on the code: it must stay MODULE_NOT_FOUND.
      expect(await h.value(`() => { try { require('left-padder'); } catch (e) { return e.code; } }`)).to.equal(
        'MODULE_NOT_FOUND',
      );
    });

    it('keeps a missing relative module an ordinary error', async () => {
      h = await Harness.create();
      const v1 = h.snapshot('v1');
      const outcome = await h.run(`() => require('./src/missing')`, { snapshot: v1 });
      expect(outcome.error?.code).to.equal('REMOTE_EXCEPTION');
      expect(outcome.error?.message).to.include("'./src/missing'");
      expect(outcome.error?.message).not.to.include(h.options.snapshotsRoot);
    });
  });

  describe('output', () => {
    it('delivers stdout and stderr in the order written, all before the result', async () => {
      h = await Harness.create();
      const outcome = await h.run(`async () => {
        for (let i = 0; i < 6; i++) (i % 2 ? console.error : console.log)('line ' + i);
        process.stdout.write('partial ');
        process.stdout.write(Buffer.from('bytes\\n'));
        await new Promise((r) => setTimeout(r, 20));
        console.error('after await');
        console.log('last');
        return 'done';
      }`);
      expect(outcome.value).to.equal('done');
      expect(outcome.events[outcome.events.length - 1]!.kind).to.equal('result');
      const lines = outcome.events
        .flatMap((e) => (e.kind === 'output' ? e.text.split(/(?<=\n)/).map((t) => `${e.stream}:${t}`) : []))
        .join('');
      expect(lines).to.equal(
        'stdout:line 0\nstderr:line 1\nstdout:line 2\nstderr:line 3\nstdout:line 4\nstderr:line 5\n' +
          'stdout:partial bytes\nstderr:after await\nstdout:last\n',
      );
    });

    it('sends displays as their own messages, in order with the text; a printed display marker stays text', async () => {
      h = await Harness.create();
      const marker = '\u001b]5379;tslab-remote-display;' + Buffer.from('{"data":{}}').toString('base64') + '\u0007';
      const outcome = await h.run(`async () => {
        const display = globalThis[Symbol.for('tslab-remote.display')];
        process.stdout.write('before ');
        display({ data: { 'text/html': '<b>1</b>' }, metadata: { w: 2 }, transient: { display_id: 'd1' } }, false);
        console.log(${JSON.stringify(marker)});
        display({ data: { 'text/plain': '2' } }, true);
        let refused = '';
        try { display({ data: {}, transient: { display_id: 'x'.repeat(300) } }, false); } catch (e) { refused = e.message; }
        return refused;
      }`);
      const seen = outcome.events.map((e) =>
        e.kind === 'display' ? e.content : e.kind === 'output' ? `${e.stream}:${e.text}` : e.kind,
      );
      expect(seen).to.deep.equal([
        'stdout:before ',
        { data: { 'text/html': '<b>1</b>' }, metadata: { w: 2 }, displayId: 'd1', update: false },
        `stdout:${marker}\n`,
        { data: { 'text/plain': '2' }, metadata: {}, displayId: null, update: true },
        'result',
      ]);
      expect(outcome.value).to.contain('at most 256 characters');
    });

    it("forwards the worker's native stdout writes to the running job", async () => {
      h = await Harness.create();
      const outcome = await h.run(`async () => {
        require('fs').writeSync(1, 'native line\\n');
        await new Promise((r) => setTimeout(r, 100));
        return 1;
      }`);
      expect(outcome.stdout).to.equal('native line\n');
    });
  });
});
