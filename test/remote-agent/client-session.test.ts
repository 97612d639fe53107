// What the agent keeps per client: final replies until the client's pings show it has them.

import { expect } from 'chai';

import { ClientSession } from '../../remote-agent/client-session';
import type { Frame } from '../../protocol/frames';
import { waitFor } from '../support/agent-process';

function session(failure: string | null = null): { session: ClientSession; sent: string[]; log: string[] } {
  const sent: string[] = [];
  const log: string[] = [];
  const send = async (frames: readonly Frame[]): Promise<string | null> => {
    sent.push(String(frames[0]));
    return failure;
  };
  return { session: new ClientSession('c1', send, (line) => log.push(line)), sent, log };
}

const frame = (text: string): Frame[] => [Buffer.from(text)];
const notice = (count: number): Frame[] => frame(`dropped ${count}`);

describe('remote-agent/client-session', () => {
  it('sends a final reply and keeps it until a ping no longer lists the job', () => {
    const { session: s, sent } = session();
    s.jobs.add('j1');
    const before = Date.now();
    s.finish('j1', frame('reply j1'), notice);
    expect(sent).to.deep.equal(['reply j1']);
    expect(s.holdsRepliesSince(before)).to.equal(true);
    expect(s.knows('j1')).to.equal(true);
    s.onPing(['j1'], false, () => undefined);
    expect(s.holdsRepliesSince(before)).to.equal(true);
    s.onPing([], false, () => undefined);
    expect(s.holdsRepliesSince(before)).to.equal(false);
    expect(s.idle).to.equal(true);
  });

  it('tells replies that ended before a time from those at or after it', () => {
    const { session: s } = session();
    s.finish('old', frame('reply'), notice);
    expect(s.holdsRepliesSince(Date.now() + 1_000)).to.equal(false);
    expect(s.holdsRepliesSince(0)).to.equal(true);
  });

  it('sends a kept reply again on a resend ping and answers an unknown awaited job', () => {
    const { session: s, sent } = session();
    s.finish('j1', frame('reply j1'), notice);
    const unknown: string[] = [];
    s.onPing(['j1', 'ghost'], true, (job) => unknown.push(job));
    expect(sent).to.deep.equal(['reply j1', 'reply j1']);
    expect(unknown).to.deep.equal(['ghost']);
  });

  it('keeps an undeliverable reply, logs it once, and expires it after its time to live', async () => {
    const { session: s, log } = session('EHOSTUNREACH');
    s.finish('j1', frame('reply j1'), notice);
    await new Promise((resolve) => setImmediate(resolve));
    expect(log).to.have.length(1);
    expect(log[0]).to.match(/could not send the final reply of job j1 .*EHOSTUNREACH.*kept for redelivery/);
    expect(s.holdsRepliesSince(0)).to.equal(false); // nothing of it is in flight: no reason to wait for it
    s.expire(Date.now() + 10_000, 5_000);
    expect(log[1]).to.match(/discarded the final reply of job j1/);
  });

  it('tells the client how much output was dropped before the final reply', async () => {
    const sent: string[] = [];
    let failing = true;
    const flaky = new ClientSession(
      'c2',
      async (frames) => {
        sent.push(String(frames[0]));
        return failing ? 'EAGAIN' : null;
      },
      () => undefined,
    );
    await flaky.output('j1', frame('out 1'));
    await flaky.output('j1', frame('out 2'));
    failing = false;
    flaky.finish('j1', frame('reply j1'), notice);
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).to.deep.equal(['out 1', 'out 2', 'dropped 2', 'reply j1']);
  });

  it('retries the dropped-output notice while the queue stays full, and delivers it before the final reply', async () => {
    const delivered: string[] = [];
    let full = 5; // sends refused: two outputs, then the notice and the reply twice more
    const stalled = new ClientSession(
      'c3',
      async (frames) => {
        if (full > 0) {
          full--;
          return 'EAGAIN';
        }
        delivered.push(String(frames[0]));
        return null;
      },
      () => undefined,
    );
    await stalled.output('j1', frame('out 1'));
    await stalled.output('j1', frame('out 2'));
    stalled.finish('j1', frame('reply j1'), notice);
    await waitFor(() => delivered.length >= 2, 10_000, 'the notice and the reply, once sends are taken');
    expect(delivered).to.deep.equal(['dropped 2', 'reply j1']);
  });
});
