// The worker pool with real child processes, real ZeroMQ and real snapshot trees (test/fixtures/snapshots) copied
// into temporary snapshot directories named by fake hashes. Every test builds its own pool and, when it stops it,
// checks that no worker process it ever saw is still alive.

import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import type { WireError } from '../../../protocol/errors';
import type { DisplayContent } from '../../../protocol/messages';
import { decodeValue, encodeValue } from '../../../protocol/values';
import { JobSpec, PoolOptions, WorkerPool } from '../../../remote-agent/pool/worker-pool';

const FIXTURES = path.resolve(__dirname, '../../../../test/fixtures');
const GRACE_MS = 300;

type Event =
  | { kind: 'output'; stream: 'stdout' | 'stderr'; text: string }
  | { kind: 'display'; content: DisplayContent }
  | { kind: 'result'; value: unknown; worker: number; elapsedMs: number }
  | { kind: 'error'; error: WireError; worker: number | null };

interface Outcome {
  events: Event[];
  value?: unknown;
  error?: WireError;
  worker: number | null;
  stdout: string;
  stderr: string;
}

interface Submitted {
  id: string;
  done: Promise<Outcome>;
  events: Event[];
}

let sequence = 0;

class Harness {
  readonly logs: string[] = [];
  readonly inUse: Array<[number, string[]]> = [];
  readonly pids = new Set<number>();
  readonly pool: WorkerPool;
  readonly options: PoolOptions;

  private constructor(
    readonly dir: string,
    overrides: Partial<PoolOptions>,
  ) {
    this.options = {
      size: 2,
      runDir: path.join(dir, 'run'),
      snapshotsRoot: path.join(dir, 'snapshots'),
      compileCacheDir: path.join(dir, 'compiled'),
      nodePaths: [],
      agentName: 'testhost:5555',
      graceMs: GRACE_MS,
      log: (line) => this.logs.push(line),
      onInUseChange: (worker, snapshots) => this.inUse.push([worker, snapshots]),
      ...overrides,
    };
    fs.mkdirSync(this.options.snapshotsRoot, { recursive: true });
    this.pool = new WorkerPool(this.options);
  }

  static async create(overrides: Partial<PoolOptions> = {}): Promise<Harness> {
    const dir = fs.realpathSync((await tmp.dir({ unsafeCleanup: true, prefix: 'pool-' })).path);
    const harness = new Harness(dir, overrides);
    await harness.pool.start();
    harness.notePids();
    return harness;
  }

  /** Copies a fixture tree into the snapshots root under a fake 64-hex hash; returns the hash. */
  snapshot(fixture: string): string {
    const hash = createHash('sha256').update(fixture).update(randomBytes(8)).digest('hex');
    fs.cpSync(path.join(FIXTURES, 'snapshots', fixture), path.join(this.options.snapshotsRoot, hash), {
      recursive: true,
    });
    return hash;
  }

  /** Installs a fixture package into <dir>/node_modules (the agent's packages) and returns that node_modules dir. */
  installPackage(name: string): string {
    const modules = path.join(this.dir, 'node_modules');
    fs.cpSync(path.join(FIXTURES, 'agent-packages', name), path.join(modules, name), { recursive: true });
    return modules;
  }

  submit(source: string, job: Partial<Omit<JobSpec, 'args'>> = {}, args: unknown[] = []): Submitted {
    const id = job.id ?? `job-${++sequence}`;
    const events: Event[] = [];
    const done = new Promise<Outcome>((resolve, reject) => {
      let finished = false;
      const finish = (): void => {
        if (finished) {
          reject(new Error(`job ${id} got a second final reply`));
          return;
        }
        finished = true;
        this.notePids();
        const text = (stream: string): string =>
          events.map((e) => (e.kind === 'output' && e.stream === stream ? e.text : '')).join('');
        const last = events[events.length - 1]!;
        resolve({
          events,
          value: last.kind === 'result' ? last.value : undefined,
          error: last.kind === 'error' ? last.error : undefined,
          worker: last.kind === 'output' || last.kind === 'display' ? null : last.worker,
          stdout: text('stdout'),
          stderr: text('stderr'),
        });
      };
      this.pool.submit(
        {
          id,
          client: job.client ?? 'client-a',
          snapshot: job.snapshot ?? null,
          code: job.code ?? { kind: 'source', source },
          options: job.options ?? {},
          args: encodeValue(args),
        },
        {
          output: (stream, text) => {
            if (finished) reject(new Error(`job ${id} got output after its final reply`));
            events.push({ kind: 'output', stream, text });
          },
          display: (content) => {
            if (finished) reject(new Error(`job ${id} got a display after its final reply`));
            events.push({ kind: 'display', content });
          },
          result: (frames, info) => {
            events.push({ kind: 'result', value: decodeValue(frames), ...info });
            finish();
          },
          error: (error, info) => {
            events.push({ kind: 'error', error, ...info });
            finish();
          },
        },
      );
    });
    this.notePids();
    return { id, done, events };
  }

