// The client library against real agents: it never hangs. No agent, a dead agent and a restarted agent each end
// pending requests with their own error code.

import { expect } from 'chai';
import * as net from 'node:net';

import { connect } from '../../kernel-ext/agent-client';
import { RemoteError } from '../../protocol/errors';
import { remoteCodeOf } from '../support/rejection';
import { isAlive, startAgent, waitFor } from '../support/agent-process';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('kernel-ext agent client', function () {
  this.timeout(30_000);

  it('says no agent answered when nothing listens at the endpoint', async () => {
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const started = Date.now();
    try {
      await connect(endpoint, { connectTimeoutMs: 500 });
      expect.fail('connect should fail');
    } catch (error) {
      expect((error as RemoteError).code).to.equal('AGENT_UNREACHABLE');
      expect((error as Error).message).to.include(endpoint).and.include('remote-agent serve');
    }
    expect(Date.now() - started).to.be.below(3_000);
  });

  it('fails a running job with AGENT_UNREACHABLE when the agent dies', async () => {
    const agent = await startAgent();
    const client = await connect(agent.endpoint, { heartbeatMs: 100, heartbeatTimeoutMs: 1_000 });
    try {
      const pids = (await client.status()).workers.map((w) => w.pid!);
      const job = client.run({ source: '() => new Promise(() => {})' });
      await new Promise((resolve) => setTimeout(resolve, 200));
      agent.process.kill('SIGKILL');
      expect(await remoteCodeOf(job)).to.equal('AGENT_UNREACHABLE');
      await waitFor(() => pids.every((pid) => !isAlive(pid)), 5_000, 'workers of a killed agent to exit on their own');
    } finally {
      await client.close();
    }
  });

  it('fails a running job with AGENT_RESTARTED when another agent answers at the endpoint', async () => {
    const port = await freePort();
    const bind = ['--bind', `tcp://127.0.0.1:${port}`];
    const first = await startAgent({ args: bind });
    const client = await connect(`tcp://127.0.0.1:${port}`, { heartbeatMs: 100, heartbeatTimeoutMs: 5_000 });
    let second;
    try {
      const pids = (await client.status()).workers.map((w) => w.pid!);
      const job = client.run({ source: '() => new Promise(() => {})' });
      await new Promise((resolve) => setTimeout(resolve, 200));
      first.process.kill('SIGKILL'); // no goodbye: only the heartbeat can tell
      await first.stop();
      await waitFor(() => pids.every((pid) => !isAlive(pid)), 5_000, 'workers of a killed agent to exit on their own');
      second = await startAgent({ args: bind });
      expect(await remoteCodeOf(job)).to.equal('AGENT_RESTARTED');
      expect(await client.run({ source: '() => "on the new agent"' })).to.equal('on the new agent');
    } finally {
      await client.close();
      await second?.stop();
    }
  });

  it('fails pending requests with CLIENT_CLOSED when closed', async () => {
    const agent = await startAgent();
    const client = await connect(agent.endpoint);
    try {
      const job = client.run({ source: '() => new Promise(() => {})' });
      await client.close();
      expect(await remoteCodeOf(job)).to.equal('CLIENT_CLOSED');
      expect(await remoteCodeOf(client.run({ source: '() => 1' }))).to.equal('CLIENT_CLOSED');
    } finally {
      await agent.stop();
    }
  });

  it('tells a waiting call when a connected agent goes silent (stopped), and when it answers again', async () => {
    const agent = await startAgent({ args: ['--workers', '1'] });
    const client = await connect(agent.endpoint, { heartbeatMs: 100, silenceNoticeMs: 1_000 });
    try {
      const sleepy = '(ms) => new Promise((resolve) => setTimeout(() => resolve("done"), ms))';
      const quiet: string[] = [];
      // A call that simply takes longer than the notice delay: pongs keep coming, so nothing is said.
      expect(await client.run({ source: sleepy, args: [1_500], onOutput: (_s, text) => quiet.push(text) })).to.equal('done');
      expect(quiet).to.deep.equal([]);

      const stderr: string[] = [];
      const job = client.run({ source: sleepy, args: [2_000], onOutput: (_s, text) => stderr.push(text) });
      await new Promise((resolve) => setTimeout(resolve, 200));
      agent.process.kill('SIGSTOP'); // alive, connected, and mute
      try {
        await waitFor(() => stderr.length > 0, 10_000, 'the silence notice');
      } finally {
        agent.process.kill('SIGCONT');
      }
      expect(await job).to.equal('done');
      expect(stderr[0]).to.match(new RegExp(`^tslab-remote: no word from the agent at ${agent.endpoint} for \\d+ s although the connection is up`));
      expect(stderr[0]).to.include('Interrupt to stop waiting');
      expect(stderr[1]).to.match(/^tslab-remote: the agent at .* answers again, after \d+ s\n$/);
    } finally {
      await client.close();
      await agent.stop();
    }
  });
});
