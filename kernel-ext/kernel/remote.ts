// The magic runner: the kernel's agents (connected with %remote_agent, from TSLAB_REMOTE_AGENT, or a private one on
// loopback started on first use), the code root and its snapshots (one stat cache per kernel, snapshots known to
// be ready on an agent are not checked again), and the remote call of a cell's function with its output, progress,
// elapsed time, interrupt and errors.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { AbortError } from '../client/abort';
import { AgentClient, CallOptions, ClientCurve, connect, RunningJob } from '../client/agent-client';
import { pickleCall, requireLoaded } from '../client/capture';
import { findCodeRoot, snapshot, SnapshotError, SnapshotResult, StatCache } from '../client/snapshot';
import { RemoteError } from '../../protocol/errors';
import { readKeyFile, readKeyPair } from '../../common/key-files';
import { PickleError, unpickle } from '../../pickle';
import { formatBytes, plainText } from './display';
import { installRemoteDisplay, OutputDemux } from './display-relay';
import type { CellIO } from './io';
import { CellFailure } from './io';
import { CellInterrupt, keyboardInterrupt } from './interrupt';
import { LocalAgent, startLocalAgent } from '../client/local-agent';
import { CellHistory, mapRemoteStack, recoverProgram } from './stack-map';

export const ENV_AGENT = 'TSLAB_REMOTE_AGENT';
export const ENV_KEYS = 'TSLAB_REMOTE_KEYS';
export const ENV_CODE_ROOT = 'TSLAB_REMOTE_CODE_ROOT';

/** Upload progress shows only for uploads that take longer than this (TSLAB_REMOTE_PROGRESS_MS overrides). */
const PROGRESS_AFTER_MS = nonNegative(process.env.TSLAB_REMOTE_PROGRESS_MS) ?? 400;
/** Elapsed time shows for calls that take longer than this, updated every second. */
const ELAPSED_AFTER_MS = 3_000;

interface Agent {
  name: string;
  endpoint: string;
  client: AgentClient;
  /** Snapshots the agent told us it holds (it may evict one: a SNAPSHOT_MISSING call uploads again). */
  ready: Set<string>;
  private?: LocalAgent;
}

/** The kernel's entry wrapper and the display shim: their frames are not the user's. */
export const OWN_FUNCTIONS = new Set(['tslabRemoteEntry', 'installRemoteDisplay']);

/** The display shim as a function of no module (pickled by value: its source and nothing else). */
// eslint-disable-next-line no-eval
const INSTALL_DISPLAY = (0, eval)(`(${installRemoteDisplay.toString()})`) as () => void;

function entryFor(fn: () => unknown): () => unknown {
  const install = INSTALL_DISPLAY;
  return function tslabRemoteEntry() {
    install();
    return fn();
  };
}

/** tslab's display API as the notebook sees it (`require('tslab')` in a cell is this module). */
const TSLAB_PUBLIC = require('tslab') as { display: unknown; newDisplay: unknown };

/**
 * Whether the call may display through tslab: its source names tslab, or the notebook holds tslab's module or its
 * display functions (a captured `tslab.display...`). Only then does the display shim travel with the call: it costs
 * a little on every call, and calls that cannot reach tslab do not need it.
 */
export function mayDisplay(source: string, locals: Record<string, unknown>): boolean {
  if (/\btslab\b/.test(source)) return true;
  for (const key of Object.keys(locals)) {
    const value = locals[key];
    if (value === TSLAB_PUBLIC || value === TSLAB_PUBLIC.display || value === TSLAB_PUBLIC.newDisplay) return true;
  }
  return false;
}

/** The code root and its snapshot, taken while the cell is type-checked (the file system work overlaps it). */
export interface Prepared {
  root: Promise<string | null>;
  snapshot: Promise<SnapshotResult | null>;
}

export interface CallContext {
  count: number;
  /** The magic's TypeScript (to see whether it may display through tslab). */
  source: string;
  io: CellIO;
  locals: Record<string, unknown>;
  history: CellHistory;
}

