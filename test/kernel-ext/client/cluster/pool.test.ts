// AgentPool against real agents on three loopback hosts (127.0.0.1-3), two workers each: map spreads items over
// every worker and keeps each worker's state, returns results in order and as they finish; a killed or partitioned
// agent's items run elsewhere, each result once; the user's error is never retried.

import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { AgentPool } from '../../../../kernel-ext/client/cluster/pool';
import { MapItemError } from '../../../../kernel-ext/client/cluster/map-run';
import { snapshotDirectory } from '../../../../kernel-ext/client/snapshot';
import { RemoteError } from '../../../../protocol/errors';
import { AgentProcess, makeTree, startAgent, waitFor } from '../../../support/agent-process';
import { rejectionOf } from '../../../support/rejection';
import { TcpProxy } from '../../../support/tcp-proxy';

const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

describe('kernel-ext cluster: AgentPool on three loopback agents', function () {
  this.timeout(60_000);
  let agents: AgentProcess[] = [];
  let pools: AgentPool[] = [];
  let proxies: TcpProxy[] = [];
  let marks: string;

  async function pool(options: { proxyLast?: boolean } = {}): Promise<{ pool: AgentPool; proxy?: TcpProxy }> {
    let proxy: TcpProxy | undefined;
    const endpoints = await Promise.all(
      agents.map(async (agent, i) => {
        if (!(options.proxyLast && i === agents.length - 1))
          return { name: `agent${i + 1}`, endpoint: agent.endpoint, host: HOSTS[i] };
        const started = await TcpProxy.start(agent.endpoint);
        proxy = started.proxy;
        proxies.push(proxy);
        return { name: `agent${i + 1}`, endpoint: started.endpoint, host: HOSTS[i] };
      }),
    );
    const made = await AgentPool.connect(endpoints);
    pools.push(made);
    return { pool: made, proxy };
  }

  beforeEach(async () => {
    marks = (await tmp.dir({ unsafeCleanup: true, prefix: 'pool-marks-' })).path;
    agents = await Promise.all(
      HOSTS.map((host) => startAgent({ args: ['--bind', `tcp://${host}:*`, '--workers', '2'] })),
    );
  });

  afterEach(async () => {
    await Promise.all(pools.map((p) => p.close()));
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(agents.map((agent) => agent.stop().catch(() => undefined)));
    pools = [];
    proxies = [];
  });

  it('spreads items over every worker of every agent, keeps each worker state, and returns results in order', async () => {
    const { pool: p } = await pool();
    expect(p.agents().map((a) => [a.name, a.workers, a.state])).to.deep.equal([
      ['agent1', 2, 'up'],
      ['agent2', 2, 'up'],
      ['agent3', 2, 'up'],
    ]);
    const items = Array.from({ length: 12 }, (_, i) => i * 10);
    const results = await p.map(async (item: number) => {
      const state = globalThis as { calls?: number };
      state.calls = (state.calls ?? 0) + 1;
      await new Promise((resolve) => setTimeout(resolve, 100));
      return { doubled: item * 2, pid: process.pid, calls: state.calls };
    }, items);
    expect(results.map((r) => r.doubled)).to.deep.equal(items.map((item) => item * 2));
    const byWorker = new Map<number, number[]>();
    for (const r of results) byWorker.set(r.pid, [...(byWorker.get(r.pid) ?? []), r.calls]);
    expect(byWorker.size, 'distinct worker processes').to.equal(6);
    for (const calls of byWorker.values())
      expect([...calls].sort((a, b) => a - b)).to.deep.equal(calls.map((_, i) => i + 1));
  });

  it('yields each result once as it finishes, and reports progress per agent', async () => {
    const { pool: p } = await pool();
    const progress: number[] = [];
    let last: { done: number; total: number; perAgent: Record<string, { done: number }> } | undefined;
    const run = p.map((n: number) => n + 1, [1, 2, 3, 4, 5, 6, 7, 8], {
      onProgress: (report) => {
        progress.push(report.done);
        last = report;
      },
    });
    const seen: number[] = [];
    for await (const result of run) {
      expect(result.value).to.equal(result.index + 2);
      seen.push(result.index);
    }
    expect([...seen].sort()).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(last!.done).to.equal(8);
    expect(Object.values(last!.perAgent).reduce((sum, agent) => sum + agent.done, 0)).to.equal(8);
    expect(await run).to.deep.equal([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('fails with the user error, naming item, agent and worker, without retrying it; returnErrors keeps it in place', async () => {
    const { pool: p } = await pool();
    const fn = (item: number): number => {
      require('node:fs').appendFileSync(require('node:path').join(marksDir, `item-${item}`), 'ran\n');
      if (item === 3) throw new TypeError(`bad item ${item}`);
      return item;
    };
    const marksDir = marks;
    const error = await rejectionOf(Promise.resolve(p.map(fn, [0, 1, 2, 3, 4, 5])), MapItemError);
    expect(error.index).to.equal(3);
    expect(error.agent).to.match(/^agent[123]$/);
    expect(error.message).to.contain('bad item 3');
    expect((error.cause as RemoteError).code).to.equal('REMOTE_EXCEPTION');
    expect(fs.readFileSync(path.join(marks, 'item-3'), 'utf8')).to.equal('ran\n');

    const results = await p.map(fn, [0, 3, 6], { returnErrors: true });
    expect(results[0]).to.equal(0);
    expect(results[1]).to.be.instanceOf(MapItemError);
    expect(results[2]).to.equal(6);
  });

  it('runs the items of a SIGKILLed agent elsewhere: every result once, in order', async () => {
    const { pool: p } = await pool();
    const victim = agents[1]!;
    const items = Array.from({ length: 18 }, (_, i) => i);
    const run = p.map(async (item: number) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return { item, host: process.env.NODE_UNIQUE_ID ?? '', pid: process.pid };
    }, items);
    const indexes: number[] = [];
    let killed = false;
    for await (const result of run) {
      indexes.push(result.index);
      if (!killed && result.agent === 'agent2') {
        killed = true;
        victim.process.kill('SIGKILL');
      }
    }
    expect(killed, 'agent2 ran an item before it was killed').to.equal(true);
    expect([...indexes].sort((a, b) => a - b)).to.deep.equal(items);
    expect((await run).map((r) => r.item)).to.deep.equal(items);
    const listing = p.agents().find((a) => a.name === 'agent2')!;
    expect(listing.state).to.equal('lost');
  });

  it('notices a partitioned agent (no FIN, no RST) and runs its items elsewhere', async () => {
    const { pool: p, proxy } = await pool({ proxyLast: true });
    const items = Array.from({ length: 12 }, (_, i) => i);
    let partitioned = false;
    const run = p.map(
      async (item: number) => {
        await new Promise((resolve) => setTimeout(resolve, 400));
        return item * 3;
      },
      items,
      {
        onProgress: (report) => {
          // Cut agent3 off while it runs items: they must be noticed lost and done elsewhere.
          if (!partitioned && report.perAgent.agent3!.running === 2) {
            partitioned = true;
            proxy!.partition();
          }
        },
      },
    );
    expect(await run).to.deep.equal(items.map((i) => i * 3));
    expect(partitioned).to.equal(true);
    const agent3 = p.agents().find((a) => a.name === 'agent3')!;
    expect(agent3.state).to.equal('lost');
    expect(agent3.error).to.match(/no word from the agent|lost the connection/);
  });

  it('runs all(fn) on every agent, one row each, and uploads a snapshot each agent runs in', async () => {
    const { pool: p } = await pool();
    const root = await makeTree({ 'package.json': '{}', 'data.txt': 'shipped' });
    const snapshot = await snapshotDirectory(root);
    const rows = await p.all(() => require('node:fs').readFileSync('data.txt', 'utf8') as string, {
      snapshot,
      codeRoot: root,
    });
    expect(rows.map((row) => [row.agent, row.host, row.value])).to.deep.equal([
      ['agent1', '127.0.0.1', 'shipped'],
      ['agent2', '127.0.0.2', 'shipped'],
      ['agent3', '127.0.0.3', 'shipped'],
    ]);
    for (const name of ['agent1', 'agent2', 'agent3']) {
      expect((await p.on(name).upload(snapshot)).filesSent, `${name} already holds the snapshot`).to.equal(0);
    }
    expect(() => p.on('agent9')).to.throw(/no agent named agent9 in the pool; it has agent1, agent2, agent3/);
  });

  it('does not take a stall of this process for a silent agent', async () => {
    const p = await AgentPool.connect([{ name: 'one', endpoint: agents[0]!.endpoint }], {
      connect: { silenceTimeoutMs: 2_000 },
    });
    pools.push(p);
    const run = p.map(
      async (item: number) => {
        await new Promise((resolve) => setTimeout(resolve, 3_000));
        return item;
      },
      [1, 2],
    );
    await waitFor(() => p.agents()[0]!.running === 2, 10_000, 'both items running');
    // Busy past the silence deadline, in a timer, so the heartbeat's timer runs next, before the pongs that waited
    // unread meanwhile are read.
    await new Promise<void>((resolve) =>
      setTimeout(() => {
        for (const end = Date.now() + 3_000; Date.now() < end;);
        resolve();
      }, 0),
    );
    expect(await run).to.deep.equal([1, 2]);
    expect(p.agents()[0]!.state).to.equal('up');
  });

  it('runs nothing for an already aborted signal, and one cancelled map does not fail another sharing its upload', async () => {
    const { pool: p } = await pool();
    const marksDir = marks;
    const mark = (item: number): number => {
      require('node:fs').writeFileSync(require('node:path').join(marksDir, `ran-${item}`), '');
      return item;
    };
    const error = await rejectionOf(
      Promise.resolve(p.map(mark, [1, 2, 3], { signal: AbortSignal.abort(new Error('aborted before')) })),
      Error,
    );
    expect(error.message).to.equal('aborted before');
    expect(fs.readdirSync(marks)).to.deep.equal([]);

    const root = await makeTree({ 'package.json': '{}', 'data.bin': 'x'.repeat(8 * 1024 * 1024) });
    const snapshot = await snapshotDirectory(root);
    const first = p.map(mark, [10], { snapshot, codeRoot: root });
    const second = p.map(mark, [20], { snapshot, codeRoot: root });
    first.cancel(new Error('first cancelled')); // while the shared upload is under way
    expect((await rejectionOf(Promise.resolve(first), Error)).message).to.equal('first cancelled');
    expect(await second).to.deep.equal([20]);
  });

  it('cancels every running item on every agent when aborted', async () => {
    const { pool: p } = await pool();
    const controller = new AbortController();
    const run = p.map(
      () => {
        for (;;) {
          // an endless synchronous loop: only the agent's cancel (SIGINT to the worker) ends it
        }
      },
      [1, 2, 3, 4, 5, 6, 7, 8],
      { signal: controller.signal },
    );
    await waitFor(() => p.agents().every((a) => a.running === 2), 10_000, 'every worker busy');
    controller.abort(new Error('stop the sweep'));
    const error = await rejectionOf(Promise.resolve(run), Error);
    expect(error.message).to.equal('stop the sweep');
    for (const name of ['agent1', 'agent2', 'agent3']) {
      await waitFor(
        async () => (await p.on(name).status()).workers.every((w) => w.state === 'idle'),
        10_000,
        `${name} idle`,
      );
    }
  });
});
