// `tslab-remote run NOTEBOOK.ipynb`: executes a notebook through the kernel over the Jupyter protocol, headless, and
// prints each cell's outputs. It is a small Jupyter client written in Node on zeromq (the package the kernel uses
// already), so the batch mode needs no Python and no Jupyter install: a GPU host or a CI runner needs only Node.
// It behaves like nbclient: cells run in order with stop_on_error, a cell tagged `raises-exception` may fail,
// outputs (streams merged, display updates applied) are written back to the notebook with --output. A cell past the
// timeout, or a stop request (Ctrl-C), is interrupted the way Jupyter interrupts (SIGINT to the kernel's process
// group) and ends the run, keeping every output received so far.

import { ChildProcess, spawn } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zmq from 'zeromq';

import { BIN } from '../../common/package-info';

const DELIM = '<IDS|MSG>';
const KERNEL_BIN = BIN.tslabRemote;

export interface NotebookCell {
  cell_type: 'code' | 'markdown' | 'raw';
  source: string | string[];
  metadata: { tags?: string[]; [key: string]: unknown };
  outputs?: NotebookOutput[];
  execution_count?: number | null;
  [key: string]: unknown;
}

export type NotebookOutput =
  | { output_type: 'stream'; name: 'stdout' | 'stderr'; text: string }
  | { output_type: 'display_data'; data: Record<string, unknown>; metadata: Record<string, unknown> }
  | { output_type: 'execute_result'; execution_count: number; data: Record<string, unknown>; metadata: Record<string, unknown> }
  | { output_type: 'error'; ename: string; evalue: string; traceback: string[] };

export interface Notebook {
  cells: NotebookCell[];
  metadata: Record<string, unknown>;
  nbformat: number;
  nbformat_minor: number;
}

export interface RunOptions {
  /** TSLAB_REMOTE_AGENT for the kernel. */
  agent?: string;
  /** Keep going after a failed cell (every cell may raise). */
  allowErrors?: boolean;
  /** Per cell; default none. A cell still running then is interrupted and stops the run. */
  cellTimeoutMs?: number;
  /** Aborting it (Ctrl-C) interrupts the running cell and stops the run. */
  signal?: AbortSignal;
  /** Aborting it (a second Ctrl-C) kills the kernel at once, without waiting for the interrupted cell to end. */
  killSignal?: AbortSignal;
  /** Printing as cells run; default: to this process's stdout/stderr. */
  print?: (stream: 'stdout' | 'stderr', text: string) => void;
  /** Extra environment for the kernel. */
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  notebook: Notebook;
  /** The first cell whose error stopped the run, if any. */
  failed?: { index: number; ename: string; evalue: string };
  /** Why the run was cut short: a cell ran past cellTimeoutMs, or `signal` aborted (between cells: no index). */
  stopped?: { why: StopReason; index?: number; message: string };
}

/** What interrupted a cell: it ran past its timeout, or the caller asked to stop (Ctrl-C). */
export type StopReason = 'timeout' | 'signal';

export interface ExecuteResult {
  executionCount: number | null;
  outputs: NotebookOutput[];
  /**
   * The execute_reply's status; for an interrupted cell the kernel did not end, 'unanswered' (INTERRUPT_GRACE_MS
   * passed) or 'died' (the kernel exited first).
   */
  status: string;
  error?: { ename: string; evalue: string; traceback: string[] };
  /** Set when the cell was interrupted. */
  stopped?: StopReason;
}

/** How long an interrupted cell may take to end before the kernel is shut down under it. */
export const INTERRUPT_GRACE_MS = 15_000;

interface Message {
  header: { msg_id: string; msg_type: string; session: string; [key: string]: unknown };
  parent_header: { msg_id?: string; [key: string]: unknown };
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
}

/** A run that could not go on for a reason the user can act on (a notebook that is not one, a kernel that failed to start): its message is the whole report. */
export class RunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunError';
  }
}

export function cellSource(cell: NotebookCell): string {
  return Array.isArray(cell.source) ? cell.source.join('') : cell.source;
}

