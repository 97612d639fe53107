// The agent pool on real agents on loopback hosts (127.0.0.2, .3, .4), each figure beside its baseline from the same
// run:
//   - map of 60 items × 200 ms over 3 agents × 2 workers, against the ideal (total work / slots);
//   - trivial items per second over 3 agents against 1 agent;
//   - a snapshot of the quickstart tree plus 20 MB to 3 agents against 1 agent (parallel uploads: near 1×);
//   - from SIGKILLing an agent mid-map to its items queued for the others, and the same for a silent partition.
// Medians of BENCH_CLUSTER_RUNS runs. A peer (ipyparallel on the same agents' hosts) plugs in through PEERS below.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { launchAgents } from '../kernel-ext/client/cluster/launch-agents';
import type { AgentPool } from '../kernel-ext/client/cluster/pool';
import type { AgentEndpoint } from '../kernel-ext/client/cluster/types';
import { LocalAgent, startLocalAgent } from '../kernel-ext/client/local-agent';
import { snapshotDirectory } from '../kernel-ext/client/snapshot';
import { TcpProxy } from '../test/support/tcp-proxy';
import { median, table } from './stats';
// Its temp directories are removed when the process exits, through process.exit() and after a failure too.
import '../test/support/temp-cleanup';

const RUNS = Number(process.env.BENCH_CLUSTER_RUNS ?? 3);
const QUICKSTART = path.join(__dirname, '..', '..', 'notebooks', 'quickstart');

/** What a peer (another system running the same map) reports: its median, or why it was skipped. */
export interface PeerFigure {
  name: string;
  ms?: number;
  skipped?: string;
}
export interface MapSpec {
  items: number;
  itemMs: number;
  hosts: string[];
  workersPerHost: number;
}
/** Modules in bench/ exporting `mapPeer(spec)`, run beside our map when they exist (e.g. ipyparallel). */
const PEERS = ['./cluster-ipyparallel'];

async function agentsOn(hosts: string[], workers: number): Promise<LocalAgent[]> {
  return Promise.all(
    hosts.map((host) => startLocalAgent({ args: ['--bind', `tcp://${host}:*`, '--workers', String(workers)] })),
  );
}

function endpoints(agents: LocalAgent[]): AgentEndpoint[] {
  return agents.map((agent, i) => ({ name: `agent${i + 1}`, endpoint: agent.endpoint }));
}

async function withPool<T>(
  hosts: string[],
  workers: number,
  use: (pool: AgentPool, agents: LocalAgent[]) => Promise<T>,
): Promise<T> {
  const agents = await agentsOn(hosts, workers);
  const pool = await launchAgents({ endpoints: endpoints(agents) });
  try {
    return await use(pool, agents);
  } finally {
    await pool.close();
    await Promise.all(agents.map((agent) => agent.stop()));
  }
}

async function timed(once: () => PromiseLike<unknown>): Promise<number> {
  const start = performance.now();
  await once();
  return performance.now() - start;
}

async function mapAgainstIdeal(spec: MapSpec): Promise<(string | number)[][]> {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const itemMs = spec.itemMs;
  const samples = await withPool(spec.hosts, spec.workersPerHost, async (pool) => {
    await pool.map(() => 0, [1, 2, 3, 4, 5, 6]); // warm: each worker has rebuilt a call once
    const out: number[] = [];
    for (let run = 0; run < RUNS; run++)
      out.push(
        await timed(() =>
          pool.map(
            () => sleep(itemMs),
            Array.from({ length: spec.items }, (_, i) => i),
          ),
        ),
      );
    return out;
  });
  const ideal = (spec.items * spec.itemMs) / (spec.hosts.length * spec.workersPerHost);
  const rows: (string | number)[][] = [
    [
      `map ${spec.items} × ${spec.itemMs} ms, ${spec.hosts.length} agents × ${spec.workersPerHost} workers`,
      median(samples),
      `${(median(samples) / ideal).toFixed(3)}× ideal`,
    ],
    ['  ideal (total work / slots)', ideal, '1.000×'],
  ];
  for (const peer of await peers(spec)) {
    rows.push([
      `  ${peer.name}`,
      peer.ms ?? '-',
      peer.ms ? `${(peer.ms / ideal).toFixed(3)}× ideal` : `skipped: ${peer.skipped}`,
    ]);
  }
  return rows;
}

