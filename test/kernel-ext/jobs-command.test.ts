// `tslab-remote jobs` against a real agent: the list, attach (output, then the result) and cancel of detached jobs
// started by another client, and clear errors for a job or agent that is not there.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as path from 'node:path';

import { agentWithClient, waitFor } from '../support/agent-process';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'tslab-remote.js');

function cli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('tslab-remote jobs (terminal)', function () {
  this.timeout(60_000);
  const suite = agentWithClient();

  it('lists the jobs, follows one to its result, and cancels one', async () => {
    const done = await suite.client.detach(
      () =>
        new Promise((resolve) =>
          setTimeout(() => {
            console.log('half way');
            setTimeout(() => resolve({ loss: 0.25 }), 300);
          }, 300),
        ),
      [],
      { name: 'fit' },
    );
    const spare = await suite.client.detach(() => new Promise(() => undefined), [], { name: 'spare' });
    await waitFor(
      async () => (await suite.client.detachedJobs()).some((job) => job.id === spare.id && job.state === 'running'),
      10_000,
      'spare running',
    );

    const listed = await cli(['jobs', '--agent', suite.agent.endpoint]);
    expect(listed.code, listed.stderr).to.equal(0);
    expect(listed.stdout).to.match(new RegExp(`^${done.id} +fit +(running|done) `, 'm'));
    expect(listed.stdout).to.match(new RegExp(`^${spare.id} +spare +running `, 'm'));

    const followed = await cli(['jobs', 'attach', 'fit'], { TSLAB_REMOTE_AGENT: suite.agent.endpoint });
    expect(followed.code, followed.stderr).to.equal(0);
    expect(followed.stdout).to.equal('half way\n{ loss: 0.25 }\n');
    expect(followed.stderr).to.match(new RegExp(`^job ${done.id} \\(fit\\): (running|done)\\n$`));

    const cancelled = await cli(['jobs', '--agent', suite.agent.endpoint, 'cancel', 'spare']);
    expect(cancelled.code, cancelled.stderr).to.equal(0);
    expect(cancelled.stdout).to.equal(`cancelling job ${spare.id} (spare)\n`);
    await waitFor(
      async () => (await suite.client.detachedJobs()).some((job) => job.id === spare.id && job.state === 'cancelled'),
      10_000,
      'spare cancelled',
    );
  });

  it('says what is wrong: exit status 1 for an unknown job, 2 for a job missing from the command line', async () => {
    const unknown = await cli(['jobs', '--agent', suite.agent.endpoint, 'attach', 'nothing-here']);
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.match(
      /^tslab-remote: JOB_UNKNOWN: this agent has no detached job "nothing-here" of yours/,
    );
    const usage = await cli(['jobs', '--agent', suite.agent.endpoint, 'attach']);
    expect(usage.code).to.equal(2);
    expect(usage.stderr).to.include('jobs attach takes one job id or name');
  });
});
