// The peer figure of issue 11: one map of 60 items of 200 ms over 3 nodes × 2 workers, through our pool (agents
// placed by the project's srun launcher) and through Debian's ipyparallel (engines placed by its own Slurm launcher,
// a load-balanced view), on the same real three-node Slurm cluster started here (test/support/slurm-cluster.ts).
// Baseline: the ideal, total work / slots = 2 s. Also the time from asking for the cluster to every worker being
// ready. Medians of BENCH_CLUSTER_RUNS maps each, after one warm-up map.
//
// Needs slurm-wlm and munge (run as root) and python3-ipyparallel; says what is missing and exits 0 otherwise.
// bench/cluster.ts runs `mapPeer` beside its own map over loopback agents: ipyparallel's figure on a Slurm cluster
// of as many nodes as it has agents.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { launchAgents } from '../kernel-ext/client/cluster/launch-agents';
import { SlurmCluster, slurmMissing, startSlurmCluster } from '../test/support/slurm-cluster';
import { median, table } from './stats';

const RUNS = Number(process.env.BENCH_CLUSTER_RUNS ?? 5);
const NODES = 3;
const WORKERS_PER_NODE = 2;
const ITEMS = 60;
const ITEM_MS = 200; // written as a literal in the mapped function below: shipped functions carry their source
const IDEAL_MS = (ITEMS * ITEM_MS) / (NODES * WORKERS_PER_NODE);
const PYTHON = '/usr/bin/python3';
const DRIVER = path.join(__dirname, '..', '..', 'bench', 'ipyparallel-map.py');

/** The shape bench/cluster.ts passes to its peers and expects back (declared here: importing it would run it). */
export interface MapSpec {
  items: number;
  itemMs: number;
  hosts: string[];
  workersPerHost: number;
}
export interface PeerFigure {
  name: string;
  ms?: number;
  skipped?: string;
}

interface Figures {
  startMs: number;
  runsMs: number[];
  nodes: string[];
}

async function ours(cluster: SlurmCluster, workdirBase: string): Promise<Figures> {
  const start = performance.now();
  const pool = await launchAgents({
    slurm: {
      nodes: NODES,
      env: cluster.env,
      workdirBase,
      // Every node of the test cluster is this host: agents listen on loopback, each on a port of its own.
      agentArgs: ['--bind', 'tcp://127.0.0.1:*', '--advertise', '127.0.0.1', '--workers', String(WORKERS_PER_NODE)],
      startTimeoutMs: 120_000,
    },
  });
  try {
    const startMs = performance.now() - start;
    const work = async (item: number): Promise<number> => {
      await new Promise((resolve) => setTimeout(resolve, 200));
      return item;
    };
    const items = Array.from({ length: ITEMS }, (_, i) => i);
    await pool.map(work, items.slice(0, NODES * WORKERS_PER_NODE)); // warm: every worker has run once
    const runsMs: number[] = [];
    const nodes = new Set<string>();
    for (let run = 0; run < RUNS; run++) {
      const begin = performance.now();
      const mapped = pool.map(work, items);
      for await (const result of mapped) nodes.add(result.agent);
      const results = await mapped;
      runsMs.push(performance.now() - begin);
      if (results.some((value, i) => value !== i)) throw new Error('the pool returned results out of order');
    }
    return { startMs, runsMs, nodes: [...nodes].sort() };
  } finally {
    await pool.close();
  }
}

async function ipyparallel(cluster: SlurmCluster, spec: MapSpec): Promise<Figures> {
  const engines = spec.hosts.length * spec.workersPerHost;
  const args = [DRIVER, String(engines), String(spec.items), String(spec.itemMs), String(RUNS)];
  const child = spawn(PYTHON, args, { env: cluster.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`${PYTHON} ${args.join(' ')} exited with ${code}:\n${stderr.slice(-3_000)}`);
  return JSON.parse(stdout.trim().split('\n').pop()!) as Figures;
}

/** The same map through ipyparallel, on a Slurm cluster of one node per host of `spec`, started and stopped here. */
export async function mapPeer(spec: MapSpec): Promise<PeerFigure> {
  const name = `ipyparallel 7 on a local ${spec.hosts.length}-node Slurm (load-balanced view)`;
  const missing = slurmMissing() ?? ipyparallelMissing();
  if (missing) return { name, skipped: missing };
  const cluster = await startSlurmCluster(spec.hosts.length);
  try {
    return { name, ms: median((await ipyparallel(cluster, spec)).runsMs) };
  } finally {
    await cluster.stop();
  }
}

function ipyparallelMissing(): string | null {
  const probe = spawnSync(PYTHON, ['-c', 'import ipyparallel'], { encoding: 'utf8' });
  return probe.status === 0 ? null : `ipyparallel is not importable by ${PYTHON} (Debian package python3-ipyparallel)`;
}

async function main(): Promise<void> {
  const missing = slurmMissing() ?? ipyparallelMissing();
  if (missing) {
    console.log(`cluster-ipyparallel bench skipped: ${missing}`);
    return;
  }
  const cluster = await startSlurmCluster(NODES);
  const workdirBase = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cluster-agents-'));
  try {
    const pool = await ours(cluster, workdirBase);
    await untilQueueEmpty(cluster);
    const peer = await ipyparallel(cluster, {
      items: ITEMS,
      itemMs: ITEM_MS,
      hosts: cluster.nodes,
      workersPerHost: WORKERS_PER_NODE,
    });
    const row = (what: string, f: Figures): (string | number)[] => [
      what,
      median(f.runsMs),
      `${(median(f.runsMs) / IDEAL_MS).toFixed(3)}×`,
      f.startMs,
      f.nodes.join(','),
    ];
    console.log(
      `map of ${ITEMS} items × ${ITEM_MS} ms over ${NODES} Slurm nodes × ${WORKERS_PER_NODE} workers, medians of ${RUNS} (ideal ${IDEAL_MS} ms)`,
    );
    console.log(
      table([
        ['', 'map', 'vs ideal', 'start', 'nodes used'],
        ['ideal (work / slots)', IDEAL_MS, '1.000×', '', ''],
        row('tslab-remote pool (srun launcher)', pool),
        row('ipyparallel 7 (Slurm launcher, load-balanced view)', peer),
      ]),
    );
    console.log(
      `pool / ipyparallel map: ${(median(pool.runsMs) / median(peer.runsMs)).toFixed(3)}×; all runs ms: pool ${pool.runsMs.map(Math.round).join(' ')}, ipyparallel ${peer.runsMs.map(Math.round).join(' ')}`,
    );
  } finally {
    await cluster.stop();
    fs.rmSync(workdirBase, { recursive: true, force: true });
  }
}

/** The pool's allocation is freed when srun ends; wait for Slurm to show it gone so the peer gets every node. */
async function untilQueueEmpty(cluster: SlurmCluster): Promise<void> {
  for (let i = 0; i < 100 && cluster.run('squeue', ['-h']).trim() !== ''; i++) await sleep(100);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
