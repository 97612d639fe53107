// The worker pool tests' harness: real child processes, real ZeroMQ and real snapshot trees (test/fixtures/snapshots)
// copied into temporary snapshot directories named by fake hashes.

import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import type { WireError } from '../../../protocol/errors';
import type { DisplayContent } from '../../../protocol/messages';
import { decodeValue, encodeValue } from '../../../protocol/values';
import { JobSpec, PoolOptions, WorkerPool } from '../../../remote-agent/pool/worker-pool';
import { isAlive, waitFor } from '../../support/agent-process';

export const FIXTURES = path.resolve(__dirname, '../../../../test/fixtures');
/** The pools' cancel grace: short, so tests of the kill after it stay fast. */
export const GRACE_MS = 300;

export type Event =
  | { kind: 'output'; stream: 'stdout' | 'stderr'; text: string }
  | { kind: 'display'; content: DisplayContent }
  | { kind: 'result'; value: unknown; worker: number; elapsedMs: number }
  | { kind: 'error'; error: WireError; worker: number | null };

export interface Outcome {
  events: Event[];
  value?: unknown;
  error?: WireError;
  worker: number | null;
  stdout: string;
  stderr: string;
}

interface Submitted {
  id: string;
  done: Promise<Outcome>;
  events: Event[];
}

let sequence = 0;

/**
 * A pool of real worker processes over a temporary directory, with every job's events recorded; close() stops the pool
 * and checks that no worker process it ever saw is still alive.
 */
export class Harness {
  readonly logs: string[] = [];
  readonly inUse: Array<[number, string[]]> = [];
  readonly pids = new Set<number>();
  readonly pool: WorkerPool;
  readonly options: PoolOptions;

  private constructor(
    readonly dir: string,
    overrides: Partial<PoolOptions>,
  ) {
    this.options = {
      size: 2,
      runDir: path.join(dir, 'run'),
      snapshotsRoot: path.join(dir, 'snapshots'),
      compileCacheDir: path.join(dir, 'compiled'),
      nodePaths: [],
      agentName: 'testhost:5555',
      graceMs: GRACE_MS,
      log: (line) => this.logs.push(line),
      onInUseChange: (worker, snapshots) => this.inUse.push([worker, snapshots]),
      ...overrides,
    };
    fs.mkdirSync(this.options.snapshotsRoot, { recursive: true });
    this.pool = new WorkerPool(this.options);
  }

  static async create(overrides: Partial<PoolOptions> = {}): Promise<Harness> {
    const dir = fs.realpathSync((await tmp.dir({ unsafeCleanup: true, prefix: 'pool-' })).path);
    const harness = new Harness(dir, overrides);
    await harness.pool.start();
    harness.notePids();
    return harness;
  }

  /** Copies a fixture tree into the snapshots root under a fake 64-hex hash; returns the hash. */
  snapshot(fixture: string): string {
    const hash = createHash('sha256').update(fixture).update(randomBytes(8)).digest('hex');
    fs.cpSync(path.join(FIXTURES, 'snapshots', fixture), path.join(this.options.snapshotsRoot, hash), {
      recursive: true,
    });
    return hash;
  }

  /** Installs a fixture package into <dir>/node_modules (the agent's packages) and returns that node_modules dir. */
  installPackage(name: string): string {
    const modules = path.join(this.dir, 'node_modules');
    fs.cpSync(path.join(FIXTURES, 'agent-packages', name), path.join(modules, name), { recursive: true });
    return modules;
  }

  submit(source: string, job: Partial<Omit<JobSpec, 'args'>> = {}, args: unknown[] = []): Submitted {
    const id = job.id ?? `job-${++sequence}`;
    const events: Event[] = [];
    const done = new Promise<Outcome>((resolve, reject) => {
      let finished = false;
      const finish = (): void => {
        if (finished) {
          reject(new Error(`job ${id} got a second final reply`));
          return;
        }
        finished = true;
        this.notePids();
        const text = (stream: string): string =>
          events.map((e) => (e.kind === 'output' && e.stream === stream ? e.text : '')).join('');
        const last = events[events.length - 1]!;
        resolve({
          events,
          value: last.kind === 'result' ? last.value : undefined,
          error: last.kind === 'error' ? last.error : undefined,
          worker: last.kind === 'output' || last.kind === 'display' ? null : last.worker,
          stdout: text('stdout'),
          stderr: text('stderr'),
        });
      };
      this.pool.submit(
        {
          id,
          client: job.client ?? 'client-a',
          snapshot: job.snapshot ?? null,
          code: job.code ?? { kind: 'source', source },
          options: job.options ?? {},
          args: encodeValue(args),
        },
        {
          output: (stream, text) => {
            if (finished) reject(new Error(`job ${id} got output after its final reply`));
            events.push({ kind: 'output', stream, text });
          },
          display: (content) => {
            if (finished) reject(new Error(`job ${id} got a display after its final reply`));
            events.push({ kind: 'display', content });
          },
          result: (frames, info) => {
            events.push({ kind: 'result', value: decodeValue(frames), ...info });
            finish();
          },
          error: (error, info) => {
            events.push({ kind: 'error', error, ...info });
            finish();
          },
        },
      );
    });
    this.notePids();
    return { id, done, events };
  }

  run(source: string, job: Partial<Omit<JobSpec, 'args'>> = {}, args: unknown[] = []): Promise<Outcome> {
    return this.submit(source, job, args).done;
  }

  async value(source: string, job: Partial<Omit<JobSpec, 'args'>> = {}, args: unknown[] = []): Promise<unknown> {
    const outcome = await this.run(source, job, args);
    if (outcome.error)
      throw new Error(`job failed: ${outcome.error.code}: ${outcome.error.message}\n${outcome.error.stack ?? ''}`);
    return outcome.value;
  }

  pid(worker: number): number {
    const pid = this.pool.status()[worker]?.pid;
    if (typeof pid !== 'number') throw new Error(`worker ${worker} has no process`);
    return pid;
  }

  notePids(): void {
    for (const status of this.pool.status()) if (status.pid !== null) this.pids.add(status.pid);
  }

  /** Waits until `predicate` holds (polling), failing after `ms`. */
  until(predicate: () => boolean, what: string, ms = 5000): Promise<void> {
    return waitFor(predicate, ms, what);
  }

  /** Waits until the worker runs a job. */
  busy(worker = 0): Promise<void> {
    return this.until(() => this.pool.status()[worker]!.state === 'busy', `worker ${worker} busy`);
  }

  async close(): Promise<void> {
    this.notePids();
    await this.pool.stop();
    for (const pid of this.pids) expect(isAlive(pid), `worker process ${pid} survived stop()`).to.equal(false);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The 1-based line of `file` that holds `marker`. */
export function lineOf(file: string, marker: string): number {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const index = lines.findIndex((line) => line.includes(marker));
  if (index < 0) throw new Error(`${marker} not in ${file}`);
  return index + 1;
}

/** require() of ES modules, on by default from Node 20.19 (and 22.12). */
export const REQUIRE_ESM = (process.features as { require_module?: boolean }).require_module === true;