export function readNotebook(file: string): Notebook {
  let notebook: Notebook;
  try {
    notebook = JSON.parse(fs.readFileSync(file, 'utf8')) as Notebook;
  } catch (error) {
    throw new RunError(`cannot read ${file} as a notebook: ${(error as Error).message}`);
  }
  if (!Array.isArray(notebook?.cells) || notebook.nbformat !== 4) throw new RunError(`${file} is not a notebook in nbformat 4`);
  // Hand-written or trimmed notebooks may leave out what nbformat requires but a run can do without.
  notebook.metadata ??= {};
  for (const [index, cell] of notebook.cells.entries()) {
    if (typeof cell !== 'object' || cell === null || typeof cell.cell_type !== 'string' || !(typeof cell.source === 'string' || Array.isArray(cell.source))) {
      throw new RunError(`${file}: cell ${index + 1} is not a notebook cell (it needs cell_type and source)`);
    }
    cell.metadata ??= {};
  }
  return notebook;
}

/** Executes every code cell of the notebook file in a fresh kernel started in the notebook's directory. */
export async function runNotebook(file: string, options: RunOptions = {}): Promise<RunResult> {
  const notebook = readNotebook(file);
  const print = options.print ?? ((stream, text) => (stream === 'stdout' ? process.stdout : process.stderr).write(text));
  const kernel = await KernelConnection.start(path.dirname(path.resolve(file)), options);
  let failed: RunResult['failed'];
  let stopped: RunResult['stopped'];
  try {
    for (const [index, cell] of notebook.cells.entries()) {
      if (cell.cell_type !== 'code') continue;
      if (options.signal?.aborted) {
        stopped = { why: 'signal', message: 'stopped between cells' };
        break;
      }
      const source = cellSource(cell);
      cell.outputs = [];
      cell.execution_count = null;
      if (source.trim() === '') continue;
      const mayRaise = options.allowErrors || (cell.metadata.tags ?? []).includes('raises-exception');
      const result = await kernel.execute(source, { stopOnError: !mayRaise, timeoutMs: options.cellTimeoutMs, signal: options.signal }, (output) => {
        printOutput(output, print);
      }, (count) => print('stdout', `\nIn [${count}]: ${source.split('\n').join('\n   ...: ')}\n`));
      cell.execution_count = result.executionCount;
      cell.outputs = result.outputs;
      if (result.stopped) {
        stopped = stopOf(result, cellLabel(cell, index), index, options.cellTimeoutMs, options.killSignal?.aborted ?? false);
        // The kernel's own error says the cell was interrupted; ours says why a timeout did, or what the kernel could not.
        if (result.stopped === 'timeout' || unended(result.status, false)) cell.outputs.push(stopError(result.stopped, stopped.message));
        break;
      }
      if (result.error && (result.status === 'died' || !mayRaise)) {
        failed = { index, ename: result.error.ename, evalue: result.error.evalue };
        break;
      }
    }
  } finally {
    await kernel.shutdown();
  }
  notebook.metadata.kernelspec = { name: 'tslab-remote', display_name: 'TypeScript (remote)', language: 'typescript' };
  return { notebook, ...(failed ? { failed } : {}), ...(stopped ? { stopped } : {}) };
}

/** "cell 3 (%remote train())": the cell's number among all cells and the first line of its source. */
export function cellLabel(cell: NotebookCell, index: number): string {
  const line = cellSource(cell).trim().split('\n')[0]!.trim();
  return `cell ${index + 1} (${line.length > 60 ? `${line.slice(0, 59)}…` : line})`;
}

function stopOf(result: ExecuteResult, label: string, index: number, timeoutMs: number | undefined, killed: boolean): NonNullable<RunResult['stopped']> {
  const why = result.stopped!;
  const ending = unended(result.status, killed);
  const message = why === 'timeout'
    ? `${label} did not finish within ${(timeoutMs ?? 0) / 1000} s: interrupted it${ending}; use --timeout to allow longer`
    : `interrupted ${label}${ending}`;
  return { why, index, message };
}

/** What became of an interrupted cell the kernel did not end; '' when it did. */
function unended(status: string, killed: boolean): string {
  if (status === 'unanswered') return `, but it did not end within ${INTERRUPT_GRACE_MS / 1000} s, so the kernel was shut down`;
  if (status === 'died') return killed ? ', then killed the kernel before the cell ended' : ', and the kernel exited before it ended the cell';
  return '';
}

