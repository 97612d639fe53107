// A failed call as the cell shows it: each hint fits its case, and is said once. Errors from a real private agent.

import { expect } from 'chai';

import { AgentClient, connect } from '../../../kernel-ext/client/agent-client';
import { LocalAgent, startLocalAgent } from '../../../kernel-ext/client/local-agent';
import { cellFailure } from '../../../kernel-ext/kernel/cell-errors';

describe('kernel-ext/kernel/cell-errors: hints', function () {
  this.timeout(30_000);
  let agent: LocalAgent;
  let client: AgentClient;

  before(async () => {
    agent = await startLocalAgent({ args: ['--workers', '1'] });
    client = await connect(agent.endpoint);
  });

  after(async () => {
    await client?.close();
    await agent?.stop();
  });

  async function tracebackOf(source: string): Promise<string> {
    const thrown = await client.run({ source }).then(
      () => {
        throw new Error(`${source} did not fail`);
      },
      (error: unknown) => error,
    );
    return cellFailure(thrown, {}).error.traceback.join('\n');
  }

  it('does not tell a cell that called process.exit to run again as it is', async () => {
    const text = await tracebackOf('() => process.exit(3)');
    expect(text).to.include('WORKER_CRASHED').and.include('process.exit');
    expect(text).not.to.match(/Run the cell again\.$/m);
  });

  it('gives the advice for a package that is not installed once', async () => {
    const text = await tracebackOf(`() => require('surely-not-installed-pkg-42')`);
    expect(text).to.include("Cannot find package 'surely-not-installed-pkg-42'");
    expect(text.match(/then (call|run the cell) again/gi)).to.have.length(1);
  });
});