  run(source: string, job: Partial<Omit<JobSpec, 'args'>> = {}, args: unknown[] = []): Promise<Outcome> {
    return this.submit(source, job, args).done;
  }

  async value(source: string, job: Partial<Omit<JobSpec, 'args'>> = {}, args: unknown[] = []): Promise<unknown> {
    const outcome = await this.run(source, job, args);
    if (outcome.error)
      throw new Error(`job failed: ${outcome.error.code}: ${outcome.error.message}\n${outcome.error.stack ?? ''}`);
    return outcome.value;
  }

  pid(worker: number): number {
    const pid = this.pool.status()[worker]?.pid;
    if (typeof pid !== 'number') throw new Error(`worker ${worker} has no process`);
    return pid;
  }

  notePids(): void {
    for (const status of this.pool.status()) if (status.pid !== null) this.pids.add(status.pid);
  }

  /** Waits until `predicate` holds (polling), failing after `ms`. */
  async until(predicate: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  }

  /** Waits until the worker runs a job. */
  busy(worker = 0): Promise<void> {
    return this.until(() => this.pool.status()[worker]!.state === 'busy', `worker ${worker} busy`);
  }

  async close(): Promise<void> {
    this.notePids();
    await this.pool.stop();
    for (const pid of this.pids) expect(isAlive(pid), `worker process ${pid} survived stop()`).to.equal(false);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function lineOf(file: string, marker: string): number {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const index = lines.findIndex((line) => line.includes(marker));
  if (index < 0) throw new Error(`${marker} not in ${file}`);
  return index + 1;
}

/** require() of ES modules, on by default from Node 20.19 (and 22.12). */
const REQUIRE_ESM = (process.features as { require_module?: boolean }).require_module === true;

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

  describe('crashes', () => {
    it('reports process.exit(3) as WORKER_CRASHED with the exit code, and the next job works', async () => {
      h = await Harness.create({ size: 1 });
      const before = h.pid(0);
      const outcome = await h.run(`() => { console.error('about to exit'); process.exit(3); }`);
      expect(outcome.error?.code).to.equal('WORKER_CRASHED');
      expect(outcome.error?.message).to.include('exited with code 3');
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
      expect(h.pid(0)).not.to.equal(before);
      expect(h.pool.status()[0]!.restarts).to.equal(1);
    });

    it('reports an uncaught exception in a timer with its message and stack', async () => {
      h = await Harness.create({ size: 1 });
      const outcome = await h.run(`() => {
        setTimeout(function explode() { throw new TypeError('late boom'); }, 10);
        return new Promise(() => {});
      }`);
      expect(outcome.error?.code).to.equal('WORKER_CRASHED');
      expect(outcome.error?.message).to.include('uncaught exception (TypeError: late boom)');
      expect(outcome.error?.cause?.name).to.equal('TypeError');
      expect(outcome.error?.stack).to.match(/at (Timeout\.)?explode .*remote-job\.js:2:\d+\)/);
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
    });

    it('reports running out of memory with the heap limit', async () => {
      h = await Harness.create({ size: 1, maxOldSpaceMb: 40 });
      const outcome = await h.run(`() => { const keep = []; for (;;) keep.push(new Array(100000).fill(0.5)); }`);
      expect(outcome.error?.code).to.equal('WORKER_CRASHED');
      expect(outcome.error?.message).to.include('ran out of memory (heap limit 40 MB)');
      expect(outcome.error?.message).to.include('JavaScript heap out of memory'); // the stderr tail
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
    });

    it('reports a SIGKILL from outside, and leaves the other worker alone', async () => {
      h = await Harness.create();
      const other = h.submit(`() => new Promise((r) => setTimeout(() => r('other done'), 400))`, {
        client: 'b',
        options: { worker: 1 },
      });
      const victim = h.submit(`() => new Promise(() => {})`, { options: { worker: 0 } });
      await h.busy(0);
      process.kill(h.pid(0), 'SIGKILL');
      const outcome = await victim.done;
      expect(outcome.error?.code).to.equal('WORKER_CRASHED');
      expect(outcome.error?.message).to.include('killed by signal SIGKILL');
      expect((await other.done).value).to.equal('other done');
      expect(await h.value(`() => 'alive'`, { options: { worker: 0 } })).to.equal('alive');
    });

    it('restarts a worker that dies while idle and logs it', async () => {
      h = await Harness.create({ size: 1 });
      const before = h.pid(0);
      process.kill(before, 'SIGKILL');
      await h.until(() => h!.pool.status()[0]!.state === 'idle' && h!.pool.status()[0]!.pid !== before, 'a new worker');
      expect(h.logs.join('\n')).to.include('worker 0 was killed by signal SIGKILL while idle');
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
    });

    it('backs off when a worker keeps crashing', async () => {
      h = await Harness.create({ size: 1 });
      for (let i = 0; i < 3; i++) expect((await h.run(`() => process.exit(1)`)).error?.code).to.equal('WORKER_CRASHED');
      expect(h.logs.join('\n')).to.match(/crash-looping; restarting in \d+ ms/);
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
    });
  });

