// The pool's magics in the kernel: `%remote_agent add`, the pool listing (`%remote_agent` once the pool has agents,
// and `%remote_cluster` alone), `%remote --all` (the call on every agent, one row each), and `%remote_cluster`.

import { readKeyPair } from '../../common/key-files';
import { BIN } from '../../common/package-info';
import { readEndpointDir } from '../client/cluster/launchers/endpoint-dir';
import { launchSlurm } from '../client/cluster/launchers/slurm';
import { launchSsh } from '../client/cluster/launchers/ssh';
import type { SessionCurve } from '../client/cluster/types';
import type { AgentAddMagic, ClusterMagic } from './cluster-magic';
import { plainText } from './display';
import { CellFailure, CellIO } from './io';
import type { CellInterrupt } from './interrupt';
import type { PoolMember } from './kernel-pool';
import { prefixedIO, seconds, tableBundle } from './pool-display';
import { readCurve } from './agents';
import type { Prepared } from './code-root';
import { CallContext, RemoteRunner } from './remote';

/** `%remote_agent add NAME ENDPOINT [--key DIR]`. */
export async function addAgent(
  runner: RemoteRunner,
  magic: AgentAddMagic,
  io: CellIO,
  cell: CellInterrupt,
): Promise<void> {
  cell.consequence = `${magic.name} was not added`;
  const curve = magic.key !== undefined ? readCurve(runner.userPath(magic.key)) : undefined;
  await runner.pool.add([{ name: magic.name, endpoint: magic.endpoint }], curve, cell);
  const member = runner.pool.member(magic.name);
  const info = member.client.agent;
  io.stream(
    'stdout',
    `added ${member.name} (${member.endpoint}): ${info.name} ${info.version} on ${info.hostname}, ${info.workers} workers; ` +
      `the pool has ${runner.pool.size} agent(s): ${runner.pool
        .list()
        .map((m) => m.name)
        .join(', ')}\n`,
  );
}

/**
 * The pool as a table: agent, host, endpoint, workers, GPUs, the kernel's items running there, the agent's queue
 * (jobs waiting, from every client, asked of each usable agent now) and the state (lost agents say why).
 */
export async function listPool(runner: RemoteRunner, io: CellIO, cell: CellInterrupt): Promise<void> {
  cell.consequence = 'the listing was not finished';
  const listing = runner.pool.listing();
  if (listing.length === 0) {
    io.stream(
      'stdout',
      'the pool is empty: add agents with %remote_agent add NAME ENDPOINT, or place them with %remote_cluster slurm|ssh|attach\n',
    );
    return;
  }
  const queued = await cell.during(
    'asking the pool for its queues',
    Promise.all(listing.map((a) => (a.state === 'up' ? queueDepth(runner.pool.member(a.name)) : Promise.resolve('-')))),
  );
  const rows = listing.map((a, i) => [
    a.name,
    a.host,
    a.endpoint,
    String(a.workers),
    String(a.gpus),
    String(a.running),
    queued[i]!,
    a.error ? `${a.state}: ${a.error}` : a.state,
  ]);
  io.result(tableBundle(['agent', 'host', 'endpoint', 'workers', 'gpus', 'running', 'queued', 'state'], rows));
}

async function queueDepth(member: PoolMember): Promise<string> {
  try {
    const status = await member.client.status();
    return String(status.workers.reduce((sum, w) => sum + w.queued, 0));
  } catch {
    return '?';
  }
}

interface AllRow {
  member: PoolMember;
  value?: unknown;
  error?: CellFailure;
  elapsedMs: number;
}

/**
 * `%remote --all`: the cell's function on every agent of the pool at once, each through the ordinary call path
 * (its snapshot upload, its output prefixed with `[agent]`). One row per agent: agent, host, value or error, elapsed.
 * The cell fails when any agent failed (after the table), so that a notebook run stops there.
 */