/** The error of a cell during which the kernel process ended, with the end of its log. */
function kernelDied(ending: string, log: string, before: boolean): { ename: string; evalue: string; traceback: string[] } {
  const when = before ? 'before the cell could run' : 'while the cell ran';
  const evalue = `the kernel exited (${ending}) ${when}; the cells after it did not run`;
  const tail = log.trim().split('\n').slice(-KERNEL_LOG_LINES);
  return { ename: 'KernelDied', evalue, traceback: [`KernelDied: ${evalue}`, ...(tail[0] ? ['the kernel\'s last log lines:', ...tail] : [])] };
}

const KERNEL_LOG_LINES = 20;

/** The error output that says, in the written notebook, why the cell ended. */
function stopError(why: StopReason, message: string): NotebookOutput {
  const ename = why === 'timeout' ? 'CellTimeoutError' : 'KeyboardInterrupt';
  return { output_type: 'error', ename, evalue: message, traceback: [`${ename}: ${message}`] };
}

function printOutput(output: NotebookOutput, print: (stream: 'stdout' | 'stderr', text: string) => void): void {
  switch (output.output_type) {
    case 'stream':
      print(output.name, output.text);
      return;
    case 'display_data':
      print('stdout', `${displayText(output.data)}\n`);
      return;
    case 'execute_result':
      print('stdout', `Out[${output.execution_count}]: ${displayText(output.data)}\n`);
      return;
    case 'error':
      print('stderr', `${output.traceback.join('\n')}\n`);
      return;
  }
}

/** Printed outputs longer than this many lines are shortened (the notebook written with --output keeps them whole). */
const MAX_PRINTED_LINES = 30;

function displayText(data: Record<string, unknown>): string {
  const text = data['text/plain'];
  if (typeof text === 'string') {
    const lines = text.split('\n');
    if (lines.length <= MAX_PRINTED_LINES) return text;
    return [...lines.slice(0, MAX_PRINTED_LINES - 5), `  … ${lines.length - MAX_PRINTED_LINES + 1} more lines …`, ...lines.slice(-4)].join('\n');
  }
  const kinds = Object.keys(data);
  return `[${kinds.join(', ')}]`;
}

