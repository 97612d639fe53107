// The kernel's pool as a value in cells: `agents`, which the kernel declares in the notebook once the pool has
// agents (%remote_agent add, %remote_cluster). It is the AgentPool API of `tslab-remote/client` (map, all, on,
// agents, close) on the kernel's live pool, with what a notebook needs filled in: functions are pickled exactly as
// %remote pickles them (the notebook's names, the code root and its snapshot, the notebook's directory in it);
// agents' output goes to the cell, prefixed with `[agent]`; a map shows a progress line in its cell, updated in
// place; Jupyter's interrupt cancels every running item on every agent.
//
//   const losses = await agents.map(train, rates)                 // results in input order
//   for await (const r of agents.map(train, rates)) r.value         // or as they finish
//   await agents.all(() => process.env.CUDA_VISIBLE_DEVICES)        // one row per agent

import * as path from 'node:path';

import type { AgentClient } from '../client/agent-client';
import type { AllResult, MapOptions } from '../client/cluster/pool';
import type { ItemResult, MapProgress, MapRun } from '../client/cluster/map-run';
import type { AgentListing } from '../client/cluster/pool-agent';
import type { SnapshotResult } from '../client/snapshot';
import type { KernelPool } from './kernel-pool';
import { MapProgressLine } from './map-progress';
import { jupyter } from './tslab-parts';

/** Where the kernel keeps the value (the declaration cell reads it from there). */
export const AGENTS_KEY = 'tslab-remote.agents';

/** What a call from a cell ships: the notebook's names, the code root, its snapshot, the notebook's directory. */
export interface CallSettings {
  locals: Record<string, unknown>;
  codeRoot?: string;
  cwd?: string;
  snapshot: SnapshotResult | null;
}

/**
 * The cell that declares `agents` in the notebook, typed by this file's declarations (an absolute path: the
 * notebook need not resolve the package).
 */
export function agentsDeclaration(): string {
  const types = path.join(__dirname, 'pool-value');
  return `const agents = (globalThis as any)[Symbol.for(${JSON.stringify(AGENTS_KEY)})] as import(${JSON.stringify(types)}).NotebookAgents;\n`;
}

export type NotebookMapOptions = Pick<MapOptions, 'retries' | 'returnErrors' | 'timeoutMs' | 'onProgress' | 'signal'>;
export type NotebookCallOptions = Pick<MapOptions, 'timeoutMs' | 'signal'>;

export class NotebookAgents {
  constructor(
    private readonly pool: KernelPool,
    private readonly settings: () => Promise<CallSettings>,
  ) {}

  /**
   * `fn(item, index)` for every item, over every worker of every agent. Await it for the results in input order;
   * iterate it (`for await`) for each result as it finishes.
   */
  map<T, R>(
    fn: (item: T, index: number) => R | Promise<R>,
    items: readonly T[],
    options: NotebookMapOptions = {},
  ): NotebookMapRun<Awaited<R>> {
    const pool = this.agentPool();
    const tracked = this.pool.track();
    const signal = options.signal ? AbortSignal.any([options.signal, tracked.signal]) : tracked.signal;
    const line = new MapProgressLine(jupyter.lastWriteDisplayData);
    const started = this.settings().then((settings) => ({
      run: pool.map(fn, items, {
        ...settings,
        label: 'the mapped function',
        ...(options.retries !== undefined ? { retries: options.retries } : {}),
        ...(options.returnErrors !== undefined ? { returnErrors: options.returnErrors } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
        signal,
        onOutput: writeOutput,
        onProgress: (progress: MapProgress) => {
          line.update(progress);
          options.onProgress?.(progress);
        },
      }),
    }));
    return new NotebookMapRun(started, () => {
      tracked.done();
      line.end();
    });
  }

  /** `fn()` once on every agent, in parallel: each agent's value or error, with its elapsed time. */
  async all<R>(fn: () => R | Promise<R>, options: NotebookCallOptions = {}): Promise<AllResult<Awaited<R>>[]> {
    const pool = this.agentPool();
    const tracked = this.pool.track();
    try {
      const signal = options.signal ? AbortSignal.any([options.signal, tracked.signal]) : tracked.signal;
      return await pool.all(fn, {
        ...(await this.settings()),
        label: 'the function',
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
        signal,
        onOutput: writeOutput,
      });
    } finally {
      tracked.done();
    }
  }

  /** One agent's client. */
  on(name: string): AgentClient {
    return this.agentPool().on(name);
  }

  /** The agents: name, host, endpoint, workers, GPUs, items running, state. */
  agents(): AgentListing[] {
    return this.pool.listing();
  }

  /** Ends the pool, as %remote_cluster down does. */
  close(): Promise<void> {
    return this.pool.close();
  }

  private agentPool(): NonNullable<KernelPool['agentPool']> {
    const pool = this.pool.agentPool;
    if (!pool)
      throw new Error(
        'the pool is empty: add agents with %remote_agent add NAME ENDPOINT, or place them with %remote_cluster',
      );
    return pool;
  }
}

/** Agents' output in the cell that runs now, each line prefixed with where it ran. */
function writeOutput(agent: string, worker: number | null, stream: 'stdout' | 'stderr', text: string): void {
  const where = worker === null ? `[${agent}] ` : `[${agent}#${worker}] `;
  const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
  process[stream].write(lines.map((l) => where + l).join('\n') + '\n');
}

/** A map that starts once the snapshot is taken: awaitable (results in input order) and iterable (as they finish). */
export class NotebookMapRun<R> implements PromiseLike<R[]>, AsyncIterable<ItemResult<R>> {
  private readonly result: Promise<R[]>;

  // The run is held in an object: a promise of the MapRun itself would adopt it (a thenable) and hold its results.
  constructor(
    private readonly started: Promise<{ run: MapRun<R> }>,
    finish: () => void,
  ) {
    this.result = started
      .then(({ run }) => new Promise<R[]>((resolve, reject) => void run.then(resolve, reject)))
      .finally(finish);
    this.result.catch(() => undefined); // the cell's await or iteration reports it
  }

  then<A = R[], B = never>(
    onFulfilled?: ((value: R[]) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): PromiseLike<A | B> {
    return this.result.then(onFulfilled, onRejected);
  }

  /** Stops the map: running items are cancelled on their agents. */
  cancel(reason?: Error): void {
    void this.started.then(
      ({ run }) => run.cancel(reason),
      () => undefined,
    );
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ItemResult<R>> {
    const { run } = await this.started;
    yield* run;
  }
}