export class RemoteRunner {
  private readonly agents = new Map<string, Agent>();
  private current?: Agent;
  private readonly statCache = new StatCache();
  private codeRoot?: string;
  private readonly warned = new Set<string>();
  /** The magic cell in progress, which Jupyter's interrupt stops. */
  private cell?: CellInterrupt;
  private closed = false;

  constructor(private readonly notebookDir: string) {
    const root = process.env[ENV_CODE_ROOT];
    if (root) this.codeRoot = path.resolve(notebookDir, root);
  }

  /** Jupyter's interrupt (SIGINT): stops the magic cell in progress, whatever it is doing; between cells, nothing. */
  interrupt(): boolean {
    if (!this.cell) return false;
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

  // ---- %remote_root -------------------------------------------------------------------------------------------

  /** The code root: %remote_root, TSLAB_REMOTE_CODE_ROOT, or the nearest directory with a package.json; else null. */
  async root(): Promise<string | null> {
    if (this.codeRoot === undefined) {
      try {
        this.codeRoot = await findCodeRoot(this.notebookDir);
      } catch {
        return null; // asked again next time: a package.json may appear
      }
    }
    return this.codeRoot;
  }

  async setRoot(dir: string | undefined, io: CellIO, cell: CellInterrupt): Promise<void> {
    cell.consequence = 'the code root is unchanged';
    try {
      await this.showRoot(dir, io, cell);
    } catch (error) {
      throw this.failure(error, {});
    }
  }

  private async showRoot(dir: string | undefined, io: CellIO, cell: CellInterrupt): Promise<void> {
    let root: string | null;
    if (dir !== undefined) {
      root = this.userPath(dir);
      if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
        throw new CellFailure({ ename: 'UsageError', evalue: `${root} is not a directory`, traceback: [] });
      }
    } else {
      root = await this.root();
    }
    if (root === null) {
      io.stream('stdout', `no code root: no package.json in ${this.notebookDir} or above it; calls run without your local files (set one with %remote_root DIR)\n`);
      return;
    }
    // A new root is kept only once it can be snapshotted: a bad one must not break every later %remote.
    const taken = snapshot(root, { statCache: this.statCache }).catch((error: unknown) => {
      throw new CellFailure({
        ename: 'UsageError',
        evalue: `cannot snapshot ${root} as the code root: ${(error as Error).message}. Pick another with %remote_root DIR`,
        traceback: [],
      });
    });
    const snap = await cell.during(`taking the snapshot of ${root}`, taken);
    this.codeRoot = root;
    const cwd = this.cwdIn(root);
    io.stream(
      'stdout',
      `code root ${root}\n  ${snap.files.length} files, ${formatBytes(snap.bytes)}, snapshot ${snap.hash.slice(0, 12)}\n` +
        `  the notebook's directory on the agent: ${cwd ?? (this.notebookDir === root ? '(the root itself)' : '(outside the code root: the root itself)')}\n`,
    );
    for (const warning of snap.warnings) io.stream('stderr', `${warning}\n`);
  }

  // ---- %remote_agent ------------------------------------------------------------------------------------------

  async connectAgent(spec: { endpoint?: string; key?: string; name?: string; local: boolean }, io: CellIO, cell: CellInterrupt): Promise<void> {
    cell.consequence = this.current ? `the current agent is still ${this.current.name}` : 'no agent is connected';
    try {
      await this.agentMagic(spec, io, cell);
    } catch (error) {
      throw this.failure(error, {});
    }
  }

  private async agentMagic(spec: { endpoint?: string; key?: string; name?: string; local: boolean }, io: CellIO, cell: CellInterrupt): Promise<void> {
    if (!spec.endpoint && !spec.local) {
      const agent = this.current;
      if (!agent) {
        io.stream('stdout', `no agent yet: the first %remote ${process.env[ENV_AGENT] ? `connects to ${process.env[ENV_AGENT]} (${ENV_AGENT})` : 'starts a private agent on this machine'}\n`);
        return;
      }
      await this.describe(agent, io, cell);
      return;
    }
    const agent = spec.local ? await this.startLocal(spec.name ?? 'local', io, cell) : await this.connectTo(spec.endpoint!, spec.key, spec.name, cell);
    this.current = agent;
    const info = agent.client.agent;
    io.stream('stdout', `connected to ${agent.name === agent.endpoint ? agent.endpoint : `${agent.name} (${agent.endpoint})`}: ${info.name} ${info.version} on ${info.hostname}, node ${info.node}, ${info.workers} workers\n`);
  }

