// The magic runner: %remote_agent (agents.ts), %remote_root (code-root.ts), and the remote call of a cell's function
// with its output, progress, elapsed time, interrupt and errors (cell-errors.ts).

import * as path from 'node:path';

import { AgentClient } from '../client/agent-client';
import type { CallOptions, RunningJob } from '../client/client-options';
import { SnapshotResult } from '../client/snapshot';
import { RemoteError } from '../../protocol/errors';
import { Agent, AgentRegistry, AgentSpec } from './agents';
import { cellFailure } from './cell-errors';
import { CodeRoot, Prepared, userPath } from './code-root';
import { formatBytes } from './display';
import { showIn, withDisplay } from './display-relay';
import type { CellIO } from './io';
import { CellInterrupt, keyboardInterrupt } from './interrupt';
import { ElapsedDisplay, ProgressDisplay } from './live-display';
import { CellHistory } from './cell-history';
import { KernelPool } from './kernel-pool';
import type { CallSettings } from './pool-value';
import { refuseEphemeral, startDetached } from './detached-magics';
import { CellFailure } from './io';
import type { RemoteOptions } from './magic-types';

export { ENV_AGENT, ENV_KEYS } from './agents';
export { OWN_FUNCTIONS } from './cell-errors';
export { ENV_CODE_ROOT, Prepared } from './code-root';

export interface CallContext {
  count: number;
  /** The magic's TypeScript (to see whether it may display through tslab). */
  source: string;
  io: CellIO;
  locals: Record<string, unknown>;
  history: CellHistory;
}

export class RemoteRunner {
  private readonly agents: AgentRegistry;
  /** The agents of %remote_agent add and %remote_cluster, for --on, --all and `agents` in cells. */
  readonly pool = new KernelPool();
  private readonly codeRoot: CodeRoot;
  private readonly warned = new Set<string>();
  /** The magic cell in progress, which Jupyter's interrupt stops. */
  private cell?: CellInterrupt;
  private closed = false;

  constructor(private readonly notebookDir: string) {
    this.agents = new AgentRegistry(notebookDir);
    this.codeRoot = new CodeRoot(notebookDir);
  }

  /** Jupyter's interrupt (SIGINT): stops the magic cell in progress, whatever it is doing; between cells, nothing. */
  interrupt(): boolean {
    const maps = this.pool.interrupt(); // maps that cells run through `agents`
    if (!this.cell) return maps;
    this.cell.interrupt();
    return true;
  }

  /** Runs a magic cell: from now until it ends, Jupyter's interrupt stops it (see CellInterrupt). */
  async interruptible<T>(run: (cell: CellInterrupt) => Promise<T>): Promise<T> {
    const cell = new CellInterrupt();
    this.cell = cell;
    try {
      return await run(cell);
    } finally {
      if (this.cell === cell) this.cell = undefined;
    }
  }

  /** The code root: %remote_root, TSLAB_REMOTE_CODE_ROOT, or the nearest directory with a package.json; else null. */
  root(): Promise<string | null> {
    return this.codeRoot.root();
  }

  /** %remote_root [DIR]. */
  async setRoot(dir: string | undefined, io: CellIO, cell: CellInterrupt): Promise<void> {
    cell.consequence = 'the code root is unchanged';
    try {
      await this.codeRoot.show(dir, io, cell);
    } catch (error) {
      throw cellFailure(error, {});
    }
  }

  /**
   * %remote_reload [FILE ...]: the agent's worker drops those modules of the code root (every module without FILE)
   * and the modules that import them, after their dispose callbacks, so the next call loads them afresh; the worker
   * and everything else it holds stay.
   */
  async reload(files: string[], io: CellIO, cell: CellInterrupt): Promise<void> {
    cell.consequence = 'no module was dropped';
    try {
      const prepared = this.prepare();
      const agent = await this.agents.agentFor(undefined, io, cell);
      const root = (await cell.during('looking for the code root', prepared.root)) ?? this.notebookDir;
      const snap = await cell.during('taking the snapshot of the code root', prepared.snapshot);
      if (snap) await this.ensureUploaded(agent, snap, io, cell);
      const named =
        files.length === 0
          ? null
          : files.map((file) => path.relative(root, path.resolve(this.notebookDir, file)).split(path.sep).join('/'));
      const report = await cell.during(
        'dropping modules on the agent',
        agent.client.run<{ dropped: string[]; disposeErrors: string[] }>({
          source: "(files) => globalThis[Symbol.for('tslab-remote.reload')](files === null ? undefined : files)",
          args: [named],
          snapshot: snap?.hash ?? null,
        }),
      );
      for (const failure of report.disposeErrors)
        io.stream('stderr', `tslab-remote: a dispose callback threw: ${failure}\n`);
      const missed = named?.filter((file) => !report.dropped.includes(file)) ?? [];
      const what =
        report.dropped.length === 0
          ? 'no module was loaded'
          : `dropped ${report.dropped.length} module(s): ${report.dropped.join(', ')}`;
      io.stream(
        'stdout',
        `${what}${missed.length ? ` (not loaded: ${missed.join(', ')})` : ''}; the next call loads them afresh on ${agent.name}\n`,
      );
    } catch (error) {
      throw cellFailure(error, {});
    }
  }

