// The client's heartbeat deadline against a real agent frozen with SIGSTOP: the connection stays up (the kernel
// still acknowledges TCP), yet the agent says nothing. A pending call fails AGENT_UNREACHABLE past silenceTimeoutMs,
// and once the agent thaws it is told to cancel the call it was still running.

import { expect } from 'chai';

import { connect } from '../../../kernel-ext/client/agent-client';
import { RemoteError } from '../../../protocol/errors';
import { rejectionOf } from '../../support/rejection';
import { startAgent, untilBusy, waitFor } from '../../support/agent-process';

describe('kernel-ext agent client: heartbeat deadline', function () {
  this.timeout(30_000);

  it('fails a call to a frozen agent past silenceTimeoutMs, and cancels it there when the agent thaws', async () => {
    const agent = await startAgent({ args: ['--workers', '1'] });
    const pid = agent.process.pid!;
    const client = await connect(agent.endpoint, { heartbeatMs: 100, silenceTimeoutMs: 1_500 });
    try {
      const call = client.run({ source: '() => new Promise((resolve) => setTimeout(resolve, 60_000))' });
      await untilBusy(client);
      process.kill(pid, 'SIGSTOP');
      const error = await rejectionOf(call, RemoteError);
      expect(error.code).to.equal('AGENT_UNREACHABLE');
      expect(error.message).to.include('no word from the agent');
      expect(client.reachable).to.equal(false);
      process.kill(pid, 'SIGCONT');
      await waitFor(() => client.reachable, 10_000, 'the agent to answer again');
      await waitFor(
        async () => (await client.status()).workers[0]!.state === 'idle',
        10_000,
        'the abandoned call to be cancelled',
      );
    } finally {
      process.kill(pid, 'SIGCONT');
      await client.close();
      await agent.stop();
    }
  });
});