  private async describe(agent: Agent, io: CellIO, cell: CellInterrupt): Promise<void> {
    const status = await cell.during(`asking ${agent.name} for its status`, agent.client.status());
    const info = status.agent;
    const lines = [
      `agent      ${agent.name}${agent.private ? ' (private, on this machine; ends with this kernel)' : ''}`,
      `endpoint   ${agent.endpoint}`,
      `host       ${info.hostname} (agent pid ${info.pid}), ${info.name} ${info.version}, protocol ${info.protocol}`,
      `node       ${info.node}`,
      `workers    ${status.workers.length}: ${status.workers.map((w) => `#${w.index} ${w.state}${w.restarts ? ` (${w.restarts} restarts)` : ''}`).join(', ')}`,
      `snapshots  ${status.store.snapshots} held, ${status.store.blobs} files, ${formatBytes(status.store.bytes)} (${status.store.evicted} evicted)`,
    ];
    const r = status.resources;
    if (r) {
      lines.push(`cpu        ${r.cpus} × ${r.cpuModel}, load ${r.loadAverage.map((l) => l.toFixed(2)).join(' ')}`);
      lines.push(`memory     ${formatBytes(r.memoryFreeMb * 1024 * 1024)} free of ${formatBytes(r.memoryTotalMb * 1024 * 1024)}`);
      const gpus = r.gpus.map(
        (g) =>
          `#${g.index} ${g.name}${g.memoryTotalMb !== null ? `, ${g.memoryUsedMb ?? '?'} of ${g.memoryTotalMb} MB used` : ''}${g.utilizationPercent !== null ? `, ${g.utilizationPercent}% busy` : ''}`,
      );
      lines.push(`gpus       ${gpus.length > 0 ? gpus.join('\n           ') : r.gpuError ? `unreadable: ${r.gpuError}` : 'none'}`);
    }
    for (const worker of status.workers) if (worker.gpu !== undefined) lines.push(`           worker #${worker.index} on GPU ${worker.gpu}`);
    if (this.agents.size > 1) lines.push(`others     ${[...this.agents.values()].filter((a) => a !== agent).map((a) => a.name).join(', ')}`);
    io.stream('stdout', `${lines.join('\n')}\n`);
  }

  private async startLocal(name: string, io: CellIO, cell: CellInterrupt): Promise<Agent> {
    const existing = this.agents.get(name);
    if (existing && isAlive(existing)) return existing;
    if (existing) {
      await closeAgent(existing);
      this.agents.delete(name);
    }
    io.stream('stderr', 'tslab-remote: starting a private agent on this machine (it ends with this kernel)\n');
    // A process group of its own (Jupyter's interrupt signals the kernel's whole group, and must reach the kernel
    // only, which cancels the call through the protocol); it ends with the kernel, even a killed one.
    // The signals make the agent and the client given up on by an interrupt go away, not linger half-made.
    const starting = startLocalAgent({ detached: true, ephemeral: true, startTimeoutMs: 20_000, signal: cell.signal });
    const agentProcess = await cell.during('starting the private agent', starting);
    try {
      const connecting = connect(agentProcess.endpoint, { clientName: `tslab-remote kernel pid ${process.pid}`, signal: cell.signal });
      const client = await cell.during('connecting to the private agent', connecting);
      const agent: Agent = { name, endpoint: agentProcess.endpoint, client, ready: new Set(), private: agentProcess };
      this.agents.set(name, agent);
      if (existing && this.current === existing) this.current = agent;
      return agent;
    } catch (error) {
      await agentProcess.stop();
      throw error;
    }
  }

