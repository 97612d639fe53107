// The agent ↔ worker channel: message checks, and the words for a stopped job that the pool and the worker share.

import { expect } from 'chai';

import { AgentError } from '../../../protocol/errors';
import { parseFromWorker, stoppedJobMessage } from '../../../remote-agent/worker/channel';

const frame = (header: object): Buffer => Buffer.from(JSON.stringify(header));

describe('remote-agent/worker/channel', () => {
  it('says what happened to a stopped job, before or after it started', () => {
    const context = { agent: 'gpu1:5555' };
    expect(stoppedJobMessage('CANCELLED', 'k1-5', { ...context, started: false })).to.equal(
      'job k1-5 was cancelled before it started',
    );
    expect(stoppedJobMessage('CANCELLED', 'k1-5', { ...context, started: true })).to.equal('job k1-5 was cancelled');
    expect(stoppedJobMessage('TIMEOUT', 'k1-5', { ...context, started: false })).to.equal(
      'job k1-5 timed out before it started',
    );
    expect(stoppedJobMessage('TIMEOUT', 'k1-5', { ...context, started: true, timeoutMs: 200 })).to.equal(
      'job k1-5 ran past its timeout of 200 ms',
    );
    expect(stoppedJobMessage('TIMEOUT', 'k1-5', { ...context, started: true })).to.equal(
      'job k1-5 ran past its timeout',
    );
    expect(stoppedJobMessage('SHUTTING_DOWN', 'k1-5', { ...context, started: false })).to.equal(
      'agent gpu1:5555 is stopping; job k1-5 was not run',
    );
    expect(stoppedJobMessage('SHUTTING_DOWN', 'k1-5', { ...context, started: true })).to.equal(
      'agent gpu1:5555 is stopping; job k1-5 was interrupted',
    );
  });

  it("checks a worker's error report with the protocol's wire error check", () => {
    const report = {
      type: 'error',
      job: 'j',
      interrupted: false,
      inUse: [],
      error: { code: 'REMOTE_EXCEPTION', name: 'E', message: 'm', cause: { code: 'INTERNAL' } },
    };
    const { message } = parseFromWorker([frame(report)]);
    expect(message).to.deep.include({ type: 'error', job: 'j' });
    expect((message as { error: unknown }).error).to.deep.equal({
      code: 'REMOTE_EXCEPTION',
      name: 'E',
      message: 'm',
      cause: { code: 'INTERNAL', name: 'Error', message: '' },
    });
    let refused: unknown;
    try {
      parseFromWorker([frame({ ...report, error: { code: 'NOT_A_CODE' } })]);
    } catch (error) {
      refused = error;
    }
    expect(refused).to.be.instanceOf(AgentError);
    expect((refused as Error).message).to.contain('error.code');
  });
});