/** A kernel process and the client sockets to it. */
export class KernelConnection {
  private readonly session = randomUUID();
  private readonly shell: zmq.Dealer;
  private readonly control: zmq.Dealer;
  private readonly iopub: zmq.Subscriber;
  private readonly replies = new Map<string, (message: Message) => void>();
  /** zeromq allows one send in flight per socket: later sends wait for the earlier ones. */
  private readonly sending = new Map<zmq.Dealer, Promise<void>>();
  private readonly listeners = new Map<string, (message: Message) => void>();
  private exited = false;
  /** How the kernel process ended ("exit code 3", "signal SIGKILL"), once it has. */
  private ending = '';
  private stderr = '';
  private closed = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly connection: { key: string; ip: string; shell_port: number; iopub_port: number; control_port: number },
    private readonly tmpDir: string,
  ) {
    this.shell = new zmq.Dealer({ routingId: `run-${randomBytes(4).toString('hex')}`, linger: 0 });
    this.control = new zmq.Dealer({ linger: 0 });
    this.iopub = new zmq.Subscriber({ linger: 0 });
    this.shell.connect(`tcp://${connection.ip}:${connection.shell_port}`);
    this.control.connect(`tcp://${connection.ip}:${connection.control_port}`);
    this.iopub.connect(`tcp://${connection.ip}:${connection.iopub_port}`);
    this.iopub.subscribe();
    void this.receive(this.shell, (m) => this.replies.get(m.parent_header.msg_id ?? '')?.(m));
    void this.receive(this.control, (m) => this.replies.get(m.parent_header.msg_id ?? '')?.(m));
    void this.receive(this.iopub, (m) => this.listeners.get(m.parent_header.msg_id ?? '')?.(m));
    child.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    child.once('exit', (code, signal) => {
      this.exited = true;
      this.ending = signal ? `signal ${signal}` : `exit code ${code}`;
      for (const reply of this.replies.values()) reply(this.died());
    });
  }

  /** What a reply awaited from a kernel that exited is. */
  private died(): Message {
    const error = new Error(`the kernel exited unexpectedly (${this.ending})${this.stderr ? `; its log:\n${this.stderr}` : ''}`);
    return { header: { msg_id: '', msg_type: 'kernel_died', session: '' }, parent_header: {}, metadata: {}, content: { error } };
  }

  /**
   * Starts `tslab-remote kernel` in `cwd` with a fresh connection file and waits until it answers. Aborting
   * options.killSignal kills it.
   */
  static async start(cwd: string, options: { agent?: string; env?: NodeJS.ProcessEnv; signal?: AbortSignal; killSignal?: AbortSignal } = {}): Promise<KernelConnection> {
    const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tslab-remote-run-'));
    const ports = await freePorts(5);
    const connection = {
      transport: 'tcp',
      ip: '127.0.0.1',
      shell_port: ports[0]!,
      iopub_port: ports[1]!,
      stdin_port: ports[2]!,
      control_port: ports[3]!,
      hb_port: ports[4]!,
      key: randomBytes(32).toString('hex'),
      signature_scheme: 'hmac-sha256',
      kernel_name: 'tslab-remote',
    };
    const configPath = path.join(tmpDir, 'kernel.json');
    fs.writeFileSync(configPath, JSON.stringify(connection), { mode: 0o600 });
    // JPY_PARENT_PID, as jupyter_client sets it: the kernel ends itself if this process dies without stopping it.
    const env = { ...process.env, ...options.env, JPY_PARENT_PID: String(process.pid), ...(options.agent ? { TSLAB_REMOTE_AGENT: options.agent } : {}) };
    // A process group of its own, as jupyter_client starts kernels: a Ctrl-C at the terminal reaches this process
    // only, which interrupts the kernel itself (once, and knowing it did), and the interrupt reaches the kernel only.
    const child = spawn(process.execPath, [KERNEL_BIN, 'kernel', '--config-path', configPath], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    const kernel = new KernelConnection(child, connection, tmpDir);
    const kill = (): void => kernel.kill();
    options.killSignal?.addEventListener('abort', kill, { once: true });
    child.once('exit', () => options.killSignal?.removeEventListener('abort', kill));
    if (options.killSignal?.aborted) kill();
    try {
      await kernel.waitReady(options.signal);
    } catch (error) {
      // A kernel that never answered is not left running; one stopped while it started has run nothing: no need to
      // ask it to shut down (it would not answer yet either).
      if (options.signal?.aborted) kernel.kill();
      await kernel.shutdown();
      throw error;
    }
    return kernel;
  }

  private async waitReady(signal?: AbortSignal, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    // kernel_info until both the reply and its iopub status arrive: then iopub is subscribed (no slow-joiner loss).
    while (Date.now() < deadline) {
      if (signal?.aborted) throw new RunError('stopped while the kernel started');
      if (this.exited) throw new RunError(`the kernel exited (${this.ending}) before it answered; its log:\n${this.stderr}`);
      const id = this.send(this.shell, 'kernel_info_request', {});
      let sawIopub = false;
      this.listeners.set(id, () => (sawIopub = true));
      const reply = await this.waitReply(id, 1_000);
      if (reply) {
        const until = Date.now() + 500;
        while (!sawIopub && Date.now() < until) await sleep(20);
      }
      this.listeners.delete(id);
      if (reply && sawIopub) return;
    }
    throw new RunError(`the kernel did not answer within ${timeoutMs / 1000} s, so it was shut down; its log:\n${this.stderr}`);
  }

  /**
   * Runs one cell; resolves when its execute_reply and its idle status have both arrived. A cell past timeoutMs, or
   * when options.signal aborts, is interrupted: the result then says so and holds the outputs received until the
   * kernel ended the cell, or until INTERRUPT_GRACE_MS passed without that (status 'unanswered'), or until the kernel
   * exited (status 'died').
   */
  async execute(
    code: string,
    options: { stopOnError: boolean; timeoutMs?: number; signal?: AbortSignal },
    onOutput: (output: NotebookOutput) => void = () => undefined,
    onStart: (count: number) => void = () => undefined,
  ): Promise<ExecuteResult> {
    const outputs: NotebookOutput[] = [];
    const displays = new Map<string, number[]>();
    let idle!: () => void;
    const idleSeen = new Promise<void>((resolve) => (idle = resolve));
    let executionCount: number | null = null;
    let error: { ename: string; evalue: string; traceback: string[] } | undefined;
    const push = (output: NotebookOutput): void => {
      const last = outputs[outputs.length - 1];
      if (output.output_type === 'stream' && last?.output_type === 'stream' && last.name === output.name) last.text += output.text;
      else outputs.push(output);
      onOutput(output);
    };
    const id = this.newId();
    this.listeners.set(id, (message) => {
      const c = message.content;
      switch (message.header.msg_type) {
        case 'execute_input':
          executionCount = c.execution_count as number;
          onStart(executionCount);
          break;
        case 'stream':
          push({ output_type: 'stream', name: c.name as 'stdout' | 'stderr', text: c.text as string });
          break;
        case 'display_data': {
          const output: NotebookOutput = { output_type: 'display_data', data: c.data as Record<string, unknown>, metadata: (c.metadata as Record<string, unknown>) ?? {} };
          const displayId = (c.transient as { display_id?: string } | undefined)?.display_id;
          if (displayId) displays.set(displayId, [...(displays.get(displayId) ?? []), outputs.length]);
          push(output);
          break;
        }
        case 'update_display_data': {
          const displayId = (c.transient as { display_id?: string } | undefined)?.display_id;
          for (const index of displayId ? (displays.get(displayId) ?? []) : []) {
            const target = outputs[index];
            if (target && target.output_type === 'display_data') {
              target.data = c.data as Record<string, unknown>;
              target.metadata = (c.metadata as Record<string, unknown>) ?? {};
            }
          }
          if (displayId && displays.has(displayId)) onOutput({ output_type: 'display_data', data: c.data as Record<string, unknown>, metadata: {} });
          break;
        }
        case 'execute_result':
          push({ output_type: 'execute_result', execution_count: c.execution_count as number, data: c.data as Record<string, unknown>, metadata: (c.metadata as Record<string, unknown>) ?? {} });
          break;
        case 'error':
          error = { ename: c.ename as string, evalue: c.evalue as string, traceback: c.traceback as string[] };
          push({ output_type: 'error', ...error });
          break;
        case 'clear_output':
          outputs.length = 0;
          break;
        case 'status':
          if (c.execution_state === 'idle') idle();
          break;
      }
    });
    const deadBefore = this.exited;
    try {
      this.send(this.shell, 'execute_request', { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: options.stopOnError }, id);
      const replied = this.waitReply(id);
      const stopped = await stopReason(replied, options.timeoutMs, options.signal);
      if (stopped) this.interrupt();
      const reply = stopped ? await within(replied, INTERRUPT_GRACE_MS) : await replied;
      // Stopped, a kernel that died or never answered leaves the outputs so far: the caller shuts it down.
      if (!reply || (stopped && reply.header.msg_type === 'kernel_died')) {
        this.replies.delete(id);
        return { executionCount, outputs, status: reply ? 'died' : 'unanswered', ...(error ? { error } : {}), stopped: stopped! };
      }
      if (reply.header.msg_type === 'kernel_died') {
        // The cell ended the kernel (process.exit, a crash): its error, in the notebook too.
        error = kernelDied(this.ending, this.stderr, deadBefore);
        push({ output_type: 'error', ...error });
        return { executionCount, outputs, status: 'died', error };
      }
      await Promise.race([idleSeen, sleep(5_000)]);
      const status = reply.content.status as string;
      executionCount ??= (reply.content.execution_count as number | undefined) ?? null;
      if (status === 'error' && !error) {
        error = { ename: reply.content.ename as string, evalue: reply.content.evalue as string, traceback: (reply.content.traceback as string[]) ?? [] };
        push({ output_type: 'error', ...error });
      }
      return { executionCount, outputs, status, ...(error ? { error } : {}), ...(stopped ? { stopped } : {}) };
    } finally {
      this.listeners.delete(id);
    }
  }

  /** The kernel's process id. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** SIGINT to the kernel's process group, as Jupyter's interrupt does (the kernelspec's interrupt_mode: signal). */
  interrupt(): void {
    this.signalGroup('SIGINT');
  }

  /** SIGKILL to the kernel's process group; its private agent, in a group of its own, ends with it. */
  kill(): void {
    this.signalGroup('SIGKILL');
  }

  private signalGroup(signal: NodeJS.Signals): void {
    if (this.exited || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error; // exited meanwhile
    }
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.exited) {
      const id = this.send(this.control, 'shutdown_request', { restart: false });
      await this.waitReply(id, 3_000);
      const exited = new Promise<void>((resolve) => (this.exited ? resolve() : this.child.once('exit', () => resolve())));
      const timer = setTimeout(() => this.signalGroup('SIGTERM'), 5_000);
      const killer = setTimeout(() => this.kill(), 10_000);
      await exited;
      clearTimeout(timer);
      clearTimeout(killer);
    }
    this.shell.close();
    this.control.close();
    this.iopub.close();
    fs.rmSync(this.tmpDir, { recursive: true, force: true });
  }

  private waitReply(id: string, timeoutMs?: number): Promise<Message | undefined> {
    if (this.exited) return Promise.resolve(this.died()); // it died between cells: nobody would ever answer
    return new Promise((resolve) => {
      const timer = timeoutMs ? setTimeout(() => finish(undefined), timeoutMs) : undefined;
      const finish = (message: Message | undefined): void => {
        if (timer) clearTimeout(timer);
        this.replies.delete(id);
        resolve(message);
      };
      this.replies.set(id, finish);
    });
  }

  private newId(): string {
    return randomUUID();
  }

  private send(socket: zmq.Dealer, msgType: string, content: object, id = this.newId()): string {
    const header = { msg_id: id, msg_type: msgType, session: this.session, username: 'tslab-remote', date: new Date().toISOString(), version: '5.3' };
    const parts = [header, {}, {}, content].map((part) => JSON.stringify(part));
    const hmac = createHmac('sha256', this.connection.key);
    for (const part of parts) hmac.update(part);
    const frames = [DELIM, hmac.digest('hex'), ...parts];
    const previous = this.sending.get(socket) ?? Promise.resolve();
    this.sending.set(socket, previous.then(() => socket.send(frames)).catch(() => undefined));
    return id;
  }

  private async receive(socket: zmq.Dealer | zmq.Subscriber, handle: (message: Message) => void): Promise<void> {
    try {
      for await (const frames of socket) {
        const at = frames.findIndex((frame) => frame.toString() === DELIM);
        if (at < 0 || frames.length < at + 6) continue;
        const signature = frames[at + 1]!.toString();
        const hmac = createHmac('sha256', this.connection.key);
        for (const frame of frames.slice(at + 2, at + 6)) hmac.update(frame);
        if (hmac.digest('hex') !== signature) continue;
        const [header, parent, metadata, content] = frames.slice(at + 2, at + 6).map((f) => JSON.parse(f.toString()) as Record<string, unknown>);
        handle({ header: header as Message['header'], parent_header: parent as Message['parent_header'], metadata: metadata!, content: content! });
      }
    } catch {
      // closed
    }
  }
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<net.Server>((resolve) => {
      const server = net.createServer();
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Why a cell must be interrupted: 'timeout' after timeoutMs, 'signal' once `signal` aborts; undefined once `done` settles first. */
function stopReason(done: Promise<unknown>, timeoutMs: number | undefined, signal: AbortSignal | undefined): Promise<StopReason | undefined> {
  if (signal?.aborted) return Promise.resolve('signal');
  return new Promise((resolve) => {
    const timer = timeoutMs ? setTimeout(() => finish('timeout'), timeoutMs) : undefined;
    const onAbort = (): void => finish('signal');
    const finish = (why: StopReason | undefined): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(why);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    void done.then(() => finish(undefined));
  });
}

/** `promise`'s value, or undefined when it takes longer than `ms` (the timer cleared either way: no late wake-up). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
