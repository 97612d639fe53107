// The worker pool when a worker dies or sends what cannot be read: the job fails naming why, the worker restarts.

import { expect } from 'chai';

import { Harness } from './pool-harness';

describe('remote-agent/worker-pool: crashes', function () {
  this.timeout(20_000);
  let h: Harness | undefined;

  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  describe('crashes', () => {
    it('reports process.exit(3) as WORKER_CRASHED with the exit code, and the next job works', async () => {
      h = await Harness.create({ size: 1 });
      const before = h.pid(0);
      const outcome = await h.run(`() => { console.error('about to exit'); process.exit(3); }`);
      expect(outcome.error?.code).to.equal('WORKER_CRASHED');
      expect(outcome.error?.message).to.include('exited with code 3');
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
      expect(h.pid(0)).not.to.equal(before);
      expect(h.pool.status()[0]!.restarts).to.equal(1);
    });

    it('reports an uncaught exception in a timer with its message and stack', async () => {
      h = await Harness.create({ size: 1 });
      const outcome = await h.run(`() => {
        setTimeout(function explode() { throw new TypeError('late boom'); }, 10);
        return new Promise(() => {});
      }`);
      expect(outcome.error?.code).to.equal('WORKER_CRASHED');
      expect(outcome.error?.message).to.include('uncaught exception (TypeError: late boom)');
      expect(outcome.error?.cause?.name).to.equal('TypeError');
      expect(outcome.error?.stack).to.match(/at (Timeout\.)?explode .*remote-job\.js:2:\d+\)/);
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
    });

    it('reports running out of memory with the heap limit', async () => {
      h = await Harness.create({ size: 1, maxOldSpaceMb: 40 });
      const outcome = await h.run(`() => { const keep = []; for (;;) keep.push(new Array(100000).fill(0.5)); }`);
      expect(outcome.error?.code).to.equal('WORKER_CRASHED');
      expect(outcome.error?.message).to.include('ran out of memory (heap limit 40 MB)');
      expect(outcome.error?.message).to.include('JavaScript heap out of memory'); // the stderr tail
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
    });

    it('reports a SIGKILL from outside, and leaves the other worker alone', async () => {
      h = await Harness.create();
      const other = h.submit(`() => new Promise((r) => setTimeout(() => r('other done'), 400))`, {
        client: 'b',
        options: { worker: 1 },
      });
      const victim = h.submit(`() => new Promise(() => {})`, { options: { worker: 0 } });
      await h.busy(0);
      process.kill(h.pid(0), 'SIGKILL');
      const outcome = await victim.done;
      expect(outcome.error?.code).to.equal('WORKER_CRASHED');
      expect(outcome.error?.message).to.include('killed by signal SIGKILL');
      expect((await other.done).value).to.equal('other done');
      expect(await h.value(`() => 'alive'`, { options: { worker: 0 } })).to.equal('alive');
    });

    it('restarts a worker that dies while idle and logs it', async () => {
      h = await Harness.create({ size: 1 });
      const before = h.pid(0);
      process.kill(before, 'SIGKILL');
      await h.until(() => h!.pool.status()[0]!.state === 'idle' && h!.pool.status()[0]!.pid !== before, 'a new worker');
      expect(h.logs.join('\n')).to.include('worker 0 was killed by signal SIGKILL while idle');
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
    });

    it('backs off when a worker keeps crashing', async () => {
      h = await Harness.create({ size: 1 });
      for (let i = 0; i < 3; i++) expect((await h.run(`() => process.exit(1)`)).error?.code).to.equal('WORKER_CRASHED');
      expect(h.logs.join('\n')).to.match(/crash-looping; restarting in \d+ ms/);
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
    });
  });

  describe('unreadable messages', () => {
    it('fails the job whose worker sends a message the pool cannot read, and restarts the worker', async () => {
      h = await Harness.create({ size: 1 });
      const pid = h.pid(0);
      // The job shares the worker's globals: it garbles the worker's own result header.
      const outcome = await h.run(`() => {
        const stringify = JSON.stringify;
        JSON.stringify = function (value, ...rest) {
          if (value && value.type === 'result') { JSON.stringify = stringify; return '{"type":"result","job":7}'; }
          return stringify.call(this, value, ...rest);
        };
        return 1;
      }`);
      expect(outcome.error?.code).to.equal('INTERNAL');
      expect(outcome.error?.message).to.include('cannot read (worker channel: result.job should be a string)');
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
      expect(h.pid(0)).not.to.equal(pid);
    });

    it('fails the job whose run message the worker cannot read, and the worker goes on', async () => {
      h = await Harness.create({ size: 1 });
      const pid = h.pid(0);
      // The pool runs in this process: garble its next run header as it is encoded.
      const stringify = JSON.stringify;
      JSON.stringify = function (this: unknown, value: unknown, ...rest: unknown[]): string {
        if ((value as { type?: unknown } | null)?.type === 'run') {
          JSON.stringify = stringify;
          return stringify({ ...(value as object), code: { kind: 'bogus' } });
        }
        return (stringify as (...args: unknown[]) => string).call(this, value, ...rest);
      } as typeof JSON.stringify;
      let outcome;
      try {
        outcome = await h.run(`() => 1`);
      } finally {
        JSON.stringify = stringify;
      }
      expect(outcome.error?.code).to.equal('BAD_MESSAGE');
      expect(outcome.error?.message).to.include("could not read the pool's message");
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
      expect(h.pid(0)).to.equal(pid);
    });
  });
});
