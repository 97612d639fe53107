// One `pool.map`: items spread over every worker of every usable agent, one item per worker at a time, so a worker
// takes the next item when it is free and keeps its state from one item to the next. Results come back in input
// order (awaiting the run) and as they finish (iterating it). An item whose agent or worker failed goes to another
// slot, at most `retries` times; the user's own error is never retried. Each result is delivered once.

import { RemoteError } from '../../../protocol/errors';
import type { ErrorCode } from '../../../protocol/errors';
import type { PoolAgent } from './pool-agent';

export interface MapProgress {
  total: number;
  done: number;
  running: number;
  failed: number;
  /** Items retried after their agent or worker failed. */
  retried: number;
  perAgent: Record<string, { running: number; done: number; failed: number }>;
}

/** One item's outcome, as the run's iterator yields it. */
export interface ItemResult<R> {
  index: number;
  agent: string;
  worker: number;
  value?: R;
  /** With `returnErrors`, the item's error instead of a value. */
  error?: Error;
}

/** What runs one item on one worker of one agent; the pool supplies it (pickling the function with the item). */
export type RunItem<R> = (agent: PoolAgent, worker: number, index: number, signal: AbortSignal) => Promise<R>;

export interface MapRunOptions {
  /** Times an item is tried again elsewhere after its agent or worker failed (default 2). */
  retries?: number;
  /** Errors of the user's code become results (ItemResult.error, and in place in the array) instead of failing the map. */
  returnErrors?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: MapProgress) => void;
}

/** Failures of the place an item ran, not of the item: another worker can take it. */
const PLACE_FAILURES: ReadonlySet<ErrorCode> = new Set([
  'WORKER_CRASHED',
  'AGENT_UNREACHABLE',
  'AGENT_RESTARTED',
  'SHUTTING_DOWN',
  'JOB_UNKNOWN',
  'SNAPSHOT_MISSING',
]);
/** Of those, the ones after which the pool stops sending the agent work. */
const AGENT_FAILURES: ReadonlySet<ErrorCode> = new Set(['AGENT_UNREACHABLE', 'SHUTTING_DOWN']);

/** An error of one item, with where it ran: the map's error when the user's code failed. */
export class MapItemError extends Error {
  override name = 'MapItemError';
  constructor(
    readonly index: number,
    readonly agent: string,
    readonly worker: number,
    override readonly cause: Error,
  ) {
    super(`item ${index} failed on agent ${agent}, worker ${worker}: ${cause.message}`, { cause });
    if (cause.stack) this.stack = `${this.name}: item ${index} (agent ${agent}, worker ${worker})\n${cause.stack}`;
  }
}

export class MapRun<R> implements PromiseLike<R[]>, AsyncIterable<ItemResult<R>> {
  private readonly results: R[];
  private readonly delivered: boolean[];
  private readonly attempts: number[];
  private readonly queue: number[];
  private readonly finished: ItemResult<R>[] = [];
  private readonly controller = new AbortController();
  private readonly progress: MapProgress;
  private wakeSlots: Array<() => void> = [];
  private wakeReaders: Array<() => void> = [];
  private failure?: Error;
  /** Removes the listener on the caller's signal, which may outlive many maps. */
  private settled = (): void => undefined;
  private ended = false;
  private readonly done: Promise<R[]>;

  constructor(
    private readonly agents: readonly PoolAgent[],
    private readonly itemCount: number,
    private readonly runItem: RunItem<R>,
    private readonly options: MapRunOptions = {},
  ) {
    this.results = new Array<R>(itemCount);
    this.delivered = new Array<boolean>(itemCount).fill(false);
    this.attempts = new Array<number>(itemCount).fill(0);
    this.queue = Array.from({ length: itemCount }, (_, index) => index);
    this.progress = { total: itemCount, done: 0, running: 0, failed: 0, retried: 0, perAgent: {} };
    for (const agent of agents) this.progress.perAgent[agent.name] = { running: 0, done: 0, failed: 0 };
    const signal = options.signal;
    if (signal) {
      const onAbort = (): void => this.fail(abortError(signal));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      this.settled = () => signal.removeEventListener('abort', onAbort);
    }
    this.done = this.start().catch((error: Error) => {
      this.fail(error); // readers waiting in the iterator must see it too
      throw this.failure ?? error;
    });
    this.done.catch(() => undefined); // the caller's await or iteration reports it
  }

