// The client library against real agents: it never hangs. No agent, a dead agent and a restarted agent each end
// pending requests with their own error code; an aborted connect or call gives up at once, sending nothing more.

import { expect } from 'chai';
import * as net from 'node:net';

import { connect } from '../../../kernel-ext/client/agent-client';
import { RemoteError } from '../../../protocol/errors';
import { rejectionOf, remoteCodeOf } from '../../support/rejection';
import { isAlive, startAgent, untilBusy, waitFor } from '../../support/agent-process';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP server that accepts connections and never says a word: a ZeroMQ handshake with it never completes. */
async function silentServer(): Promise<{
  endpoint: string;
  accepted: () => number;
  open: () => number;
  close: () => Promise<void>;
}> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.resume(); // reads (and drops) what the client says, and so sees it hang up
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    accepted: () => accepted,
    open: () => sockets.size,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('kernel-ext agent client', function () {
  this.timeout(30_000);

  it('says no agent answered when nothing listens at the endpoint', async () => {
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    try {
      await connect(endpoint, { connectTimeoutMs: 500 });
      expect.fail('connect should fail');
    } catch (error) {
      expect((error as RemoteError).code).to.equal('AGENT_UNREACHABLE');
      expect((error as Error).message)
        .to.include(endpoint)
        .and.include('remote-agent serve');
    }
  });

  it('gives up connecting when its signal aborts, and closes the half-made connection', async () => {
    const silent = await silentServer();
    try {
      const controller = new AbortController();
      const connecting = connect(silent.endpoint, { signal: controller.signal, connectTimeoutMs: 60_000 });
      await waitFor(() => silent.accepted() > 0, 5_000, 'the client to open a TCP connection');
      controller.abort();
      const error = await rejectionOf(connecting, Error);
      expect(error.name).to.equal('AbortError');
      expect(error.message).to.equal(`gave up connecting to ${silent.endpoint}: aborted before the agent answered`);
      await waitFor(() => silent.open() === 0, 5_000, 'the client to close its connection');
      // Aborted before it starts: no socket at all.
      const accepted = silent.accepted();
      expect((await rejectionOf(connect(silent.endpoint, { signal: AbortSignal.abort() }), Error)).name).to.equal(
        'AbortError',
      );
      expect(silent.accepted()).to.equal(accepted);
    } finally {
      await silent.close();
    }
  });

  it('does not send a call whose signal aborts while it is pickled, and cancels one aborted after', async () => {
    const agent = await startAgent({ args: ['--workers', '1'] });
    const client = await connect(agent.endpoint);
    try {
      const count = (): void => {
        const scope = globalThis as { calls?: number };
        scope.calls = (scope.calls ?? 0) + 1;
      };
      const calls = () => client.run<number>({ source: '() => globalThis.calls ?? 0' });
      const before = new AbortController();
      const unsent = client.call(count, [], { signal: before.signal });
      before.abort(); // as a SIGINT's handler would, once the event loop turns after the pickling
      const error = await rejectionOf(unsent.result, Error);
      expect(error.name).to.equal('AbortError');
      expect(error.message).to.equal(`call ${unsent.id} was not sent: aborted`);
      await client.call(count, [], { signal: new AbortController().signal }).result;
      expect(await calls()).to.equal(1);

      const after = new AbortController();
      const running = client.start({ source: '() => new Promise(() => {})', signal: after.signal });
      await untilBusy(client);
      after.abort();
      expect(await remoteCodeOf(running.result)).to.equal('CANCELLED');
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('stops waiting for an aborted call when a stuck agent does not acknowledge the cancel, and goes on', async () => {
    const agent = await startAgent({ args: ['--workers', '1'] });
    const client = await connect(agent.endpoint, { cancelAckMs: 500 });
    try {
      const abort = new AbortController();
      const running = client.start({ source: '() => new Promise(() => {})', signal: abort.signal });
      await untilBusy(client);
      agent.process.kill('SIGSTOP'); // connected, and mute
      let error: RemoteError;
      try {
        abort.abort();
        error = await rejectionOf(running.result, RemoteError);
      } finally {
        agent.process.kill('SIGCONT');
      }
      expect(error.code).to.equal('CANCELLED');
      expect(error.message).to.equal(
        `the agent at ${agent.endpoint} did not acknowledge the cancel of call ${running.id} within 0.5 s (it may be stuck): ` +
          'stopped waiting; the call is cancelled there if it answers again',
      );
      // Back, the agent took the cancel it was sent: its worker is free for the next call.
      expect(await client.run({ source: '() => "next"' })).to.equal('next');
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('fails a running job with AGENT_UNREACHABLE when the agent dies', async () => {
    const agent = await startAgent();
    const client = await connect(agent.endpoint, { heartbeatMs: 100, heartbeatTimeoutMs: 1_000 });
    try {
      const pids = (await client.status()).workers.map((w) => w.pid!);
      const job = client.run({ source: '() => new Promise(() => {})' });
      await untilBusy(client);
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
    const client = await connect(`tcp://127.0.0.1:${port}`, { heartbeatMs: 10, heartbeatTimeoutMs: 5_000 }); // pongs in flight while it re-hellos
    let second;
    try {
      const pids = (await client.status()).workers.map((w) => w.pid!);
      const job = client.run({ source: '() => new Promise(() => {})' });
      await untilBusy(client);
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
      expect(await client.run({ source: sleepy, args: [1_500], onOutput: (_s, text) => quiet.push(text) })).to.equal(
        'done',
      );
      expect(quiet).to.deep.equal([]);

      const stderr: string[] = [];
      const job = client.run({ source: sleepy, args: [2_000], onOutput: (_s, text) => stderr.push(text) });
      await untilBusy(client);
      agent.process.kill('SIGSTOP'); // alive, connected, and mute
      try {
        await waitFor(() => stderr.length > 0, 10_000, 'the silence notice');
      } finally {
        agent.process.kill('SIGCONT');
      }
      expect(await job).to.equal('done');
      expect(stderr[0]).to.match(
        new RegExp(
          `^tslab-remote: no word from the agent at ${agent.endpoint} for \\d+ s although the connection is up`,
        ),
      );
      expect(stderr[0]).to.include('Interrupt to stop waiting');
      expect(stderr[1]).to.match(/^tslab-remote: the agent at .* answers again, after \d+ s\n$/);
    } finally {
      await client.close();
      await agent.stop();
    }
  });
});