export async function runOnAll(
  runner: RemoteRunner,
  fn: () => unknown,
  options: { timeoutMs?: number },
  context: CallContext,
  cell: CellInterrupt,
  prepared: Prepared,
): Promise<void> {
  const members = runner.pool.all();
  const rows = await Promise.all(
    members.map(async (member): Promise<AllRow> => {
      const io = prefixedIO(context.io, member.name);
      const started = Date.now();
      try {
        const value = await runner.call(
          fn,
          { ...options, on: member.name, quiet: true },
          { ...context, io },
          cell,
          prepared,
        );
        return { member, value, elapsedMs: Date.now() - started };
      } catch (error) {
        const failure =
          error instanceof CellFailure
            ? error
            : new CellFailure({ ename: 'Error', evalue: String(error), traceback: [] });
        return { member, error: failure, elapsedMs: Date.now() - started };
      } finally {
        io.flush();
      }
    }),
  );
  const table = rows.map((r) => [
    r.member.name,
    r.member.host,
    r.error ? `${r.error.error.ename}: ${r.error.error.evalue}` : plainText(r.value),
    seconds(r.elapsedMs),
  ]);
  context.io.result(tableBundle(['agent', 'host', 'value or error', 'elapsed'], table));
  const failed = rows.filter((r) => r.error);
  if (failed.length === 0) return;
  const first = failed[0]!;
  const { ename, evalue, traceback } = first.error!.error;
  const where = `on ${first.member.name}${
    failed.length > 1
      ? ` (and ${failed.length - 1} more agent(s): ${failed
          .slice(1)
          .map((r) => r.member.name)
          .join(', ')})`
      : ''
  }`;
  throw new CellFailure({
    ename,
    evalue: `${evalue} (${where})`,
    traceback: [`${failed.length} of ${rows.length} agents failed; first ${where}:`, ...traceback],
  });
}

/** `%remote_cluster ...`: place agents with Slurm or SSH, attach a batch job's, list the pool, or end it. */
export async function clusterMagic(
  runner: RemoteRunner,
  magic: ClusterMagic,
  io: CellIO,
  cell: CellInterrupt,
): Promise<void> {
  switch (magic.action) {
    case 'list':
      return listPool(runner, io, cell);
    case 'down': {
      const names = runner.pool.listing().map((a) => a.name);
      await runner.pool.close();
      io.stream('stdout', names.length ? `stopped the pool: ${names.join(', ')}\n` : 'the pool was empty\n');
      return;
    }
    case 'attach': {
      cell.consequence = 'nothing was attached';
      const dir = runner.userPath(magic.dir);
      const endpoints = readEndpointDir(dir);
      const curve = endpoints.some((e) => e.serverKey) ? attachKeys(dir) : undefined;
      await runner.pool.add(endpoints, curve, cell);
      io.stream(
        'stdout',
        `attached ${endpoints.length} agent(s) from ${dir}: ${endpoints.map((e) => e.name).join(', ')}\n`,
      );
      return listPool(runner, io, cell);
    }
    case 'slurm':
    case 'ssh':
      return launch(runner, magic, io, cell);
  }
}

/** Starts agents with srun or ssh, holds them in the pool until `down` or the kernel's end, and lists the pool. */
async function launch(
  runner: RemoteRunner,
  magic: Extract<ClusterMagic, { action: 'slurm' | 'ssh' }>,
  io: CellIO,
  cell: CellInterrupt,
): Promise<void> {
  cell.consequence = 'no agent was started (those that had started were stopped)';
  io.stream(
    'stdout',
    magic.action === 'slurm'
      ? `asking Slurm for ${magic.nodes} node(s)…\n`
      : `starting agents on ${magic.hosts.join(', ')} over ssh…\n`,
  );
  const starting =
    magic.action === 'slurm'
      ? launchSlurm(
          {
            nodes: magic.nodes,
            ...(magic.gpusPerNode !== undefined ? { gpusPerNode: magic.gpusPerNode } : {}),
            ...(magic.partition !== undefined ? { partition: magic.partition } : {}),
            ...(magic.time !== undefined ? { time: magic.time } : {}),
            ...(magic.agentArgs !== undefined ? { agentArgs: magic.agentArgs } : {}),
            srunArgs: magic.srunArgs,
          },
          BIN.remoteAgent,
          cell.signal,
        )
      : launchSsh(
          { hosts: magic.hosts, ...(magic.agentCommand !== undefined ? { agentCommand: magic.agentCommand } : {}) },
          cell.signal,
        );
  const launched = await cell.during(
    magic.action === 'slurm' ? 'waiting for the Slurm allocation and its agents' : 'starting the agents over ssh',
    starting,
  );
  try {
    await runner.pool.add(launched.agents, launched.clientCurve, cell);
  } catch (error) {
    await launched.stop();
    throw error;
  }
  runner.pool.hold(launched);
  io.stream(
    'stdout',
    `started ${launched.agents.length} agent(s) with: ${launched.command}\n(they end with %remote_cluster down or with this kernel)\n`,
  );
  return listPool(runner, io, cell);
}

/** The kernel's key pair for agents of a batch job that serve with keys: DIR/kernel.key and DIR/kernel.pub. */
function attachKeys(dir: string): SessionCurve {
  try {
    return readKeyPair(dir, 'kernel');
  } catch (error) {
    throw new CellFailure({
      ename: 'UsageError',
      evalue: `the agents in ${dir} serve with keys, and ${dir} holds no kernel key pair (kernel.key, kernel.pub) that they admit: ${(error as Error).message}`,
      traceback: [],
    });
  }
}
