// The worker pool stopping jobs (cancel, timeout, the kill after the grace), placing them (sticky clients, least loaded), and stopping.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { isAlive } from '../../support/agent-process';
import { Harness } from './pool-harness';

describe('remote-agent/worker-pool: cancel, scheduling, stop', function () {
  this.timeout(20_000);
  let h: Harness | undefined;

  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  describe('cancel and timeout', () => {
    it('interrupts an endless synchronous loop: CANCELLED, and the worker keeps its state', async () => {
      h = await Harness.create({ size: 1 });
      const v1 = h.snapshot('v1');
      expect(await h.value(`() => require('./src/counter').next()`, { snapshot: v1 })).to.equal(1);
      const pid = h.pid(0);
      const spin = h.submit(`() => { while (true) {} }`, { snapshot: v1 });
      await h.busy();
      expect(h.pool.cancel(spin.id)).to.equal(true);
      const outcome = await spin.done;
      expect(outcome.error?.code).to.equal('CANCELLED');
      expect(outcome.error?.message).to.include('kept its state');
      expect(await h.value(`() => require('./src/counter').next()`, { snapshot: v1 })).to.equal(2);
      expect(h.pid(0)).to.equal(pid);
      expect(h.pool.cancel(spin.id)).to.equal(false);
    });

    it('interrupts a loop cancelled right after it was submitted', async () => {
      h = await Harness.create({ size: 1 });
      const pid = h.pid(0);
      const spin = h.submit(`() => { while (true) {} }`);
      expect(h.pool.cancel(spin.id)).to.equal(true);
      expect((await spin.done).error?.code).to.equal('CANCELLED');
      expect(h.pid(0)).to.equal(pid);
    });

    it('cancels an awaiting job that honours the abort signal without killing the worker', async () => {
      h = await Harness.create({ size: 1 });
      const pid = h.pid(0);
      const wait = h.submit(`() => new Promise((resolve, reject) => {
        const { signal } = globalThis[Symbol.for('tslab-remote.job')];
        const timer = setTimeout(resolve, 10000);
        signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); });
      })`);
      await h.busy();
      h.pool.cancel(wait.id);
      const outcome = await wait.done;
      expect(outcome.error?.code).to.equal('CANCELLED');
      expect(outcome.error?.message).to.include('kept its state');
      expect(h.pid(0)).to.equal(pid);
    });

    for (const [what, source] of [
      [
        'an async loop',
        `async () => { require('fs').writeSync(1, 'looping\\n'); for (;;) await new Promise((r) => setImmediate(r)); }`,
      ],
      [
        'an endless loop started after an await',
        `async () => { await null; require('fs').writeSync(1, 'looping\\n'); while (true) {} }`,
      ],
    ] as const) {
      // A loop that leaves the event loop free acknowledges the cancel, one that blocks it outside the interruptible
      // part shrugs off the SIGINT (the worker's listener): both are killed after graceMs.
      const expected = /killed and restarted/;
      it(`ends the worker of a job that ignores the interrupt (${what}), restarts it, runs the next job`, async () => {
        h = await Harness.create({ size: 1 });
        const pid = h.pid(0);
        const stuck = h.submit(source);
        const next = h.submit(`() => 'next ran'`);
        await h.until(() => stuck.events.length > 0, 'the job in its loop');
        h.pool.cancel(stuck.id);
        const outcome = await stuck.done;
        expect(outcome.error?.code).to.equal('CANCELLED');
        expect(outcome.error?.message).to.match(expected);
        expect(outcome.error?.message).to.include('module state');
        expect((await next.done).value).to.equal('next ran');
        expect(h.pid(0)).not.to.equal(pid);
      });
    }

    it('stops a job that runs past options.timeoutMs with TIMEOUT', async () => {
      h = await Harness.create({ size: 1 });
      const outcome = await h.run(`() => { while (true) {} }`, { options: { timeoutMs: 200 } });
      expect(outcome.error?.code).to.equal('TIMEOUT');
      expect(outcome.error?.message).to.include('200 ms');
      expect(await h.value(`() => 'alive'`)).to.equal('alive');
    });

    it('removes a cancelled queued job at once; it never runs', async () => {
      h = await Harness.create({ size: 1 });
      const first = h.submit(`() => new Promise((r) => setTimeout(() => r(globalThis.ranQueued === true), 300))`);
      const queued = h.submit(`() => { globalThis.ranQueued = true; }`);
      expect(h.pool.status()[0]!.queued).to.equal(1);
      expect(h.pool.cancel(queued.id)).to.equal(true);
      const outcome = await queued.done;
      expect(outcome.error?.code).to.equal('CANCELLED');
      expect(first.events).to.deep.equal([]); // the queued job's error came before the running one finished
      expect((await first.done).value).to.equal(false);
      expect(await h.value(`() => globalThis.ranQueued === true`)).to.equal(false);
    });

    it("cancels all of a client's jobs, queued and running", async () => {
      h = await Harness.create();
      const running = h.submit(`() => { while (true) {} }`, { client: 'x' });
      const queued = h.submit(`() => 1`, { client: 'x' });
      const bystander = h.submit(`() => new Promise((r) => setTimeout(() => r('fine'), 200))`, { client: 'y' });
      await h.busy(0);
      expect(h.pool.cancelClient('x')).to.equal(2);
      expect((await running.done).error?.code).to.equal('CANCELLED');
      expect((await queued.done).error?.code).to.equal('CANCELLED');
      expect((await bystander.done).value).to.equal('fine');
    });
  });

  describe('scheduling', () => {
    it("runs a second client's job on the other worker while the first is busy", async () => {
      h = await Harness.create();
      const slow = h.submit(`() => new Promise((r) => setTimeout(() => r('slow'), 500))`, { client: 'a' });
      await h.busy(0);
      const quick = await h.run(`() => 'quick'`, { client: 'b' });
      expect(quick.value).to.equal('quick');
      expect(slow.events).to.deep.equal([]); // still running
      const slowDone = await slow.done;
      expect(quick.worker).not.to.equal(slowDone.worker);
    });

    it('pins a job with options.worker and rejects an index out of range with BAD_MESSAGE', async () => {
      h = await Harness.create();
      expect((await h.run(`() => 1`, { options: { worker: 1 } })).worker).to.equal(1);
      const outcome = await h.run(`() => 1`, { options: { worker: 2 } });
      expect(outcome.error?.code).to.equal('BAD_MESSAGE');
      expect(outcome.error?.message).to.include('0..1');
      expect(outcome.worker).to.equal(null);
    });

    it('forgets the worker of a client without jobs, so it is assigned afresh; a client with a job keeps it', async () => {
      h = await Harness.create();
      expect((await h.run(`() => 1`, { client: 'x' })).worker).to.equal(0);
      expect((await h.run(`() => 1`, { client: 'a' })).worker).to.equal(1); // x holds worker 0
      const busy = h.submit(`() => new Promise((r) => setTimeout(r, 300))`, { client: 'a' });
      h.pool.forgetClient('a'); // a job of a's runs: a keeps worker 1
      h.pool.forgetClient('x');
      expect((await h.run(`() => 1`, { client: 'a' })).worker).to.equal(1);
      await busy.done;
      h.pool.forgetClient('a');
      expect((await h.run(`() => 1`, { client: 'a' })).worker).to.equal(0); // no client left anywhere: the lowest index
    });

    it('rejects a job id that is already in use', async () => {
      h = await Harness.create();
      const first = h.submit(`() => new Promise((r) => setTimeout(() => r(1), 100))`, { id: 'same' });
      const second = await h.run(`() => 2`, { id: 'same' });
      expect(second.error?.code).to.equal('BAD_MESSAGE');
      expect((await first.done).value).to.equal(1);
    });

    it('works over tcp when the ipc socket path would be too long', async () => {
      const long = path.join(fs.realpathSync(os.tmpdir()), `pool-${'x'.repeat(100)}-${randomBytes(4).toString('hex')}`);
      h = await Harness.create({ runDir: long });
      expect(await h.value(`() => 'over tcp'`)).to.equal('over tcp');
      expect(fs.existsSync(path.join(long, 'workers.sock'))).to.equal(false);
      fs.rmSync(long, { recursive: true, force: true });
    });
  });

  describe('stop', () => {
    it('fails queued jobs with SHUTTING_DOWN, ends running ones and leaves no process', async () => {
      h = await Harness.create();
      const pids = [h.pid(0), h.pid(1)];
      const spinning = h.submit(`() => { while (true) {} }`, { client: 'a', options: { worker: 0 } });
      const queued = h.submit(`() => 1`, { client: 'a', options: { worker: 0 } });
      const stubborn = h.submit(`async () => { for (;;) await new Promise((r) => setImmediate(r)); }`, {
        client: 'b',
        options: { worker: 1 },
      });
      await h.busy(0);
      await h.busy(1);
      await h.pool.stop();
      expect((await queued.done).error?.code).to.equal('SHUTTING_DOWN');
      expect((await spinning.done).error?.code).to.equal('SHUTTING_DOWN');
      expect((await stubborn.done).error?.code).to.equal('SHUTTING_DOWN');
      for (const pid of pids) expect(isAlive(pid)).to.equal(false);
      expect(h.pool.status().map((s) => s.state)).to.deep.equal(['stopped', 'stopped']);
      const late = await h.run(`() => 1`);
      expect(late.error?.code).to.equal('SHUTTING_DOWN');
    });

    it('kills a worker whose job traps SIGTERM', async () => {
      h = await Harness.create({ size: 1 });
      const pid = h.pid(0);
      const trapping = h.submit(
        `() => { process.on('SIGTERM', () => {}); console.log('trapped'); return new Promise(() => {}); }`,
      );
      await h.until(() => trapping.events.length > 0, 'the trap installed');
      await h.pool.stop();
      expect((await trapping.done).error?.code).to.equal('SHUTTING_DOWN');
      expect(isAlive(pid)).to.equal(false);
    });
  });
});