  private async connectTo(endpoint: string, key: string | undefined, name: string | undefined, cell: CellInterrupt): Promise<Agent> {
    const agentName = name ?? endpoint;
    const existing = this.agents.get(agentName);
    if (existing && existing.endpoint === endpoint) return existing;
    const curve = key ? readCurve(this.userPath(key)) : undefined;
    const connecting = connect(endpoint, { clientName: `tslab-remote kernel pid ${process.pid}`, ...(curve ? { curve } : {}), signal: cell.signal });
    const client = await cell.during(`connecting to ${endpoint}`, connecting);
    if (existing) await closeAgent(existing);
    const agent: Agent = { name: agentName, endpoint, client, ready: new Set() };
    this.agents.set(agentName, agent);
    return agent;
  }

  /** The agent a call goes to: --agent NAME_OR_ENDPOINT, else the current one, else TSLAB_REMOTE_AGENT, else private. */
  private async agentFor(spec: string | undefined, io: CellIO, cell: CellInterrupt): Promise<Agent> {
    if (spec) {
      const named = this.agents.get(spec) ?? [...this.agents.values()].find((a) => a.endpoint === spec);
      if (named && isAlive(named)) return named;
      if (named?.private) return this.startLocal(named.name, io, cell); // it died: a new one, not an error on every call
      if (spec === 'local') return this.startLocal('local', io, cell);
      if (!/^(tcp|ipc|inproc):\/\//.test(spec)) {
        throw new CellFailure({
          ename: 'UsageError',
          evalue: `no agent named ${spec}: connect it first with %remote_agent ENDPOINT --name ${spec}, or pass an endpoint such as tcp://host:5555`,
          traceback: [],
        });
      }
      return this.connectTo(spec, process.env[ENV_KEYS], undefined, cell);
    }
    if (this.current && !isAlive(this.current)) {
      // The private agent died (killed, out of memory): a new one, rather than an error on every call.
      io.stream('stderr', `tslab-remote: the private agent had stopped (${describeExit(this.current.private!)}); starting a new one\n`);
      await closeAgent(this.current);
      this.agents.delete(this.current.name);
      this.current = undefined;
    }
    if (this.current) return this.current;
    const configured = process.env[ENV_AGENT];
    this.current = configured ? await this.connectTo(configured, process.env[ENV_KEYS], undefined, cell) : await this.startLocal('local', io, cell);
    return this.current;
  }

  // ---- %remote ------------------------------------------------------------------------------------------------

  /** Starts taking the snapshot; `call` uses it. Started before the type check, so the two overlap. */
  prepare(): Prepared {
    // Started synchronously when the root is known, so the first file system calls run while tslab type-checks.
    const root = this.codeRoot !== undefined ? Promise.resolve(this.codeRoot) : this.root();
    const snap =
      this.codeRoot !== undefined
        ? snapshot(this.codeRoot, { statCache: this.statCache })
        : root.then((dir) => (dir === null ? null : snapshot(dir, { statCache: this.statCache })));
    root.catch(() => undefined);
    snap.catch(() => undefined);
    return { root, snapshot: snap };
  }

