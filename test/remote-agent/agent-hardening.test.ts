// Attacks on a real agent found in a hardening round (issue 12), each reproduced here: a second agent on the same
// workdir, a worker whose restart fails, a vanished client, a full disk, and more. The agent must refuse, recover
// or report, and stay up.

import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { connect } from '../../kernel-ext/client/agent-client';
import { snapshotDirectory } from '../../kernel-ext/client/snapshot';
import { makeTree, startAgent, waitFor } from '../support/agent-process';
import { rejectionOf, remoteCodeOf } from '../support/rejection';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'remote-agent.js');
const CLIENT = path.resolve(__dirname, '..', '..', 'kernel-ext', 'client', 'agent-client.js');

/** A kernel stand-in in its own process: it starts a job that never ends and queues more, then says so. */
const VANISHING_CLIENT = `
  const { connect } = require(${JSON.stringify(CLIENT)});
  (async () => {
    const client = await connect(process.argv[1]);
    for (let i = 0; i < 5; i++) client.run({ source: '() => new Promise(() => {})' }).catch(() => undefined);
    await client.status();
    console.log('submitted');
  })();
`;

describe('remote-agent hardening, end to end', function () {
  this.timeout(60_000);

  it('refuses a second agent on a workdir in use, naming the process, and leaves the first one working', async () => {
    const workdir = path.join((await tmp.dir({ unsafeCleanup: true, prefix: 'lock-' })).path, 'workdir');
    const agent = await startAgent({ args: ['--workers', '1'], workdir });
    const client = await connect(agent.endpoint);
    try {
      const marker = path.join(workdir, 'tmp', 'upload.in-progress');
      await fs.writeFile(marker, 'an upload of the first agent');
      const second = spawnSync(process.execPath, [BIN, 'serve', '--workdir', workdir, '--bind', 'tcp://127.0.0.1:*'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(second.status).to.not.equal(0);
      expect(second.stderr).to.include(`workdir ${workdir} is in use by another agent: process ${agent.process.pid}`);
      await fs.access(marker); // the second agent did not empty tmp/
      await fs.access(path.join(workdir, 'run', 'workers.sock')); // nor remove the worker socket
      expect(await remoteCodeOf(client.run({ source: '() => process.exit(1)' }))).to.equal('WORKER_CRASHED');
      expect(await client.run({ source: '() => "restarted"' })).to.equal('restarted'); // its crashed worker came back
      await client.upload(await snapshotDirectory(await makeTree({ 'a.js': 'module.exports = 1;' })));
    } finally {
      await client.close();
      await agent.stop();
    }
    // A lock left by an agent that died is taken over.
    await fs.writeFile(path.join(workdir, 'agent.lock'), JSON.stringify({ pid: 2 ** 22 + 1, host: os.hostname() }));
    const next = await startAgent({ args: ['--workers', '1'], workdir });
    await next.stop();
  });

  it("cancels the running and queued jobs of a client that was SIGKILLed, after the grace, so others' jobs run", async () => {
    const agent = await startAgent({ args: ['--workers', '1', '--client-grace-ms', '1000'] });
    const kernel = spawn(process.execPath, ['-e', VANISHING_CLIENT, agent.endpoint], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const other = await connect(agent.endpoint);
    try {
      await new Promise<void>((resolve, reject) => {
        kernel.stdout.on('data', (data: Buffer) => data.toString().includes('submitted') && resolve());
        kernel.once('exit', () => reject(new Error('the vanishing client ended before submitting')));
      });
      kernel.kill('SIGKILL');
      // The other client's job waits behind the vanished one's on the only worker, until those are cancelled.
      expect(await other.run({ source: '() => "ran after the vanished client"' })).to.equal(
        'ran after the vanished client',
      );
      expect(agent.log()).to.match(/client \S+ disconnected \d+ s ago: cancelled 5 job\(s\)/);
    } finally {
      kernel.kill('SIGKILL');
      await other.close();
      await agent.stop();
    }
  });

  it('retries a worker whose restart fails (spawn EMFILE), failing its jobs with a clear error and saying so in status', async () => {
    const agent = await startAgent({ args: ['--workers', '1'] });
    const client = await connect(agent.endpoint);
    const pid = agent.process.pid!;
    try {
      // The agent runs out of file descriptors: its limit is lowered to what it holds now, plus two.
      const open = (await fs.readdir(`/proc/${pid}/fd`)).length;
      expect(spawnSync('prlimit', [`--pid=${pid}`, `--nofile=${open + 2}:`]).status).to.equal(0);
      const worker = (await client.status()).workers[0]!.pid!;
      process.kill(worker, 'SIGKILL');
      const code = await remoteCodeOf(client.run({ source: '() => "no worker"' }));
      expect(code).to.equal('WORKER_CRASHED');
      await waitFor(
        async () => (await client.status()).workers[0]!.error !== undefined,
        10_000,
        'the failure in status',
      );
      const status = (await client.status()).workers[0]!;
      expect(status.state).to.equal('restarting');
      expect(status.error).to.match(
        /worker 0 cannot start \(\d+ attempts; last: could not be started \(spawn \S+ EMFILE\)\)/,
      );
      expect(await rejectionOf(client.run({ source: '() => 1' }), Error))
        .to.have.property('message')
        .that.includes('cannot start');
      // Descriptors free again: the next retry brings the worker back.
      expect(spawnSync('prlimit', [`--pid=${pid}`, '--nofile=4096:']).status).to.equal(0);
      await waitFor(async () => (await client.status()).workers[0]!.state === 'idle', 20_000, 'the worker back');
      expect(await client.run({ source: '() => "back"' })).to.equal('back');
      expect((await client.status()).workers[0]!.error).to.equal(undefined);
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('gives back what an upload stored before the disk filled, and evicts unused snapshots to make room', async function () {
    // A real full disk: the workdir on a 24 MiB tmpfs. Mounting needs root (as in CI); elsewhere skip.
    const mountPoint = (await tmp.dir({ unsafeCleanup: true, prefix: 'disk-full-' })).path;
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mountPoint]).status !== 0) {
      if (process.env.CI === 'true') throw new Error('cannot mount a tmpfs: CI runs as root');
      this.skip(); // not root here: the full disk cannot be made
    }
    const workdir = path.join(mountPoint, 'workdir');
    const tree = async (files: number, prefix: string): Promise<string> => {
      const root = await makeTree({});
      for (let i = 0; i < files; i++)
        await fs.writeFile(path.join(root, `${prefix}${i}.bin`), randomBytes(2 * 1024 * 1024));
      return root;
    };
    const blobBytes = async (): Promise<number> => {
      const files = await fs.readdir(path.join(workdir, 'blobs'), { recursive: true, withFileTypes: true });
      const sizes = await Promise.all(
        files.filter((f) => f.isFile()).map((f) => fs.stat(path.join(f.parentPath, f.name))),
      );
      return sizes.reduce((sum, stat) => sum + stat.size, 0);
    };
    let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
    try {
      agent = await startAgent({ args: ['--workers', '1'], workdir });
      const client = await connect(agent.endpoint);
      // 30 MiB in 8 MiB batches: the first batches are stored, then the disk is full.
      const tooBig = await snapshotDirectory(await tree(15, 'big'));
      expect(await remoteCodeOf(client.upload(tooBig))).to.equal('DISK_FULL');
      expect(await blobBytes(), 'bytes of the failed upload left in blobs/').to.equal(0);
      // A snapshot that fits the empty disk is stored; another that fits only without it evicts it.
      const first = await snapshotDirectory(await tree(5, 'first'));
      await client.upload(first);
      const second = await snapshotDirectory(await tree(8, 'second'));
      await client.upload(second);
      const status = await client.status();
      expect(status.store).to.deep.include({ snapshots: 1, evicted: 1 });
      await client.close();
    } finally {
      await agent?.stop();
      spawnSync('umount', [mountPoint]);
    }
  });

  it('counts the compiled-TypeScript cache in --disk-budget and evicts it with the snapshots', async () => {
    const agent = await startAgent({ args: ['--workers', '1', '--disk-budget', '1'] });
    const client = await connect(agent.endpoint);
    const compiledDir = path.join(agent.workdir, 'compiled');
    const sizes = async (): Promise<number[]> => {
      const names = await fs.readdir(compiledDir);
      return Promise.all(names.map(async (name) => (await fs.stat(path.join(compiledDir, name))).size));
    };
    try {
      const filler = `// ${'x'.repeat(100)}\n`.repeat(1_000); // ~100 KB of source, compiled with a source map
      for (let edit = 0; edit < 20; edit++) {
        const local = await snapshotDirectory(
          await makeTree({ 'model.ts': `${filler}export const edit: number = ${edit};\n` }),
        );
        await client.upload(local);
        expect(await client.run({ source: '() => require("./model").edit', snapshot: local.hash })).to.equal(edit);
      }
      const compiled = await sizes();
      const total = compiled.reduce((sum, size) => sum + size, 0);
      // Each creation brings blobs and compiled files back under the budget; the last run compiled one more file.
      expect(total, `${compiled.length} compiled files`).to.be.at.most(1024 * 1024 + Math.max(...compiled));
      expect((await client.status()).store.evicted).to.be.greaterThan(0);
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('carries a 100 MiB argument in pieces under the 64 MiB wire frame bound', async () => {
    const agent = await startAgent({ args: ['--workers', '1'] });
    const client = await connect(agent.endpoint);
    try {
      const big = new Uint8Array(100 * 1024 * 1024).fill(7);
      big[big.length - 1] = 9;
      expect(await client.run({ source: '(a) => [a.length, a[0], a[a.length - 1]]', args: [big] })).to.deep.equal([
        big.length,
        7,
        9,
      ]);
    } finally {
      await client.close();
      await agent.stop();
    }
  });
});