  describe('unreadable messages', () => {
    it('fails the job whose worker sends a message the pool cannot read, and restarts the worker', async () => {
      h = await Harness.create({ size: 1 });
      const pid = h.pid(0);
      // The job shares the worker's globals: it garbles the worker's own result header.
      const outcome = await h.run(`() => {
        const stringify = JSON.stringify;
        JSON.stringify = function (value, ...rest) {
          if (value && value.type === 'result') { JSON.stringify = stringify; return '{"type":"result","job":7}'; }
          return stringify.call(this, value, ...rest);
        };
        return 1;
      }`);
      expect(outcome.error?.code).to.equal('INTERNAL');
      expect(outcome.error?.message).to.include('cannot read (worker channel: result.job should be a string)');
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
      expect(h.pid(0)).not.to.equal(pid);
    });

    it('fails the job whose run message the worker cannot read, and the worker goes on', async () => {
      h = await Harness.create({ size: 1 });
      const pid = h.pid(0);
      // The pool runs in this process: garble its next run header as it is encoded.
      const stringify = JSON.stringify;
      JSON.stringify = function (this: unknown, value: unknown, ...rest: unknown[]): string {
        if ((value as { type?: unknown } | null)?.type === 'run') {
          JSON.stringify = stringify;
          return stringify({ ...(value as object), code: { kind: 'bogus' } });
        }
        return (stringify as (...args: unknown[]) => string).call(this, value, ...rest);
      } as typeof JSON.stringify;
      let outcome;
      try {
        outcome = await h.run(`() => 1`);
      } finally {
        JSON.stringify = stringify;
      }
      expect(outcome.error?.code).to.equal('BAD_MESSAGE');
      expect(outcome.error?.message).to.include("could not read the pool's message");
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
      expect(h.pid(0)).to.equal(pid);
    });
  });