  /**
   * Runs `fn` on the agent and resolves with its (awaited) value; failures throw CellFailure. An interrupt (`cell`)
   * before the call is sent keeps it from being sent; after, cancels it on the agent.
   */
  async call(fn: () => unknown, options: { timeoutMs?: number; agent?: string }, context: CallContext, cell: CellInterrupt, prepared = this.prepare()): Promise<unknown> {
    const { io } = context;
    const entry = mayDisplay(context.source, context.locals) ? entryFor(fn) : fn;
    let agent: Agent | undefined;
    let root: string | undefined;
    try {
      agent = await this.agentFor(options.agent, io, cell);
      root = (await cell.during('looking for the code root', prepared.root)) ?? undefined;
      const snap = await cell.during(`taking the snapshot of ${root ?? 'the code root'}`, prepared.snapshot);
      if (snap) {
        for (const warning of snap.warnings) this.warnOnce(io, `tslab-remote: ${warning}`);
        await this.ensureUploaded(agent, snap, io, cell);
      } else {
        this.warnOnce(io, `tslab-remote: no package.json in ${this.notebookDir} or above it, so no code root: calls run without your local files (set one with %remote_root DIR)`);
      }
      const started = Date.now();
      const elapsed = new ElapsedDisplay(io, agent.name, started);
      const demux = new OutputDemux(
        (text) => io.stream('stdout', text),
        (record) => io.display(record.data as Parameters<CellIO['display']>[0], record.update),
      );
      const callOptions: CallOptions = {
        locals: context.locals,
        ...(root !== undefined ? { codeRoot: root, cwd: this.cwdIn(root) } : {}),
        snapshot: snap ? snap.hash : null,
        filename: `cell-${context.count}.js`,
        label: 'the cell',
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
        onOutput: (stream, text) => {
          if (stream === 'stdout') demux.write(text);
          else {
            demux.flush();
            io.stream('stderr', text);
          }
        },
        onVersionMismatch: (pkg, local, remote) =>
          this.warnOnce(io, `tslab-remote: package ${pkg} is ${remote ?? 'not installed'} on ${agent!.name}, ${local} here\n`),
        signal: cell.signal,
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
        if (await cell.interrupted()) throw keyboardInterrupt(`interrupted as the call ended on ${agent.name}: its result is dropped`);
        return value;
      } finally {
        demux.flush();
        elapsed.stop();
      }
    } catch (error) {
      throw this.failure(error, { call: { entry, wrapped: entry !== fn, root, context }, agent, cell });
    }
  }

  /** The snapshot on the agent: checked and uploaded once per agent; progress shows when it takes a moment. */
  private async ensureUploaded(agent: Agent, snap: SnapshotResult, io: CellIO, cell: CellInterrupt): Promise<void> {
    if (agent.ready.has(snap.hash)) return;
    const progress = new ProgressDisplay(io, agent.name);
    let report;
    try {
      const upload = agent.client.upload(snap, {
        onProgress: (p) => progress.update(`uploading to ${agent.name}: ${formatBytes(p.sentBytes)} of ${formatBytes(p.totalBytes)}`, p.sentBytes / Math.max(1, p.totalBytes)),
        signal: cell.signal, // an interrupted upload stops before its next batch
      });
      report = await cell.during(`uploading the code root to ${agent.name}`, upload);
    } catch (error) {
      progress.done(cell.signal.aborted ? 'upload interrupted' : 'upload failed');
      throw error;
    }
    progress.done(report.filesSent > 0 ? `uploaded ${report.filesSent} file(s), ${formatBytes(report.bytesSent)} to ${agent.name}` : undefined);
    agent.ready.add(snap.hash);
  }

  /** A path the user typed in a magic: `~/` is the home directory (no shell expands it), relative is to the notebook. */
  private userPath(typed: string): string {
    const home = typed === '~' || typed.startsWith('~/') ? os.homedir() + typed.slice(1) : typed;
    return path.resolve(this.notebookDir, home);
  }

  private cwdIn(root: string): string | undefined {
    // undefined: the snapshot's root (the notebook lies outside the code root)
    const rel = path.relative(root, this.notebookDir);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
    return rel.split(path.sep).join('/');
  }