  /** %remote_agent [ENDPOINT]. */
  async connectAgent(spec: AgentSpec, io: CellIO, cell: CellInterrupt): Promise<void> {
    cell.consequence = this.agents.consequence();
    try {
      await this.agents.magic(spec, io, cell);
    } catch (error) {
      throw cellFailure(error, {});
    }
  }

  /** A path typed in a magic: `~/` is the home directory, relative is to the notebook. */
  userPath(typed: string): string {
    return userPath(this.notebookDir, typed);
  }

  /** What a call of `agents` in a cell ships: as for %remote, the notebook's names, code root, snapshot and directory. */
  async callSettings(locals: Record<string, unknown>): Promise<CallSettings> {
    const prepared = this.prepare();
    const root = await prepared.root;
    const snapshot = await prepared.snapshot;
    const cwd = root !== null ? this.codeRoot.cwdIn(root) : undefined;
    return { locals, ...(root !== null ? { codeRoot: root } : {}), ...(cwd !== undefined ? { cwd } : {}), snapshot };
  }

  /** Starts taking the snapshot; `call` uses it. Started before the type check, so the two overlap. */
  prepare(): Prepared {
    return this.codeRoot.prepare();
  }

  /**
   * Runs `fn` on the agent and resolves with its (awaited) value; failures throw CellFailure. An interrupt (`cell`)
   * before the call is sent keeps it from being sent; after, cancels it on the agent.
   */
  async call(
    fn: () => unknown,
    options: RemoteOptions & { quiet?: boolean },
    context: CallContext,
    cell: CellInterrupt,
    prepared = this.prepare(),
  ): Promise<unknown> {
    const { io } = context;
    const entry = withDisplay(fn, context.source, context.locals);
    let agent: Agent | undefined;
    let root: string | undefined;
    try {
      agent = await this.agentFor(options, io, cell);
      if (options.detach) refuseEphemeral(agent, this.pool.launcherOf(agent.endpoint));
      root = (await cell.during('looking for the code root', prepared.root)) ?? undefined;
      const snap = await cell.during(`taking the snapshot of ${root ?? 'the code root'}`, prepared.snapshot);
      if (snap) {
        for (const warning of snap.warnings) this.warnOnce(io, `tslab-remote: ${warning}`);
        await this.ensureUploaded(agent, snap, io, cell);
      } else {
        this.warnOnce(
          io,
          `tslab-remote: no package.json in ${this.notebookDir} or above it, so no code root: calls run without your local files (set one with %remote_root DIR)`,
        );
      }
      const callOptions = this.callOptions(agent, root, snap, context, options, cell);
      if (options.detach) return await startDetached(agent, entry, callOptions, options.name, io, cell);
      return await this.run(agent, entry, callOptions, snap, io, cell, options.quiet);
    } catch (error) {
      const call = {
        entry,
        wrapped: entry !== fn,
        root,
        locals: context.locals,
        history: context.history,
        notebookDir: this.notebookDir,
      };
      throw cellFailure(error, { call, agent, cell });
    }
  }

  /** The agents a detached job may be on: --agent's; else the current one (or TSLAB_REMOTE_AGENT's) and the pool's. */
  async jobAgents(spec: string | undefined, io: CellIO, cell: CellInterrupt): Promise<Agent[]> {
    if (spec !== undefined) return [await this.agents.agentFor(spec, io, cell)];
    const current = this.agents.hasDefault() ? [await this.agents.agentFor(undefined, io, cell)] : [];
    const agents = [
      ...current,
      ...this.pool.list().filter((member) => !current.some((c) => c.endpoint === member.endpoint)),
    ];
    if (agents.length > 0) return agents;
    throw new CellFailure({
      ename: 'UsageError',
      evalue: 'no agent is connected, and detached jobs live on the agent that runs them',
      traceback: [
        'UsageError: no agent is connected, and detached jobs live on the agent that runs them: connect it first with %remote_agent ENDPOINT (or set TSLAB_REMOTE_AGENT)',
      ],
    });
  }

