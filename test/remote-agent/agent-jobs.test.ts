// End to end: a real agent process on loopback, driven through the client library over real ZeroMQ.

import { expect } from 'chai';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

import { AgentClient, connect } from '../../kernel-ext/client/agent-client';
import { snapshotDirectory } from '../../kernel-ext/client/snapshot';
import { RemoteError } from '../../protocol/errors';
import { AgentProcess, isAlive, makeTree, startAgent, untilBusy, waitFor, writeTree } from '../support/agent-process';
import { rejectionOf } from '../support/rejection';

const rejection = (promise: Promise<unknown>): Promise<RemoteError> => rejectionOf(promise, RemoteError);

/** require() of ES modules, on by default from Node 20.19 (and 22.12). */
const REQUIRE_ESM = (process.features as { require_module?: boolean }).require_module === true;

describe('remote-agent jobs, end to end', function () {
  this.timeout(30_000);
  let agent: AgentProcess;
  let client: AgentClient;
  let nodeModules: string;

  before(async () => {
    // A package installed on the agent only, with module-level state.
    nodeModules = path.join(
      await makeTree({
        'node_modules/counter-pkg/package.json': '{"name":"counter-pkg","version":"1.0.0","main":"index.js"}',
        'node_modules/counter-pkg/index.js':
          'let loads = (globalThis.__counterLoads ?? 0) + 1; globalThis.__counterLoads = loads;\n' +
          'const cache = new Map(); module.exports = { cache, loads: () => loads };\n',
      }),
      'node_modules',
    );
    agent = await startAgent({ args: ['--workers', '2', '--node-modules', nodeModules] });
    client = await connect(agent.endpoint);
  });

  after(async () => {
    await client?.close();
    expect(await agent?.stop()).to.equal(0);
  });

  it('runs a job with arguments and returns its value', async () => {
    const value = await client.run<{ sum: number; big: Float64Array }>({
      source: '(a, b) => ({ sum: a + b, big: new Float64Array(200000).fill(a) })',
      args: [2, 3],
    });
    expect(value.sum).to.equal(5);
    expect(value.big).to.be.instanceOf(Float64Array);
    expect(value.big[199_999]).to.equal(2);
  });

  it('awaits a returned promise', async () => {
    expect(
      await client.run({
        source: 'async (x) => { await new Promise(r => setTimeout(r, 20)); return x * 2; }',
        args: [21],
      }),
    ).to.equal(42);
  });

  it('keeps module state in the worker between calls of one client', async () => {
    await client.run({ source: '() => { globalThis.model = { loaded: Date.now() }; }' });
    const again = await client.run<number>({ source: '() => globalThis.model.loaded' });
    expect(again).to.be.a('number');
  });

  it('runs local TypeScript modules, reuses an unchanged snapshot and switches when a file changes', async () => {
    const root = await makeTree({
      'package.json': '{"name":"proj"}',
      'src/model.ts': 'export function version(): string { return "v1"; }\n',
      'src/util.ts': 'export const twice = (n: number): number => n * 2;\n',
    });
    const v1 = await snapshotDirectory(root);
    const first = await client.upload(v1);
    expect(first.filesSent).to.equal(3);
    expect(await client.upload(v1)).to.include({ filesSent: 0 });
    const job = {
      source: '() => require("./src/model").version() + ":" + require("./src/util").twice(4)',
      snapshot: v1.hash,
    };
    expect(await client.run(job)).to.equal('v1:8');

    await writeTree(root, { 'src/model.ts': 'export function version(): string { return "v2"; }\n' });
    const v2 = await snapshotDirectory(root);
    const second = await client.upload(v2);
    expect(second.filesSent, 'only the edited file travels').to.equal(1);
    expect(await client.run({ ...job, snapshot: v2.hash })).to.equal('v2:8');
    // Compiled by content: the unchanged util.ts compiled once for both snapshots, model.ts once per version.
    const compiled = (await fs.readdir(path.join(agent.workdir, 'compiled'))).filter((name) => name.endsWith('.js'));
    expect(compiled).to.have.length(3);
    const cached = await client.run<string[]>({ source: '() => Object.keys(require.cache)', snapshot: v2.hash });
    // The edited model.ts runs from v2; the unchanged util.ts stays loaded from v1, its state kept.
    expect(cached.filter((file) => file.includes(v1.hash)).map((file) => path.basename(file))).to.deep.equal([
      'util.ts',
    ]);
    expect(cached.filter((file) => file.includes(v2.hash)).map((file) => path.basename(file))).to.deep.equal([
      'model.ts',
    ]);
  });

  it('extracts a snapshot once even when several clients upload it at the same time', async () => {
    const root = await makeTree({ 'a.js': 'module.exports = 1;\n', 'b/c.js': 'module.exports = 2;\n' });
    const snapshot = await snapshotDirectory(root);
    const clients = await Promise.all([1, 2, 3, 4].map(() => connect(agent.endpoint)));
    try {
      const before = (await client.status()).store.created;
      await Promise.all(clients.map((c) => c.upload(snapshot)));
      expect((await client.status()).store.created - before).to.equal(1);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('keeps node_modules loaded across a snapshot switch', async () => {
    const root = await makeTree({ 'main.js': 'module.exports = () => require("counter-pkg");\n' });
    const a = await snapshotDirectory(root);
    await client.upload(a);
    await client.run({ source: '() => require("./main")().cache.set("weights", 42)', snapshot: a.hash });
    await writeTree(root, { 'main.js': 'module.exports = () => require("counter-pkg"); // edited\n' });
    const b = await snapshotDirectory(root);
    await client.upload(b);
    const seen = await client.run<[number, number]>({
      source: '() => { const pkg = require("./main")(); return [pkg.cache.get("weights"), pkg.loads()]; }',
      snapshot: b.hash,
    });
    expect(seen).to.deep.equal([42, 1]);
  });

  it('lets a function from an old snapshot load its own deferred require after the switch', async () => {
    const root = await makeTree({
      'lib.js': 'exports.later = () => require("./late").tag;\n',
      'late.js': 'exports.tag = "old";\n',
    });
    const old = await snapshotDirectory(root);
    await client.upload(old);
    await client.run({ source: '() => { globalThis.keptLater = require("./lib").later; }', snapshot: old.hash });
    await writeTree(root, { 'late.js': 'exports.tag = "new";\n' });
    const next = await snapshotDirectory(root);
    await client.upload(next);
    const tags = await client.run({
      source: '() => [globalThis.keptLater(), require("./late").tag]',
      snapshot: next.hash,
    });
    expect(tags).to.deep.equal(['old', 'new']);
  });

  it('maps a TypeScript error back to the file and line the user wrote', async () => {
    const root = await makeTree({
      'src/model.ts': [
        'interface Config { rate: number }',
        '',
        'export function train(config: Config): number {',
        '  if (config.rate > 1) {',
        '    throw new RangeError(`rate ${config.rate} is too high`);',
        '  }',
        '  return config.rate;',
        '}',
        '',
      ].join('\n'),
    });
    const snapshot = await snapshotDirectory(root);
    await client.upload(snapshot);
    const error = await rejection(
      client.run({ source: '() => require("./src/model").train({ rate: 5 })', snapshot: snapshot.hash }),
    );
    expect(error.code).to.equal('REMOTE_EXCEPTION');
    expect(error.remoteName).to.equal('RangeError');
    expect(error.message).to.equal('rate 5 is too high');
    expect(error.remoteStack).to.match(/src\/model\.ts:5:\d+/);
    expect(error.remoteStack).not.to.include(agent.workdir);
  });

  it('carries the cause and own properties of a remote error', async () => {
    const error = await rejection(
      client.run({
        source: '() => { const e = new Error("outer", { cause: new TypeError("inner") }); e.status = 503; throw e; }',
      }),
    );
    expect(error.props).to.deep.equal({ status: 503 });
    expect((error.cause as RemoteError).message).to.equal('inner');
    expect((error.cause as RemoteError).remoteName).to.equal('TypeError');
  });

  (REQUIRE_ESM ? it : it.skip)(
    'runs ES modules of a snapshot by require and import(), and an edit of one is live on the next call (Node 20.19+: require of ES modules)',
    async () => {
      const root = await makeTree({
        'package.json': '{"name":"esm-proj","type":"module"}',
        'helper.js': 'export const helper = () => 41;\n',
        'lib.js': "import { helper } from './helper.js';\nexport const answer = () => helper() + 1;\n",
      });
      // A fresh worker: Node warns on a process's first use of the loader import() needs.
      const own = await startAgent({ args: ['--workers', '1'] });
      const ownClient = await connect(own.endpoint);
      try {
        const stderr: string[] = [];
        const run = (source: string, snapshot: string) =>
          ownClient.run({ source, snapshot, onOutput: (stream, text) => stream === 'stderr' && stderr.push(text) });
        const v1 = await snapshotDirectory(root);
        await ownClient.upload(v1);
        expect(await run('async () => (await import("./lib.js")).answer()', v1.hash)).to.equal(42);
        expect(await run('() => require("./lib.js").answer()', v1.hash)).to.equal(42);
        await writeTree(root, { 'helper.js': 'export const helper = () => 99;\n' });
        const v2 = await snapshotDirectory(root);
        await ownClient.upload(v2);
        expect(await run('async () => (await import("./lib.js")).answer()', v2.hash)).to.equal(100);
        // That warning ("vm.USE_MAIN_CONTEXT_DEFAULT_LOADER is an experimental feature") is about us, not the user's code.
        expect(await run('() => "after"', v2.hash)).to.equal('after');
        expect(`${stderr.join('')}${own.log()}`).not.to.include('ExperimentalWarning');
      } finally {
        await ownClient.close();
        await own.stop();
      }
    },
  );

  it('names a package that is not installed on the agent', async () => {
    const error = await rejection(client.run({ source: '() => require("left-pad-not-installed")' }));
    expect(error.code).to.equal('MODULE_NOT_INSTALLED');
    expect(error.message).to.include('left-pad-not-installed');
  });

  it('streams stdout and stderr in order, all before the result', async () => {
    const lines: string[] = [];
    const result = await client.run({
      source:
        '() => { for (let i = 0; i < 50; i++) (i % 2 ? console.error : console.log)("line " + i); return "done"; }',
      onOutput: (stream, text) =>
        lines.push(
          ...text
            .split('\n')
            .filter(Boolean)
            .map((line) => `${stream}:${line}`),
        ),
    });
    expect(result).to.equal('done');
    expect(lines).to.deep.equal(Array.from({ length: 50 }, (_, i) => `${i % 2 ? 'stderr' : 'stdout'}:line ${i}`));
  });

  it('reports a job that ends its worker, and runs the next job', async () => {
    const error = await rejection(client.run({ source: '() => process.exit(3)' }));
    expect(error.code).to.equal('WORKER_CRASHED');
    expect(error.message).to.match(/exit/i);
    expect(await client.run({ source: '() => "alive"' })).to.equal('alive');
  });

  it('cancels an endless synchronous loop', async () => {
    const job = client.start({ source: '() => { for (;;) {} }' });
    await untilBusy(client);
    await job.cancel();
    const error = await rejection(job.result);
    expect(error.code).to.equal('CANCELLED');
    expect(await client.run({ source: '() => 1 + 1' })).to.equal(2);
  });

  it('times out a job that runs past its timeout', async () => {
    const error = await rejection(client.run({ source: '() => new Promise(() => {})', timeoutMs: 300 }));
    expect(error.code).to.equal('TIMEOUT');
    expect(await client.run({ source: '() => "next"' })).to.equal('next');
  });

  it('runs a second client on another worker while the first is busy', async () => {
    // The first job waits for a file only the second client's job creates: on one worker they would deadlock.
    const flag = path.join(await makeTree({}), 'go');
    const other = await connect(agent.endpoint);
    try {
      const waiting = client.run({
        source: '(flag) => { const fs = require("fs"); while (!fs.existsSync(flag)) {} return "released"; }',
        args: [flag],
        timeoutMs: 10_000,
      });
      await untilBusy(client);
      expect(await other.run({ source: '(flag) => require("fs").writeFileSync(flag, "")', args: [flag] })).to.equal(
        undefined,
      );
      expect(await waiting).to.equal('released');
    } finally {
      await other.close();
    }
  });

  it('refuses a call on a snapshot it does not hold', async () => {
    const error = await rejection(client.run({ source: '() => 1', snapshot: 'ab'.repeat(32) }));
    expect(error.code).to.equal('SNAPSHOT_MISSING');
  });

  it('shuts down on SIGTERM: running jobs are answered, workers ended, exit code 0', async () => {
    const own = await startAgent();
    const ownClient = await connect(own.endpoint);
    try {
      const pids = (await ownClient.status()).workers.map((w) => w.pid!);
      expect(pids.every(isAlive)).to.equal(true);
      const running = ownClient.run({ source: '() => new Promise(() => {})' });
      await untilBusy(ownClient);
      const code = own.stop();
      const error = await rejection(running);
      expect(['SHUTTING_DOWN', 'CANCELLED']).to.include(error.code);
      expect(await code).to.equal(0);
      await waitFor(() => pids.every((pid) => !isAlive(pid)), 5_000, 'workers to exit');
    } finally {
      await ownClient.close();
    }
  });

  it('keeps snapshots on disk under the workdir only', async () => {
    const entries = await fs.readdir(agent.workdir);
    expect(entries).to.include.members(['snapshots', 'blobs']);
  });
});