  describe('cancel and timeout', () => {
    it('interrupts an endless synchronous loop: CANCELLED, and the worker keeps its state', async () => {
      h = await Harness.create({ size: 1 });
      const v1 = h.snapshot('v1');
      expect(await h.value(`() => require('./src/counter').next()`, { snapshot: v1 })).to.equal(1);
      const pid = h.pid(0);
      const spin = h.submit(`() => { while (true) {} }`, { snapshot: v1 });
      await h.busy();
      expect(h.pool.cancel(spin.id)).to.equal(true);
      const outcome = await spin.done;
      expect(outcome.error?.code).to.equal('CANCELLED');
      expect(outcome.error?.message).to.include('kept its state');
      expect(await h.value(`() => require('./src/counter').next()`, { snapshot: v1 })).to.equal(2);
      expect(h.pid(0)).to.equal(pid);
      expect(h.pool.cancel(spin.id)).to.equal(false);
    });

    it('interrupts a loop cancelled right after it was submitted', async () => {
      h = await Harness.create({ size: 1 });
      const pid = h.pid(0);
      const spin = h.submit(`() => { while (true) {} }`);
      expect(h.pool.cancel(spin.id)).to.equal(true);
      expect((await spin.done).error?.code).to.equal('CANCELLED');
      expect(h.pid(0)).to.equal(pid);
    });

    it('cancels an awaiting job that honours the abort signal without killing the worker', async () => {
      h = await Harness.create({ size: 1 });
      const pid = h.pid(0);
      const wait = h.submit(`() => new Promise((resolve, reject) => {
        const { signal } = globalThis[Symbol.for('tslab-remote.job')];
        const timer = setTimeout(resolve, 10000);
        signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); });
      })`);
      await h.busy();
      h.pool.cancel(wait.id);
      const outcome = await wait.done;
      expect(outcome.error?.code).to.equal('CANCELLED');
      expect(outcome.error?.message).to.include('kept its state');
      expect(h.pid(0)).to.equal(pid);
    });

    for (const [what, source] of [
      [
        'an async loop',
        `async () => { require('fs').writeSync(1, 'looping\\n'); for (;;) await new Promise((r) => setImmediate(r)); }`,
      ],
      [
        'an endless loop started after an await',
        `async () => { await null; require('fs').writeSync(1, 'looping\\n'); while (true) {} }`,
      ],
    ] as const) {
      // A loop that leaves the event loop free acknowledges the cancel, one that blocks it outside the interruptible
      // part shrugs off the SIGINT (the worker's listener): both are killed after graceMs.
      const expected = /killed and restarted/;
      it(`ends the worker of a job that ignores the interrupt (${what}), restarts it, runs the next job`, async () => {
        h = await Harness.create({ size: 1 });
        const pid = h.pid(0);
        const stuck = h.submit(source);
        const next = h.submit(`() => 'next ran'`);
        await h.until(() => stuck.events.length > 0, 'the job in its loop');
        h.pool.cancel(stuck.id);
        const outcome = await stuck.done;
        expect(outcome.error?.code).to.equal('CANCELLED');
        expect(outcome.error?.message).to.match(expected);
        expect(outcome.error?.message).to.include('module state');
        expect((await next.done).value).to.equal('next ran');
        expect(h.pid(0)).not.to.equal(pid);
      });
    }

    it('stops a job that runs past options.timeoutMs with TIMEOUT', async () => {
      h = await Harness.create({ size: 1 });
      const outcome = await h.run(`() => { while (true) {} }`, { options: { timeoutMs: 200 } });
      expect(outcome.error?.code).to.equal('TIMEOUT');
      expect(outcome.error?.message).to.include('200 ms');
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
    });

    it('removes a cancelled queued job at once; it never runs', async () => {
      h = await Harness.create({ size: 1 });
      const first = h.submit(`() => new Promise((r) => setTimeout(() => r(globalThis.ranQueued === true), 300))`);
      const queued = h.submit(`() => { globalThis.ranQueued = true; }`);
      expect(h.pool.status()[0]!.queued).to.equal(1);
      expect(h.pool.cancel(queued.id)).to.equal(true);
      const outcome = await queued.done;
      expect(outcome.error?.code).to.equal('CANCELLED');
      expect(first.events).to.deep.equal([]); // the queued job's error came before the running one finished
      expect((await first.done).value).to.equal(false);
      expect(await h.value(`() => globalThis.ranQueued === true`)).to.equal(false);
    });

    it("cancels all of a client's jobs, queued and running", async () => {
      h = await Harness.create();
      const running = h.submit(`() => { while (true) {} }`, { client: 'x' });
      const queued = h.submit(`() => 1`, { client: 'x' });
      const bystander = h.submit(`() => new Promise((r) => setTimeout(() => r('fine'), 200))`, { client: 'y' });
      await h.busy(0);
      expect(h.pool.cancelClient('x')).to.equal(2);
      expect((await running.done).error?.code).to.equal('CANCELLED');
      expect((await queued.done).error?.code).to.equal('CANCELLED');
      expect((await bystander.done).value).to.equal('fine');
    });
  });

