// Detached jobs through real agents: a job outlives the client that started it, its output is replayed and its
// result delivered to a later client, it survives an agent restart once ended and is `lost` when its agent or
// worker dies while it runs; the output, result and time-to-live bounds hold. Keys: detached-keys.test.ts.

import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { snapshotDirectory } from '../../../kernel-ext/client/snapshot';
import type { DetachedJobInfo } from '../../../protocol/job-messages';
import { RemoteError } from '../../../protocol/errors';
import { makeTree, waitFor } from '../../support/agent-process';
import { rejectionOf } from '../../support/rejection';
import { counter, jobOf, untilState, useDetachedAgent } from './detached-agent';

describe('detached jobs, end to end', function () {
  this.timeout(60_000);
  const ctx = useDetachedAgent();

  it('runs on after its client closes; a later client replays its output and gets its result', async () => {
    // A grace far shorter than the job: an ordinary call of a closed client would be cancelled after it.
    await ctx.start(['--client-grace-ms', '100']);
    const first = await ctx.client();
    const started = await first.detach(counter, [5, 150], { name: 'count' });
    expect(started).to.include({ name: 'count', kind: 'pickle' });
    expect(started.state).to.be.oneOf(['queued', 'running']);
    await first.close();

    const second = await ctx.client();
    const running = await untilState(second, started.id, 'running');
    expect(running.worker).to.equal(0);
    const output: string[] = [];
    let attached: DetachedJobInfo | undefined;
    const result = await second.attach<number>('count', {
      onJob: (job) => (attached = job),
      onOutput: (_stream, text) => output.push(text),
    });
    expect(result).to.equal(50);
    expect(attached?.id).to.equal(started.id);
    expect(output.join('')).to.equal('line 1\nline 2\nline 3\nline 4\nline 5\n');
    const done = (await jobOf(second, started.id))!;
    expect(done).to.include({ state: 'done', lastLine: 'line 5', outputBytes: 35, droppedBytes: 0 });
    expect(done.endedAt! - done.startedAt!).to.be.at.least(5 * 150 - 50);
    // Fetched once, it is still there to fetch again.
    expect(await second.attach('count')).to.equal(50);
  });

  it('keeps displays with the output, in order, and replays them; a client without onDisplay gets their text', async () => {
    await ctx.start();
    const c = await ctx.client();
    const job = await c.detach(() => {
      type Show = (message: unknown, update: boolean) => void;
      const show = (globalThis as unknown as Record<symbol, Show>)[Symbol.for('tslab-remote.display')]!;
      console.log('a');
      show(
        { data: { 'text/html': '<i>b</i>', 'text/plain': 'b' }, metadata: {}, transient: { display_id: 'p' } },
        false,
      );
      console.log('c');
      return 'shown';
    }, []);
    await untilState(c, job.id, 'done');
    const seen: unknown[] = [];
    const shown = await c.attach(job.id, {
      onOutput: (stream, text) => seen.push(`${stream}:${text}`),
      onDisplay: (display) => seen.push(display),
    });
    expect(shown).to.equal('shown');
    expect(seen).to.deep.equal([
      'stdout:a\n',
      { data: { 'text/html': '<i>b</i>', 'text/plain': 'b' }, metadata: {}, displayId: 'p', update: false },
      'stdout:c\n',
    ]);
    const plain: string[] = [];
    await c.attach(job.id, { onOutput: (_stream, text) => plain.push(text) });
    expect(plain.join('')).to.equal('a\nb\nc\n');
  });

  it('keeps a finished result across an agent restart, and reports a job its dead agent ran as lost with its output', async () => {
    await ctx.start();
    let c = await ctx.client();
    const finished = await c.detach(() => 'kept', [], { name: 'quick' });
    await untilState(c, finished.id, 'done');
    const cut = await c.detach(counter, [1_000, 50], { name: 'cut' });
    // Output reaches the disk every 200 ms: by line 10 (500 ms in), lines 1 to 3 are there.
    await waitFor(async () => (await jobOf(c, cut.id))?.lastLine === 'line 10', 15_000, 'output of the job');
    ctx.agent!.process.kill('SIGKILL');
    await new Promise((resolve) => ctx.agent!.process.once('exit', resolve));
    await ctx.closeClients();

    await ctx.start();
    c = await ctx.client();
    expect(await c.attach('quick')).to.equal('kept');
    const lost = (await jobOf(c, cut.id))!;
    expect(lost.state).to.equal('lost');
    expect(lost.error?.message).to.match(/stopped before the job ended; its output so far is kept/);
    const output: string[] = [];
    const error = await rejectionOf(c.attach('cut', { onOutput: (_s, text) => output.push(text) }), RemoteError);
    expect(error.code).to.equal('WORKER_CRASHED');
    expect(output.join('')).to.match(/^line 1\nline 2\nline 3\n/);
  });

  it('reports a job whose worker dies as lost, and the agent goes on', async () => {
    await ctx.start();
    const c = await ctx.client();
    const job = await c.detach(() => {
      console.log('about to die');
      setTimeout(() => process.kill(process.pid, 'SIGKILL'), 100);
      return new Promise(() => undefined);
    }, []);
    const lost = await untilState(c, job.id, 'lost');
    expect(lost.lastLine).to.equal('about to die');
    expect(lost.error?.code).to.equal('WORKER_CRASHED');
    expect(await c.call(() => 'after', []).result).to.equal('after');
  });

  it('survives a disk that fails under a running job: the job fails saying so, the agent and its other jobs go on', async () => {
    await ctx.start();
    const c = await ctx.client();
    const job = await c.detach(counter, [20, 50], {});
    await untilState(c, job.id, 'running');
    fs.rmSync(path.join(ctx.workdir, 'jobs', job.id), { recursive: true, force: true }); // every write of the job now fails
    const failed = await untilState(c, job.id, 'failed');
    expect(failed.error?.code).to.equal('DISK_FULL');
    expect(failed.error?.message).to.match(/could not keep this job's result: ENOENT/);
    expect(ctx.agent!.process.exitCode).to.equal(null);
    expect(await c.attach((await c.detach(() => 'next', [])).id)).to.equal('next');
  });

  it('keeps the newest output within --job-output-mb and says how much was dropped', async () => {
    await ctx.start(['--job-output-mb', '1']);
    const c = await ctx.client();
    // 3,000 lines of 1,000 bytes: about 3 MB, three times the bound.
    const job = await c.detach(() => {
      for (let i = 0; i < 3_000; i++) process.stdout.write(`${String(i).padStart(5, '0')}${'.'.repeat(994)}\n`);
      return 'printed';
    }, []);
    await untilState(c, job.id, 'done');
    const output: string[] = [];
    expect(await c.attach(job.id, { onOutput: (_s, text) => output.push(text) })).to.equal('printed');
    const text = output.join('');
    const info = (await jobOf(c, job.id))!;
    expect(info.outputBytes).to.equal(3_000_000);
    expect(info.droppedBytes).to.be.above(2_000_000);
    expect(text).to.match(
      /^\[tslab-remote: the oldest \d+ bytes of this job's output were dropped \(--job-output-mb\)\]\n/,
    );
    const kept = text.slice(text.indexOf('\n') + 1);
    expect(kept.length)
      .to.equal(3_000_000 - info.droppedBytes)
      .and.to.be.at.most(1024 * 1024);
    expect(kept.endsWith(`02999${'.'.repeat(994)}\n`)).to.equal(true);
  });

  it('fails a job whose result is over --job-result-mb, and forgets ended jobs after --job-ttl-hours', async () => {
    await ctx.start(['--job-result-mb', '1', '--job-ttl-hours', '0.001']); // 3.6 s
    const c = await ctx.client();
    const big = await c.detach(() => 'x'.repeat(2 * 1024 * 1024), []);
    const failed = await untilState(c, big.id, 'failed');
    expect(failed.error?.code).to.equal('TOO_LARGE');
    expect(failed.error?.message).to.match(/over the agent's bound of 1048576 \(--job-result-mb\)/);
    const small = await c.detach(() => 'small', []);
    await untilState(c, small.id, 'done');
    await waitFor(async () => (await c.detachedJobs()).length === 0, 15_000, 'ended jobs to expire');
    const error = await rejectionOf(c.attach(small.id), RemoteError);
    expect(error.code).to.equal('JOB_UNKNOWN');
    expect(error.message).to.match(
      /forgotten: its time to live ran out, 0\.001 h after it ended or was last attached \(--job-ttl-hours\)/,
    );
  });

  it('cancels a job by name, and stops watching without stopping the job', async () => {
    await ctx.start();
    const c = await ctx.client();
    const watched = await c.detach(counter, [400, 50], { name: 'watched' });
    await untilState(c, watched.id, 'running');
    const stop = new AbortController();
    const watching = c.attach('watched', { signal: stop.signal, onOutput: () => stop.abort() });
    const error = await rejectionOf(watching, RemoteError);
    expect(error.code).to.equal('CANCELLED');
    expect(error.message).to.match(/stopped watching detached job \w+ \(watched\); the job goes on/);
    expect((await jobOf(c, watched.id))!.state).to.equal('running');

    const after = await c.cancelDetached('watched');
    expect(after.id).to.equal(watched.id);
    const cancelled = await untilState(c, watched.id, 'cancelled');
    expect(cancelled.error?.code).to.equal('CANCELLED');
    expect((await rejectionOf(c.attach('watched'), RemoteError)).code).to.equal('CANCELLED');
  });

  it('counts an attach among the calls a client may have open (--max-jobs-per-client)', async () => {
    await ctx.start(['--max-jobs-per-client', '1']);
    const c = await ctx.client();
    const job = await c.detach(() => new Promise((resolve) => setTimeout(() => resolve('late'), 60_000)), []);
    const stop = new AbortController();
    const watching = c.attach(job.id, { signal: stop.signal });
    await untilState(c, job.id, 'running');
    const refused = await rejectionOf(c.attach(job.id), RemoteError);
    expect(refused.code).to.equal('TOO_LARGE');
    expect(refused.message).to.include('--max-jobs-per-client');
    stop.abort();
    expect((await rejectionOf(watching, RemoteError)).code).to.equal('CANCELLED');
    await c.cancelDetached(job.id);
  });

  it('refuses an unknown job by name with what to do', async () => {
    await ctx.start();
    const c = await ctx.client();
    const error = await rejectionOf(c.attach('no-such-job'), RemoteError);
    expect(error.code).to.equal('JOB_UNKNOWN');
    expect(error.message).to.include('%remote_jobs lists yours');
    // A job the pool refuses at once (no worker 7 on a one-worker agent) is an error, and leaves no job behind.
    const refused = await rejectionOf(
      c.detach(() => 1, [], { worker: 7 }),
      RemoteError,
    );
    expect(refused.code).to.equal('BAD_MESSAGE');
    expect(refused.message).to.match(/worker 7/);
    expect(await c.detachedJobs()).to.deep.equal([]);
    expect(fs.readdirSync(path.join(ctx.workdir, 'jobs'))).to.deep.equal([]);
  });

  it('keeps its snapshot while it runs, however many snapshots come after it', async () => {
    await ctx.start(['--disk-budget', '1']);
    const c = await ctx.client();
    const trees = await Promise.all(['a', 'b', 'c'].map((fill) => makeTree({ 'data.txt': fill.repeat(600_000) })));
    const first = await snapshotDirectory(trees[0]!);
    await c.upload(first);
    const job = await c.detach(
      () =>
        new Promise((resolve) =>
          setTimeout(() => resolve(require('fs').readFileSync('data.txt', 'utf8').slice(0, 3)), 1_500),
        ),
      [],
      {
        snapshot: first.hash,
      },
    );
    // Each upload puts the store over its 1 MB budget: only snapshots nothing uses may go.
    for (const tree of trees.slice(1)) await c.upload(await snapshotDirectory(tree));
    expect((await c.status()).store.evicted).to.be.at.least(1);
    expect(await c.attach(job.id)).to.equal('aaa');
  });
});