  private warnOnce(io: CellIO, text: string): void {
    if (this.warned.has(text)) return;
    this.warned.add(text);
    io.stream('stderr', text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Any failure of a call as the cell's error: name, message, and a stack mapped to cells and the user's files. */
  private failure(
    error: unknown,
    where: { call?: { entry: () => unknown; wrapped: boolean; root?: string; context: CallContext }; agent?: Agent; cell?: CellInterrupt },
  ): CellFailure {
    if (error instanceof CellFailure) return error;
    // The call's own abort: the interrupt came after the last check, while it was pickled, and it was not sent.
    if (error instanceof AbortError && where.cell?.signal.aborted) return where.cell.error('the call was pickled');
    if (error instanceof RemoteError) {
      const call = where.call;
      if (error.code === 'REMOTE_EXCEPTION' && call) {
        let program: string | undefined | null = null;
        const mapper = {
          history: call.context.history,
          ownFunctions: OWN_FUNCTIONS,
          program: () => {
            if (program === null) program = recoverCallProgram(call.entry, call.context.locals, call.root, this.notebookDir);
            return program;
          },
        };
        return new CellFailure(remoteExceptionError(error, (stack) => mapRemoteStack(stack, mapper)));
      }
      const agentName = !where.agent ? 'the agent' : where.agent.private ? 'this machine, where the private agent runs' : where.agent.name;
      const hint = ERROR_HINTS[error.code]?.(agentName);
      const ename = error.code === 'CANCELLED' && where.cell?.signal.aborted ? 'KeyboardInterrupt' : error.name;
      return new CellFailure({
        ename,
        evalue: error.message,
        traceback: [`${ename}: ${error.message}`, ...(hint ? [hint] : [])],
      });
    }
    if (error instanceof PickleError) {
      // With the display wrapper the path passes through it (`the cell → captured fn → ...`): leave that step out.
      const own = error.path.slice(0, 2).join(' → ');
      const message =
        where.call?.wrapped && error.path[1] === 'captured fn' && error.message.startsWith(own)
          ? `${[error.path[0], ...error.path.slice(2)].join(' → ')}${error.message.slice(own.length)}`
          : error.message;
      return new CellFailure({
        ename: 'PickleError',
        evalue: message,
        traceback: [`PickleError: ${message}`, 'Nothing was sent to the agent.'],
      });
    }
    if (error instanceof SnapshotError) {
      return new CellFailure({ ename: 'SnapshotError', evalue: error.message, traceback: [`SnapshotError: ${error.message}`] });
    }
    const err = error instanceof Error ? error : new Error(String(error));
    return new CellFailure({ ename: err.name, evalue: err.message, traceback: [`${err.name}: ${err.message}`] });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.agents.values()].map(closeAgent));
    this.agents.clear();
    this.current = undefined;
  }
}

const ERROR_HINTS: Partial<Record<string, (agent: string) => string>> = {
  AGENT_UNREACHABLE: (agent) => `The kernel is fine: start or reach ${agent} again (see %remote_agent), then run the cell again.`,
  AGENT_RESTARTED: () => 'The agent restarted and lost the call; run the cell again.',
  WORKER_CRASHED: () => 'The worker process died (it was restarted); module state on it was lost. Run the cell again.',
  MODULE_NOT_INSTALLED: (agent) => `Install it where the message says (on ${agent}), then run the cell again.`,
  TIMEOUT: () => 'Give it more time with %remote --timeout SECONDS.',
  AUTH_FAILED: () => 'Check the key directory given to %remote_agent --key (kernel.key, kernel.pub, agent.pub).',
  CANCELLED: () => 'The call was cancelled on the agent (the message says whether its worker kept its state); the next call works.',
};

function remoteExceptionError(error: RemoteError, mapStack: (stack: string) => string): { ename: string; evalue: string; traceback: string[] } {
  const lines: string[] = [];
  let depth = 0;
  for (let e: RemoteError | undefined = error; e && depth < 8; e = e.cause instanceof RemoteError ? e.cause : undefined, depth++) {
    const head = `${e.remoteName}: ${e.message}`;
    const frames = (e.remoteStack ?? '').split('\n').filter((line) => /^\s+at /.test(line)).join('\n');
    const mapped = frames ? mapStack(frames) : '';
    lines.push(...(depth > 0 ? [`Caused by: ${head}`] : [head]), ...(mapped ? mapped.split('\n') : []));
    if (depth === 0 && Object.keys(e.props).length > 0) lines.push(`  properties: ${plainText(e.props).replace(/\n/g, '\n  ')}`);
  }
  return { ename: error.remoteName, evalue: error.message, traceback: lines };
}

/** The call's generated program, from a fresh pickle of the same call (see stack-map.ts). */
function recoverCallProgram(entry: () => unknown, locals: Record<string, unknown>, root: string | undefined, notebookDir: string): string | undefined {
  try {
    const frames = pickleCall(entry, [], { locals, ...(root !== undefined ? { codeRoot: root } : {}) });
    return recoverProgram((filename) => unpickle(frames, { requireModule: requireLoaded(root ?? notebookDir), filename }));
  } catch {
    return undefined;
  }
}

