// The private local agent: reachable only by this user, ended with the process that started it, and a bounded log.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { connect } from '../../../kernel-ext/client/agent-client';
import { LocalAgent, startLocalAgent } from '../../../kernel-ext/client/local-agent';
import { isAlive, untilBusy, waitFor } from '../../support/agent-process';

const LOCAL_AGENT_JS = path.resolve(__dirname, '..', '..', '..', 'kernel-ext', 'client', 'local-agent.js');

/**
 * A node process that starts a local agent and prints its pid and workdir; resolves with both pids and the workdir.
 * `then` is run by the parent once the agent is listening (`a` is the agent).
 */
function parentOfAnAgent(then = ''): Promise<{ parent: number; agent: number; workdir: string }> {
  const script =
    `require(${JSON.stringify(LOCAL_AGENT_JS)}).startLocalAgent({ args: ['--workers', '1'] })` +
    `.then((a) => { console.log(a.process.pid + ' ' + a.workdir); ${then} })`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', (chunk: Buffer) => {
      const [agent, workdir] = chunk.toString().trim().split(' ');
      resolve({ parent: child.pid!, agent: Number(agent), workdir: workdir! });
    });
    child.once('exit', (code) =>
      reject(new Error(`the parent script exited with code ${code} before its agent started`)),
    );
  });
}