  then<A = R[], B = never>(
    onFulfilled?: ((value: R[]) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): PromiseLike<A | B> {
    return this.done.then(onFulfilled, onRejected);
  }

  /** Stops the map: running items are cancelled on their agents, and the run rejects with `reason`. */
  cancel(reason: Error = new Error('the map was cancelled')): void {
    this.fail(reason);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ItemResult<R>> {
    for (let next = 0; ;) {
      if (next < this.finished.length) {
        yield this.finished[next++]!;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => this.wakeReaders.push(resolve));
    }
  }

  private async start(): Promise<R[]> {
    const usable = this.agents.filter((agent) => agent.usable);
    if (this.itemCount > 0 && usable.length === 0) {
      throw new Error(
        `no agent of the pool can take work: ${this.agents.map((a) => `${a.name} ${a.listing().state}`).join(', ') || 'the pool is empty'}. ` +
          'Check the agents (pool.agents() lists why each was lost), restart them or add others, and map again',
      );
    }
    const slots = usable.flatMap((agent) =>
      Array.from({ length: agent.workers }, (_, worker) => this.slot(agent, worker)),
    );
    await Promise.all(slots);
    if (this.failure) throw this.failure;
    if (this.progress.done < this.itemCount) {
      const missing = this.delivered.indexOf(false);
      throw new Error(
        `${this.itemCount - this.progress.done} item(s), the first item ${missing}, found no agent left to run them: every agent of the pool was lost (${this.agents.map((a) => `${a.name}: ${a.error ?? a.listing().state}`).join('; ')}). The results so far are in the run's iterator; restart or add agents and map the rest again`,
      );
    }
    this.end();
    return this.results;
  }

  /** One worker of one agent: takes items until none are left, the agent is lost, or the map ends. */
  private async slot(agent: PoolAgent, worker: number): Promise<void> {
    for (;;) {
      if (this.failure || !agent.usable) return this.slotGone();
      const index = this.queue.shift();
      if (index === undefined) {
        if (this.progress.running === 0) return this.slotGone();
        // Items running elsewhere may come back (their agent failed): wait for one, or for the end.
        await new Promise<void>((resolve) => this.wakeSlots.push(resolve));
        continue;
      }
      await this.runOne(agent, worker, index);
    }
  }

  private slotGone(): void {
    this.wake(); // slots waiting for returned items must see there will be none
  }

  private async runOne(agent: PoolAgent, worker: number, index: number): Promise<void> {
    this.attempts[index]!++;
    this.count(agent, 'running', +1);
    let outcome: { value: R } | { error: unknown };
    try {
      outcome = { value: await this.runItem(agent, worker, index, this.controller.signal) };
    } catch (error) {
      outcome = { error };
    }
    this.count(agent, 'running', -1);
    if (this.failure || this.delivered[index]) return this.wake();
    if ('value' in outcome) return this.deliver(agent, worker, index, { value: outcome.value });
    const error = outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error));
    const code = error instanceof RemoteError ? error.code : undefined;
    if (code && PLACE_FAILURES.has(code)) {
      if (AGENT_FAILURES.has(code)) agent.lose(error.message);
      if (code === 'AGENT_RESTARTED' || code === 'SNAPSHOT_MISSING') agent.forgetUploads();
      if (this.attempts[index]! <= (this.options.retries ?? 2)) {
        this.progress.retried++;
        this.queue.unshift(index);
        return this.wake();
      }
    }
    this.count(agent, 'failed', +1);
    const itemError = new MapItemError(index, agent.name, worker, error);
    if (this.options.returnErrors) return this.deliver(agent, worker, index, { error: itemError });
    this.fail(itemError);
  }

  private deliver(agent: PoolAgent, worker: number, index: number, outcome: { value: R } | { error: Error }): void {
    this.delivered[index] = true;
    if ('value' in outcome) this.results[index] = outcome.value;
    else this.results[index] = outcome.error as R;
    this.progress.done++;
    agent.done++;
    this.progress.perAgent[agent.name]!.done++;
    this.finished.push({ index, agent: agent.name, worker, ...outcome });
    this.report();
    this.wake();
  }

  private count(agent: PoolAgent, what: 'running' | 'failed', delta: number): void {
    this.progress[what] += delta;
    this.progress.perAgent[agent.name]![what] += delta;
    if (what === 'running') agent.running += delta;
    else agent.failed += delta;
    this.report();
  }

  private report(): void {
    this.options.onProgress?.({ ...this.progress, perAgent: structuredClone(this.progress.perAgent) });
  }

  private fail(error: Error): void {
    if (this.failure || this.ended) return;
    this.failure = error;
    this.settled();
    this.controller.abort(error); // cancels every running item on its agent
    this.wake();
  }

  private end(): void {
    this.ended = true;
    this.settled();
    this.wake();
  }

  private wake(): void {
    const waiting = [...this.wakeSlots, ...this.wakeReaders];
    this.wakeSlots = [];
    this.wakeReaders = [];
    for (const resolve of waiting) resolve();
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('the map was aborted');
}