function startCall(client: AgentClient, fn: () => unknown, options: CallOptions): RunningJob<unknown> {
  return client.call<unknown>(fn, [], options);
}

function readCurve(keyPath: string): ClientCurve {
  // DIR with kernel.key, kernel.pub and agent.pub; or the agent's .pub file, with the kernel's pair beside it.
  if (!fs.existsSync(keyPath)) {
    throw new CellFailure({
      ename: 'UsageError',
      evalue: `--key ${keyPath} does not exist: give a directory holding kernel.key, kernel.pub and agent.pub (remote-agent keygen makes them), or the agent's .pub file`,
      traceback: [],
    });
  }
  const isDir = fs.statSync(keyPath).isDirectory();
  const dir = isDir ? keyPath : path.dirname(keyPath);
  const agentPub = isDir ? path.join(dir, 'agent.pub') : keyPath;
  const pair = readKeyPair(dir, 'kernel');
  return { serverKey: readKeyFile(agentPub), publicKey: pair.publicKey, secretKey: pair.secretKey };
}

function nonNegative(text: string | undefined): number | undefined {
  const value = text === undefined || text === '' ? NaN : Number(text);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** A connected agent is taken as alive; a private one, while its process runs. */
function isAlive(agent: Agent): boolean {
  return !agent.private || (agent.private.process.exitCode === null && agent.private.process.signalCode === null);
}

function describeExit(agent: LocalAgent): string {
  const { exitCode, signalCode } = agent.process;
  return signalCode ? `killed by ${signalCode}` : `exit code ${exitCode}`;
}

async function closeAgent(agent: Agent): Promise<void> {
  await agent.client.close().catch(() => undefined);
  await agent.private?.stop().catch(() => undefined);
}

/** Upload progress in the cell: one display line, updated in place, shown only once the upload takes a moment. */
class ProgressDisplay {
  private readonly started = Date.now();
  private shown = false;
  private readonly id = `tslab-remote-upload-${Math.random().toString(16).slice(2)}`;
  private last: string;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly io: CellIO,
    agent: string,
  ) {
    this.last = `uploading the code root to ${agent}`;
    // Shown even before the first batch is through, once the upload takes a moment.
    this.timer = setTimeout(() => this.show(`${this.last}…`), PROGRESS_AFTER_MS);
    this.timer.unref();
  }

  update(text: string, fraction: number): void {
    this.last = text;
    if (!this.shown && Date.now() - this.started < PROGRESS_AFTER_MS) return;
    this.show(`${text} (${Math.round(fraction * 100)}%)`);
  }

  done(text: string | undefined): void {
    clearTimeout(this.timer);
    if (!this.shown && Date.now() - this.started < PROGRESS_AFTER_MS) return;
    this.show(`${text ?? this.last} in ${((Date.now() - this.started) / 1000).toFixed(1)} s`);
  }

  private show(text: string): void {
    this.io.display({ data: { 'text/plain': text }, metadata: {}, transient: { display_id: this.id } }, this.shown);
    this.shown = true;
  }
}

/** Elapsed time for calls that run longer than a few seconds, updated every second, final time at the end. */
class ElapsedDisplay {
  private readonly timer: NodeJS.Timeout;
  private shown = false;
  private readonly id = `tslab-remote-elapsed-${Math.random().toString(16).slice(2)}`;

  constructor(
    private readonly io: CellIO,
    private readonly agent: string,
    private readonly started: number,
  ) {
    this.timer = setInterval(() => {
      const ms = Date.now() - this.started;
      if (ms >= ELAPSED_AFTER_MS) this.show(`running on ${this.agent}: ${Math.floor(ms / 1000)} s`);
    }, 1_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.shown) this.show(`ran on ${this.agent} in ${((Date.now() - this.started) / 1000).toFixed(1)} s`);
  }

  private show(text: string): void {
    this.io.display({ data: { 'text/plain': text }, metadata: {}, transient: { display_id: this.id } }, this.shown);
    this.shown = true;
  }
}