  describe('scheduling', () => {
    it("runs a second client's job on the other worker while the first is busy", async () => {
      h = await Harness.create();
      const slow = h.submit(`() => new Promise((r) => setTimeout(() => r('slow'), 500))`, { client: 'a' });
      await h.busy(0);
      const quick = await h.run(`() => 'quick'`, { client: 'b' });
      expect(quick.value).to.equal('quick');
      expect(slow.events).to.deep.equal([]); // still running
      const slowDone = await slow.done;
      expect(quick.worker).not.to.equal(slowDone.worker);
    });

    it('pins a job with options.worker and rejects an index out of range with BAD_MESSAGE', async () => {
      h = await Harness.create();
      expect((await h.run(`() => 1`, { options: { worker: 1 } })).worker).to.equal(1);
      const outcome = await h.run(`() => 1`, { options: { worker: 2 } });
      expect(outcome.error?.code).to.equal('BAD_MESSAGE');
      expect(outcome.error?.message).to.include('0..1');
      expect(outcome.worker).to.equal(null);
    });

    it('forgets the worker of a client without jobs, so it is assigned afresh; a client with a job keeps it', async () => {
      h = await Harness.create();
      expect((await h.run(`() => 1`, { client: 'x' })).worker).to.equal(0);
      expect((await h.run(`() => 1`, { client: 'a' })).worker).to.equal(1); // x holds worker 0
      const busy = h.submit(`() => new Promise((r) => setTimeout(r, 300))`, { client: 'a' });
      h.pool.forgetClient('a'); // a job of a's runs: a keeps worker 1
      h.pool.forgetClient('x');
      expect((await h.run(`() => 1`, { client: 'a' })).worker).to.equal(1);
      await busy.done;
      h.pool.forgetClient('a');
      expect((await h.run(`() => 1`, { client: 'a' })).worker).to.equal(0); // no client left anywhere: the lowest index
    });

    it('rejects a job id that is already in use', async () => {
      h = await Harness.create();
      const first = h.submit(`() => new Promise((r) => setTimeout(() => r(1), 100))`, { id: 'same' });
      const second = await h.run(`() => 2`, { id: 'same' });
      expect(second.error?.code).to.equal('BAD_MESSAGE');
      expect((await first.done).value).to.equal(1);
    });

    it('works over tcp when the ipc socket path would be too long', async () => {
      const long = path.join(fs.realpathSync(os.tmpdir()), `pool-${'x'.repeat(100)}-${randomBytes(4).toString('hex')}`);
      h = await Harness.create({ runDir: long });
      expect(await h.value(`() => 'over tcp'`)).to.equal('over tcp');
      expect(fs.existsSync(path.join(long, 'workers.sock'))).to.equal(false);
      fs.rmSync(long, { recursive: true, force: true });
    });
  });

  describe('stop', () => {
    it('fails queued jobs with SHUTTING_DOWN, ends running ones and leaves no process', async () => {
      h = await Harness.create();
      const pids = [h.pid(0), h.pid(1)];
      const spinning = h.submit(`() => { while (true) {} }`, { client: 'a', options: { worker: 0 } });
      const queued = h.submit(`() => 1`, { client: 'a', options: { worker: 0 } });
      const stubborn = h.submit(`async () => { for (;;) await new Promise((r) => setImmediate(r)); }`, {
        client: 'b',
        options: { worker: 1 },
      });
      await h.busy(0);
      await h.busy(1);
      await h.pool.stop();
      expect((await queued.done).error?.code).to.equal('SHUTTING_DOWN');
      expect((await spinning.done).error?.code).to.equal('SHUTTING_DOWN');
      expect((await stubborn.done).error?.code).to.equal('SHUTTING_DOWN');
      for (const pid of pids) expect(isAlive(pid)).to.equal(false);
      expect(h.pool.status().map((s) => s.state)).to.deep.equal(['stopped', 'stopped']);
      const late = await h.run(`() => 1`);
      expect(late.error?.code).to.equal('SHUTTING_DOWN');
    });

    it('kills a worker whose job traps SIGTERM', async () => {
      h = await Harness.create({ size: 1 });
      const pid = h.pid(0);
      const trapping = h.submit(
        `() => { process.on('SIGTERM', () => {}); console.log('trapped'); return new Promise(() => {}); }`,
      );
      await h.until(() => trapping.events.length > 0, 'the trap installed');
      await h.pool.stop();
      expect((await trapping.done).error?.code).to.equal('SHUTTING_DOWN');
      expect(isAlive(pid)).to.equal(false);
    });
  });
});