describe('kernel-ext/local-agent', function () {
  this.timeout(30_000);
  let agent: LocalAgent | undefined;

  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
  });

  it('listens on a unix socket in its private (0700) workdir by default, not on a TCP port', async () => {
    agent = await startLocalAgent({ args: ['--workers', '1'] });
    expect(agent.endpoint).to.equal(`ipc://${path.join(agent.workdir, 'agent.sock')}`);
    expect(fs.statSync(agent.workdir).mode & 0o777).to.equal(0o700);
    const client = await connect(agent.endpoint);
    try {
      expect(await client.run({ source: '() => 6 * 7' })).to.equal(42);
    } finally {
      await client.close();
    }
  });

  it('starts nothing and leaves nothing behind when aborted as it prepares its directories', async () => {
    // A temp directory of its own, so that nothing else running here can put directories in it meanwhile.
    const tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'abort-start-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmpdir;
    try {
      const abort = new AbortController();
      const starting = startLocalAgent({ args: ['--workers', '1'], signal: abort.signal });
      abort.abort(); // lands while startLocalAgent awaits its private directory, before any spawn
      const error = await starting.then(
        (started) => {
          agent = started;
          throw new Error(`an agent started (pid ${started.process.pid}) although the start was aborted`);
        },
        (rejected: Error) => rejected,
      );
      expect(error.name).to.equal('AbortError');
      expect(fs.readdirSync(tmpdir)).to.deep.equal([]);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      fs.rmSync(tmpdir, { recursive: true, force: true });
    }
  });

  it('uses a private socket directory of its own when given a workdir, and removes it on exit', async () => {
    const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-workdir-'));
    try {
      agent = await startLocalAgent({ args: ['--workers', '1'], workdir });
      const socket = agent.endpoint.replace(/^ipc:\/\//, '');
      expect(path.dirname(socket)).not.to.equal(workdir);
      expect(fs.statSync(path.dirname(socket)).mode & 0o777).to.equal(0o700);
      await agent.stop();
      await waitFor(() => !fs.existsSync(path.dirname(socket)), 2_000, 'the socket directory to be removed');
    } finally {
      fs.rmSync(workdir, { recursive: true, force: true });
    }
  });

  it('shuts down cleanly when its stdin reaches EOF (--exit-with-parent)', async () => {
    agent = await startLocalAgent({ args: ['--workers', '1'] });
    const exited = new Promise((resolve) => agent!.process.once('exit', resolve));
    agent.process.stdin!.end();
    expect(await exited).to.equal(0);
    expect(agent.log()).to.match(/shutting down \(stdin closed: the parent is gone\)/);
  });

  it('ends when the process that started it is SIGKILLed', async () => {
    const { parent, agent: pid } = await parentOfAnAgent();
    expect(isAlive(pid)).to.equal(true);
    process.kill(parent, 'SIGKILL');
    try {
      await waitFor(() => !isAlive(pid), 5_000, `the agent (pid ${pid}) of a killed parent to exit`);
    } finally {
      if (isAlive(pid)) process.kill(pid, 'SIGKILL'); // the bug this test catches would leave it running
    }
  });

  // Its temporary workdir holds a copy of the user's sources and compiled code: nothing of it may outlive the agent.
  const ends: Array<[string, string, (parent: number) => void]> = [
    ['a normal stop()', 'a.stop()', () => undefined],
    ['process.exit() of its owner', 'process.exit(0)', () => undefined],
    ['SIGINT to its owner', '', (parent) => process.kill(parent, 'SIGINT')],
    ['SIGTERM to its owner', '', (parent) => process.kill(parent, 'SIGTERM')],
    ['SIGKILL to its owner', '', (parent) => process.kill(parent, 'SIGKILL')],
  ];
  for (const [end, then, signal] of ends) {
    it(`removes its temporary workdir on ${end}`, async () => {
      const { parent, agent: pid, workdir } = await parentOfAnAgent(then);
      try {
        expect(workdir).to.match(/tslab-remote-agent-/);
        signal(parent);
        await waitFor(() => !isAlive(pid), 10_000, `the agent (pid ${pid}) to exit`);
        await waitFor(() => !fs.existsSync(workdir), 5_000, `its workdir ${workdir} to be removed`);
      } finally {
        if (isAlive(parent)) process.kill(parent, 'SIGKILL');
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
        fs.rmSync(workdir, { recursive: true, force: true });
      }
    });
  }

  // The kernel's private agent (--ephemeral, in a group of its own) must clean up after itself: its owner may be gone.
  it('removes an --ephemeral workdir itself when stopped the moment it listens, and on a second signal ("now")', async () => {
    for (const signals of [1, 2]) {
      // A workdir given by the caller: only the agent's --ephemeral removes it, not this process.
      const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ephemeral-'));
      const own = await startLocalAgent({
        workdir,
        ephemeral: true,
        args: ['--workers', '1', '--cancel-grace-ms', '60000'],
      });
      const ended = new Promise<[number | null, string | null]>((resolve) =>
        own.process.once('exit', (code, signal) => resolve([code, signal])),
      );
      let workers: number[] = [];
      if (signals === 2) {
        // A job that a cancel cannot stop (a thread blocked in Atomics.wait) holds the shutdown up for the grace.
        const client = await connect(own.endpoint);
        workers = (await client.status()).workers.map((w) => w.pid!);
        void client
          .run({ source: '() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 8_000)' })
          .catch(() => undefined);
        await untilBusy(client);
        own.process.kill('SIGTERM');
        await waitFor(() => /shutting down \(SIGTERM\)/.test(own.log()), 5_000, 'the agent to start shutting down');
        await client.close();
      }
      own.process.kill('SIGTERM');
      expect(await ended, `${signals} SIGTERM`).to.deep.equal(signals === 1 ? [0, null] : [143, null]);
      expect(fs.existsSync(workdir), `the workdir after ${signals} SIGTERM`).to.equal(false);
      await waitFor(() => workers.every((pid) => !isAlive(pid)), 20_000, 'the workers of the stopped agent to exit');
    }
  });

  it('keeps only the last 256 KiB of its log', async () => {
    agent = await startLocalAgent({ args: ['--workers', '1'] });
    const client = await connect(agent.endpoint);
    try {
      // Written after the job ended, so the agent logs it as the worker's output: a megabyte in one line.
      const chatty = `() => { setTimeout(() => console.error('x'.repeat(1 << 20) + '\\nthe last line'), 50); }`;
      await client.run({ source: chatty });
      await waitFor(() => agent!.log().includes('the last line'), 5_000, 'the chatty line in the log');
      const bytes = Buffer.byteLength(agent.log());
      expect(bytes)
        .to.be.at.most(256 * 1024)
        .and.at.least(200 * 1024);
    } finally {
      await client.close();
    }
  });
});