async function peers(spec: MapSpec): Promise<PeerFigure[]> {
  const figures: PeerFigure[] = [];
  for (const name of PEERS) {
    let peer: { mapPeer(spec: MapSpec): Promise<PeerFigure> };
    try {
      peer = require(name) as typeof peer;
    } catch {
      continue; // not written yet
    }
    figures.push(await peer.mapPeer(spec).catch((error: Error) => ({ name, skipped: error.message })));
  }
  return figures;
}

async function trivialRate(hosts: string[]): Promise<number> {
  const items = Array.from({ length: 600 }, (_, i) => i);
  const samples = await withPool(hosts, 2, async (pool) => {
    await pool.map((x: number) => x, items.slice(0, 12));
    const out: number[] = [];
    for (let run = 0; run < RUNS; run++) out.push(await timed(() => pool.map((x: number) => x + 1, items)));
    return out;
  });
  return (items.length / median(samples)) * 1000;
}

async function snapshotTo(hosts: string[], tree: string): Promise<number> {
  const samples: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    await fs.writeFile(path.join(tree, 'weights.bin'), randomBytes(20 * 1024 * 1024)); // new bytes: every agent lacks them
    const snapshot = await snapshotDirectory(tree);
    samples.push(
      await withPool(hosts, 1, async (pool) => {
        const ms = await timed(async () => {
          const rows = await pool.all(() => 1, { snapshot });
          const failed = rows.find((row) => row.error);
          if (failed) throw failed.error instanceof Error ? failed.error : new Error(String(failed.error));
        });
        return ms;
      }),
    );
  }
  return median(samples);
}

/** From a fault on agent3 (while it runs items) to the first of its items queued again for the others. */
async function failover(fault: 'SIGKILL' | 'partition'): Promise<number> {
  const agents = await agentsOn(['127.0.0.2', '127.0.0.3', '127.0.0.4'], 2);
  const { proxy, endpoint } = await TcpProxy.start(agents[2]!.endpoint);
  const pool = await launchAgents({ endpoints: [...endpoints(agents.slice(0, 2)), { name: 'agent3', endpoint }] });
  try {
    let faultAt = 0;
    let movedAt = 0;
    await pool.map(
      () => new Promise((resolve) => setTimeout(resolve, 500)),
      Array.from({ length: 40 }, (_, i) => i),
      {
        onProgress: (progress) => {
          if (!faultAt && (progress.perAgent.agent3?.done ?? 0) >= 2 && (progress.perAgent.agent3?.running ?? 0) > 0) {
            faultAt = performance.now();
            if (fault === 'SIGKILL') agents[2]!.process.kill('SIGKILL');
            else proxy.partition();
          }
          if (faultAt && !movedAt && progress.retried > 0) movedAt = performance.now();
        },
      },
    );
    if (!movedAt) throw new Error(`no item of agent3 was moved after the ${fault}`);
    return movedAt - faultAt;
  } finally {
    await pool.close();
    await proxy.close();
    await Promise.all(agents.map((agent) => agent.stop()));
  }
}

async function main(): Promise<void> {
  const three = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
  const rows: (string | number)[][] = [['cluster (medians of ' + RUNS + ' runs)', 'time', 'against baseline']];
  rows.push(...(await mapAgainstIdeal({ items: 60, itemMs: 200, hosts: three, workersPerHost: 2 })));

  const rate3 = await trivialRate(three);
  const rate1 = await trivialRate(['127.0.0.2']);
  rows.push([
    `trivial items/s, 3 agents × 2 workers`,
    `${rate3.toFixed(0)}/s`,
    `${(rate3 / rate1).toFixed(2)}× one agent`,
  ]);
  rows.push([`  baseline: 1 agent × 2 workers`, `${rate1.toFixed(0)}/s`, '1.00×']);

  const tree = (await tmp.dir({ unsafeCleanup: true, prefix: 'bench-cluster-' })).path;
  await fs.cp(QUICKSTART, tree, { recursive: true });
  const to3 = await snapshotTo(three, tree);
  const to1 = await snapshotTo(['127.0.0.2'], tree);
  rows.push(['snapshot quickstart + 20 MB to 3 agents', to3, `${(to3 / to1).toFixed(2)}× one agent`]);
  rows.push(['  baseline: to 1 agent', to1, '1.00×']);

  rows.push([
    'SIGKILLed agent: its items queued elsewhere after',
    await failover('SIGKILL'),
    'pool heartbeatTimeoutMs 3 s',
  ]);
  rows.push([
    'partitioned agent: its items queued elsewhere after',
    await failover('partition'),
    'pool silenceTimeoutMs 15 s',
  ]);
  console.log(table(rows));
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