  /** --on NAME: that agent of the pool; else --agent or the current agent, or the pool's first when there is none. */
  private agentFor(options: { agent?: string; on?: string }, io: CellIO, cell: CellInterrupt): Promise<Agent> | Agent {
    if (options.on !== undefined) return this.pool.member(options.on);
    if (options.agent === undefined && !this.agents.hasDefault() && this.pool.size > 0) return this.pool.list()[0]!;
    return this.agents.agentFor(options.agent, io, cell);
  }

  private callOptions(
    agent: Agent,
    root: string | undefined,
    snap: SnapshotResult | null,
    context: CallContext,
    options: { timeoutMs?: number },
    cell: CellInterrupt,
  ): CallOptions {
    return {
      locals: context.locals,
      ...(root !== undefined ? { codeRoot: root, cwd: this.codeRoot.cwdIn(root) } : {}),
      snapshot: snap ? snap.hash : null,
      filename: `cell-${context.count}.js`,
      label: 'the cell',
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      onVersionMismatch: (pkg, local, remote) =>
        this.warnOnce(
          context.io,
          `tslab-remote: package ${pkg} is ${remote ?? 'not installed'} on ${agent.name}, ${local} here\n`,
        ),
      signal: cell.signal,
    };
  }

  /** The call itself, with its output relayed to the cell and its elapsed time shown while it runs. */
  private async run(
    agent: Agent,
    entry: () => unknown,
    options: CallOptions,
    snap: SnapshotResult | null,
    io: CellIO,
    cell: CellInterrupt,
    quiet = false,
  ): Promise<unknown> {
    const elapsed = quiet ? undefined : new ElapsedDisplay(io, agent.name, Date.now());
    const callOptions: CallOptions = {
      ...options,
      onOutput: (stream, text) => io.stream(stream, text),
      onDisplay: showIn(io),
    };
    try {
      let value: unknown;
      try {
        value = await startCall(agent.client, entry, callOptions).result;
      } catch (error) {
        if (error instanceof RemoteError && error.code === 'SNAPSHOT_MISSING' && snap) {
          // Evicted on the agent since we last checked: upload again, once.
          agent.ready.delete(snap.hash);
          await this.ensureUploaded(agent, snap, io, cell);
          value = await startCall(agent.client, entry, callOptions).result;
        } else throw error;
      }
      // An interrupt sticks even when the call ended before the agent heard of it.
      if (await cell.interrupted())
        throw keyboardInterrupt(`interrupted as the call ended on ${agent.name}: its result is dropped`);
      return value;
    } finally {
      elapsed?.stop();
    }
  }

  /** The snapshot on the agent: checked and uploaded once per agent; progress shows when it takes a moment. */
  private async ensureUploaded(agent: Agent, snap: SnapshotResult, io: CellIO, cell: CellInterrupt): Promise<void> {
    if (agent.ready.has(snap.hash)) return;
    const progress = new ProgressDisplay(io, agent.name);
    let report;
    try {
      const upload = agent.client.upload(snap, {
        onProgress: (p) =>
          progress.update(
            `uploading to ${agent.name}: ${formatBytes(p.sentBytes)} of ${formatBytes(p.totalBytes)}`,
            p.sentBytes / Math.max(1, p.totalBytes),
          ),
        signal: cell.signal, // an interrupted upload stops before its next batch
      });
      report = await cell.during(`uploading the code root to ${agent.name}`, upload);
    } catch (error) {
      progress.done(cell.signal.aborted ? 'upload interrupted' : 'upload failed');
      throw error;
    }
    progress.done(
      report.filesSent > 0
        ? `uploaded ${report.filesSent} file(s), ${formatBytes(report.bytesSent)} to ${agent.name}`
        : undefined,
    );
    agent.ready.add(snap.hash);
  }

  private warnOnce(io: CellIO, text: string): void {
    if (this.warned.has(text)) return;
    this.warned.add(text);
    io.stream('stderr', text.endsWith('\n') ? text : `${text}\n`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.agents.close();
    await this.pool.close();
  }
}

function startCall(client: AgentClient, fn: () => unknown, options: CallOptions): RunningJob<unknown> {
  return client.call<unknown>(fn, [], options);
}
