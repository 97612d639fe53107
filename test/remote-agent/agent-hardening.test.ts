// Attacks on a real agent found in a hardening round (issue 12), each reproduced here: a second agent on the same
// workdir, a worker whose restart fails, a vanished client, a full disk, and more. The agent must refuse, recover
// or report, and stay up.

import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
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
    const kernel = spawn(process.execPath, ['-e', VANISHING_CLIENT, agent.endpoint], { stdio: ['ignore', 'pipe', 'inherit'] });
    const other = await connect(agent.endpoint);
    try {
      await new Promise<void>((resolve, reject) => {
        kernel.stdout.on('data', (data: Buffer) => data.toString().includes('submitted') && resolve());
        kernel.once('exit', () => reject(new Error('the vanishing client ended before submitting')));
      });
      kernel.kill('SIGKILL');
      // The other client's job waits behind the vanished one's on the only worker, until those are cancelled.
      expect(await other.run({ source: '() => "ran after the vanished client"' })).to.equal('ran after the vanished client');
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
      await waitFor(async () => (await client.status()).workers[0]!.error !== undefined, 10_000, 'the failure in status');
      const status = (await client.status()).workers[0]!;
      expect(status.state).to.equal('restarting');
      expect(status.error).to.match(/worker 0 cannot start \(\d+ attempts; last: could not be started \(spawn \S+ EMFILE\)\)/);
      expect(await rejectionOf(client.run({ source: '() => 1' }), Error)).to.have.property('message').that.includes('cannot start');
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
});
