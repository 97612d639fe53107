// AgentPool: many agents, one socket each, balanced by the client itself (no scheduler daemon). `map` spreads items
// over every worker of every agent, `all` runs one call on each agent, `on` is one agent's client. Functions travel
// exactly as `AgentClient.call` pickles them, with the code root's snapshot uploaded to each agent in parallel.

import type { AgentClient } from '../agent-client';
import type { CallOptions, ConnectOptions } from '../client-options';
import type { LocalSnapshot } from '../snapshot';
import { MapRun, MapRunOptions } from './map-run';
import { AgentListing, PoolAgent } from './pool-agent';
import type { AgentEndpoint, LaunchedAgents, SessionCurve } from './types';

/** How functions travel and where they run: the same options as AgentClient.call, plus the snapshot itself. */
export interface PoolCallOptions extends Pick<
  CallOptions,
  'locals' | 'codeRoot' | 'label' | 'timeoutMs' | 'onVersionMismatch' | 'cwd'
> {
  /** Uploaded to each agent that runs something (only the files it lacks), and run in. */
  snapshot?: LocalSnapshot | null;
  signal?: AbortSignal;
  /** A line of an item's (or a call's) output, with where it ran. */
  onOutput?: (agent: string, worker: number | null, stream: 'stdout' | 'stderr', text: string) => void;
}

export interface MapOptions extends PoolCallOptions, Omit<MapRunOptions, 'signal'> {}

/** One agent's outcome of `all`. */
export interface AllResult<R> {
  agent: string;
  host: string;
  value?: R;
  error?: Error;
  elapsedMs: number;
}

export interface PoolOptions {
  /** The session's client key pair, for agents that serve with keys (their public key is in their endpoint). */
  clientCurve?: SessionCurve;
  /** Options of each agent connection (the pool's defaults: give up on a lost connection after 3 s, on silence after 15 s). */
  connect?: ConnectOptions;
  /** Agents a launcher started: stopped when the pool closes. */
  launched?: LaunchedAgents;
}

export class AgentPool {
  private readonly members: PoolAgent[] = [];
  private closed = false;

  private constructor(private readonly options: PoolOptions) {}

  /** Connects to every endpoint in parallel; if any cannot be reached, closes the others and says which failed. */
  static async connect(endpoints: readonly AgentEndpoint[], options: PoolOptions = {}): Promise<AgentPool> {
    const pool = new AgentPool(options);
    const names = new Set(endpoints.map((endpoint) => endpoint.name));
    if (names.size < endpoints.length)
      throw new Error(`agent names must be unique in a pool: ${endpoints.map((e) => e.name).join(', ')}`);
    const outcomes = await Promise.allSettled(
      endpoints.map((endpoint) => PoolAgent.connect(endpoint, options.clientCurve, options.connect ?? {})),
    );
    for (const outcome of outcomes) if (outcome.status === 'fulfilled') pool.members.push(outcome.value);
    const failed = outcomes.flatMap((outcome, i) =>
      outcome.status === 'rejected'
        ? [`${endpoints[i]!.name} (${endpoints[i]!.endpoint}): ${(outcome.reason as Error).message}`]
        : [],
    );
    if (failed.length > 0) {
      await pool.close();
      throw new Error(
        `could not connect to ${failed.length} of ${endpoints.length} agent(s):\n  ${failed.join('\n  ')}`,
      );
    }
    return pool;
  }

  /** Adds one agent; its name must be new to the pool. */
  async add(endpoint: AgentEndpoint): Promise<void> {
    if (this.closed) throw new Error('the pool is closed');
    if (this.members.some((member) => member.name === endpoint.name)) {
      throw new Error(`the pool already has an agent named ${endpoint.name}: give this one another name`);
    }
    const agent = await PoolAgent.connect(endpoint, this.options.clientCurve, this.options.connect ?? {});
    if (this.closed || this.members.some((member) => member.name === endpoint.name)) {
      await agent.close();
      throw new Error(
        this.closed ? 'the pool was closed while connecting' : `the pool already has an agent named ${endpoint.name}`,
      );
    }
    this.members.push(agent);
  }

  /** The agents: name, host, endpoint, workers, GPUs, items running, state. */
  agents(): AgentListing[] {
    return this.members.map((member) => member.listing());
  }

  /** One agent's client, for calls to it alone. */
  on(name: string): AgentClient {
    const member = this.members.find((candidate) => candidate.name === name);
    if (!member)
      throw new Error(
        `no agent named ${name} in the pool; it has ${this.members.map((m) => m.name).join(', ') || 'no agents'}`,
      );
    return member.client;
  }

  /** Calls `fn()` once on every usable agent, in parallel; each agent's value or error, with its elapsed time. */
  async all<R>(fn: () => R | Promise<R>, options: PoolCallOptions = {}): Promise<AllResult<Awaited<R>>[]> {
    this.reviveLost();
    return Promise.all(
      this.members
        .filter((member) => member.state !== 'closed')
        .map(async (member) => {
          const started = Date.now();
          const row = { agent: member.name, host: member.listing().host };
          try {
            if (!member.usable)
              throw new Error(`the agent is ${member.listing().state}${member.error ? `: ${member.error}` : ''}`);
            const value = await this.callOn<Awaited<R>>(member, null, fn, [], options);
            return { ...row, value, elapsedMs: Date.now() - started };
          } catch (error) {
            return { ...row, error: error as Error, elapsedMs: Date.now() - started };
          }
        }),
    );
  }

  /**
   * Calls `fn(item, index)` for every item, spread over every worker of every usable agent. Await it for the
   * results in input order; iterate it (`for await`) for each result as it finishes.
   */
  map<T, R>(
    fn: (item: T, index: number) => R | Promise<R>,
    items: readonly T[],
    options: MapOptions = {},
  ): MapRun<Awaited<R>> {
    this.reviveLost();
    const { retries, returnErrors, onProgress, signal, ...callOptions } = options;
    const run = (agent: PoolAgent, worker: number, index: number, itemSignal: AbortSignal): Promise<Awaited<R>> =>
      this.callOn<Awaited<R>>(agent, worker, fn, [items[index], index], { ...callOptions, signal: itemSignal });
    return new MapRun<Awaited<R>>(this.members, items.length, run, { retries, returnErrors, onProgress, signal });
  }

  /** Closes every connection, then stops the agents a launcher started for this pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.members.map((member) => member.close()));
    await this.options.launched?.stop();
  }

  private async callOn<R>(
    member: PoolAgent,
    worker: number | null,
    fn: Function,
    args: unknown[],
    options: PoolCallOptions,
  ): Promise<R> {
    const { snapshot, onOutput, ...call } = options;
    if (snapshot) await member.upload(snapshot, options.signal);
    const job = member.client.call<R>(fn, args, {
      ...call,
      snapshot: snapshot?.hash ?? null,
      ...(worker === null ? {} : { worker }),
      ...(onOutput
        ? { onOutput: (stream: 'stdout' | 'stderr', text: string) => onOutput(member.name, worker, stream, text) }
        : {}),
    });
    return job.result;
  }

  private reviveLost(): void {
    for (const member of this.members) member.revive();
  }
}
