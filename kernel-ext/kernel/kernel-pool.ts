// The kernel's pool: the agents added with `%remote_agent add` or placed by `%remote_cluster`, by name, each with
// its own connection and the snapshots known to be on it; and what placed them (a launcher's LaunchedAgents), which
// `%remote_cluster down` and the kernel's end stop. `%remote --on NAME` and `--all` call its members through the
// runner's ordinary call path (remote.ts), so a pool agent gets exactly what a `%remote` agent gets.

import type { ClientCurve } from '../client/client-options';
import { AgentPool } from '../client/cluster/pool';
import type { AgentListing } from '../client/cluster/pool-agent';
import type { AgentEndpoint, LaunchedAgents, SessionCurve } from '../client/cluster/types';
import { CellFailure } from './io';
import type { CellInterrupt } from './interrupt';
import type { Agent } from './agents';

const CONNECT = { clientName: `tslab-remote kernel pid ${process.pid} (pool)` };

export interface PoolMember extends Agent {
  host: string;
}

export class KernelPool {
  /** Made with the first agents; its client key pair (if any) is the one every later agent must admit. */
  private pool?: AgentPool;
  private curve?: SessionCurve;
  /** Per agent, what the runner's call path keeps (snapshots known to be there), made on first use. */
  private readonly members = new Map<string, PoolMember>();
  private readonly launches: LaunchedAgents[] = [];
  /** What the pool was made of, to remake it with a key pair. */
  private endpoints: AgentEndpoint[] = [];
  /** Maps running in cells, which Jupyter's interrupt cancels. */
  private readonly running = new Set<AbortController>();

  /** The AgentPool itself, for `agents` in cells; undefined while the pool is empty. */
  get agentPool(): AgentPool | undefined {
    return this.size > 0 ? this.pool : undefined;
  }

  get size(): number {
    return this.pool?.agents().length ?? 0;
  }

  listing(): AgentListing[] {
    return this.pool?.agents() ?? [];
  }

  list(): PoolMember[] {
    return this.listing().map((a) => this.member(a.name));
  }

  /** The member for `--on NAME`; a clear error naming the pool when there is none. */
  member(name: string): PoolMember {
    const listing = this.listing();
    const found = listing.find((a) => a.name === name);
    if (!found) {
      throw usage(
        listing.length === 0
          ? `--on ${name}: the pool is empty; add agents with %remote_agent add NAME ENDPOINT or %remote_cluster`
          : `--on ${name}: no agent of that name in the pool, which has ${listing.map((a) => a.name).join(', ')}`,
      );
    }
    let member = this.members.get(name);
    if (!member) {
      member = { name, endpoint: found.endpoint, host: found.host, client: this.pool!.on(name), ready: new Set() };
      this.members.set(name, member);
    }
    return member;
  }

  /** Every member, for `--all`; an error when the pool is empty. */
  all(): PoolMember[] {
    if (this.size === 0)
      throw usage('--all: the pool is empty; add agents with %remote_agent add NAME ENDPOINT or %remote_cluster');
    return this.list();
  }

  /**
   * Connects to the endpoints and adds them. The agents of one pool admit one client key pair: `curve` must be the
   * pool's (or the pool has none yet). Names already in the pool are refused before anything connects.
   */
  async add(
    endpoints: AgentEndpoint[],
    curve: ClientCurve | SessionCurve | undefined,
    cell: CellInterrupt,
  ): Promise<void> {
    const names = this.listing().map((a) => a.name);
    for (const e of endpoints) {
      if (names.includes(e.name)) throw usage(`an agent named ${e.name} is already in the pool; pick another name`);
    }
    const pair = curve ? { publicKey: curve.publicKey, secretKey: curve.secretKey } : undefined;
    const serverKey = curve && 'serverKey' in curve ? curve.serverKey : undefined;
    const keyed = endpoints.map((e) => (serverKey && !e.serverKey ? { ...e, serverKey } : e));
    // Unkeyed agents join any pool; the first keys decide the pool's pair, and a pool without one is remade with it.
    const mustRemake = !this.pool || this.size === 0 || (pair !== undefined && this.curve === undefined);
    if (pair && this.curve && this.curve.publicKey !== pair.publicKey) {
      throw usage(
        `the agents of the pool admit one client key pair, and ${describe(endpoints)} needs another: %remote_cluster down, then add them again`,
      );
    }
    if (mustRemake && this.running.size > 0) throw usage(`a map is running: add ${describe(endpoints)} once it ends`);
    if (mustRemake) {
      const all = [...(this.size > 0 ? this.endpoints : []), ...keyed];
      const pool = await cell.during(
        `connecting to ${describe(all)}`,
        AgentPool.connect(all, { ...(pair ? { clientCurve: pair } : {}), connect: CONNECT }),
      );
      const old = this.pool;
      this.pool = pool;
      this.curve = pair;
      this.endpoints = all;
      this.members.clear();
      await old?.close();
      return;
    }
    await cell.during(`connecting to ${describe(endpoints)}`, Promise.all(keyed.map((e) => this.pool!.add(e))));
    this.endpoints.push(...keyed);
  }

  /** The command that started the agent at `endpoint` and stops it with the kernel, if one of ours did. */
  launcherOf(endpoint: string): string | undefined {
    return this.launches.find((launch) => launch.agents.some((agent) => agent.endpoint === endpoint))?.command;
  }

  /** Keeps a launcher's agents to stop with `down` or the kernel's end. */
  hold(launched: LaunchedAgents): void {
    this.launches.push(launched);
  }

  /** A map in a cell: its signal aborts at Jupyter's interrupt, until `done`. */
  track(): { signal: AbortSignal; done(): void } {
    const controller = new AbortController();
    this.running.add(controller);
    return { signal: controller.signal, done: () => this.running.delete(controller) };
  }

  /** Jupyter's interrupt: cancels every running map on every agent. Whether there was one. */
  interrupt(): boolean {
    const any = this.running.size > 0;
    for (const controller of this.running)
      controller.abort(new Error('interrupted: the map was cancelled on every agent'));
    this.running.clear();
    return any;
  }

  /** Closes every connection and stops every launch (the allocation ends); the pool is empty afterwards. */
  async close(): Promise<void> {
    this.interrupt();
    const pool = this.pool;
    const launches = this.launches.splice(0);
    this.pool = undefined;
    this.curve = undefined;
    this.endpoints = [];
    this.members.clear();
    await pool?.close().catch(() => undefined);
    await Promise.all(launches.map((l) => l.stop().catch(() => undefined)));
  }
}

function describe(endpoints: AgentEndpoint[]): string {
  return endpoints.map((e) => `${e.name} (${e.endpoint})`).join(', ');
}

function usage(evalue: string): CellFailure {
  return new CellFailure({ ename: 'UsageError', evalue, traceback: [`UsageError: ${evalue}`] });
}
