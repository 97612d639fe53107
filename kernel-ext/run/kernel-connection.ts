// A tslab-remote kernel process started for a run, and the Jupyter client sockets to it (shell, control, iopub).

import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import * as zmq from 'zeromq';

import { SendQueue } from '../../protocol/frames';
import { CellError, CellOutputs, kernelDied } from './cell-outputs';
import { INTERRUPT_GRACE_MS, REPLY_AFTER_IDLE_MS, StopReason, stopReason, within } from './cell-deadlines';
import { KernelAddress, spawnKernel } from './kernel-process';
import { BadMessageError, decodeJupyter, encodeJupyter, Message } from './jupyter-wire';
import { NotebookOutput, RunError } from './notebook';

export interface ExecuteResult {
  executionCount: number | null;
  outputs: NotebookOutput[];
  /**
   * The execute_reply's status; for an interrupted cell the kernel did not end, 'unanswered' (INTERRUPT_GRACE_MS
   * passed) or 'died' (the kernel exited first).
   */
  status: string;
  error?: CellError;
  /** Set when the cell was interrupted. */
  stopped?: StopReason;
}

interface Pending {
  resolve(message: Message | undefined): void;
  reject(error: Error): void;
}

/** A kernel process and the client sockets to it. */
export class KernelConnection {
  private readonly session = randomUUID();
  private readonly shell: zmq.Dealer;
  private readonly control: zmq.Dealer;
  private readonly iopub: zmq.Subscriber;
  private readonly queues: Map<zmq.Dealer, SendQueue>;
  private readonly replies = new Map<string, Pending>();
  private readonly listeners = new Map<string, (message: Message) => void>();
  private exited = false;
  /** How the kernel process ended ("exit code 3", "signal SIGKILL"), once it has. */
  private ending = '';
  private stderr = '';
  private closed = false;
  /** Why the connection cannot go on (a message that does not parse, a send that failed): every wait fails with it. */
  private broken?: Error;

  private constructor(
    private readonly child: ChildProcess,
    private readonly connection: KernelAddress,
    private readonly tmpDir: string,
  ) {
    this.shell = new zmq.Dealer({ routingId: `run-${randomBytes(4).toString('hex')}`, linger: 0 });
    this.control = new zmq.Dealer({ linger: 0 });
    this.iopub = new zmq.Subscriber({ linger: 0 });
    this.queues = new Map([this.shell, this.control].map((socket) => [socket, new SendQueue(socket)]));
    this.shell.connect(`tcp://${connection.ip}:${connection.shell_port}`);
    this.control.connect(`tcp://${connection.ip}:${connection.control_port}`);
    this.iopub.connect(`tcp://${connection.ip}:${connection.iopub_port}`);
    this.iopub.subscribe();
    void this.receive(this.shell, 'shell', (m) => this.replies.get(m.parent_header.msg_id ?? '')?.resolve(m));
    void this.receive(this.control, 'control', (m) => this.replies.get(m.parent_header.msg_id ?? '')?.resolve(m));
    void this.receive(this.iopub, 'iopub', (m) => this.listeners.get(m.parent_header.msg_id ?? '')?.(m));
    child.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    child.once('exit', (code, signal) => {
      this.exited = true;
      this.ending = signal ? `signal ${signal}` : `exit code ${code}`;
      for (const reply of this.replies.values()) reply.resolve(this.died());
    });
  }

  /** What a reply awaited from a kernel that exited is. */
  private died(): Message {
    const error = new Error(
      `the kernel exited unexpectedly (${this.ending})${this.stderr ? `; its log:\n${this.stderr}` : ''}`,
    );
    return {
      header: { msg_id: '', msg_type: 'kernel_died', session: '' },
      parent_header: {},
      metadata: {},
      content: { error },
    };
  }

  /**
   * Starts `tslab-remote kernel` in `cwd` with a fresh connection file and waits until it answers. Aborting
   * options.killSignal kills it.
   */
  static async start(
    cwd: string,
    options: { agent?: string; env?: NodeJS.ProcessEnv; signal?: AbortSignal; killSignal?: AbortSignal } = {},
  ): Promise<KernelConnection> {
    const { child, connection, tmpDir } = await spawnKernel(cwd, options);
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
      if (this.exited)
        throw new RunError(`the kernel exited (${this.ending}) before it answered; its log:\n${this.stderr}`);
      const id = this.send(this.shell, 'kernel_info_request', {});
      let sawIopub = false;
      this.listeners.set(id, () => (sawIopub = true));
      const reply = await this.waitReply(id, { timeoutMs: 1_000 });
      if (reply) {
        const until = Date.now() + 500;
        while (!sawIopub && Date.now() < until) await sleep(20);
      }
      this.listeners.delete(id);
      if (reply && sawIopub) return;
    }
    throw new RunError(
      `the kernel did not answer within ${timeoutMs / 1000} s, so it was shut down; its log:\n${this.stderr}`,
    );
  }

  /**
   * Runs one cell; resolves when its execute_reply and its idle status have both arrived. A cell past timeoutMs, or
   * when options.signal aborts, is interrupted: the result then says so and holds the outputs received until the
   * kernel ended the cell, or until INTERRUPT_GRACE_MS passed without that (status 'unanswered'), or until the kernel
   * exited (status 'died'). A reply that does not come within REPLY_AFTER_IDLE_MS of the cell's idle status is lost:
   * a RunError.
   */
  async execute(
    code: string,
    options: { stopOnError: boolean; timeoutMs?: number; signal?: AbortSignal },
    onOutput: ConstructorParameters<typeof CellOutputs>[0] = () => undefined,
    onStart: (count: number) => void = () => undefined,
  ): Promise<ExecuteResult> {
    const cell = new CellOutputs(onOutput, onStart);
    const id = randomUUID();
    this.listeners.set(id, (message) => cell.handle(message));
    const deadBefore = this.exited;
    const lost = new AbortController();
    try {
      this.send(
        this.shell,
        'execute_request',
        {
          code,
          silent: false,
          store_history: true,
          user_expressions: {},
          allow_stdin: false,
          stop_on_error: options.stopOnError,
        },
        id,
      );
      const replied = this.waitReply(id, {
        until: cell.idle.then(() => sleep(REPLY_AFTER_IDLE_MS, undefined, { signal: lost.signal })),
      });
      const stopped = await stopReason(replied, options.timeoutMs, options.signal);
      if (stopped) this.interrupt();
      const reply = stopped ? await within(replied, INTERRUPT_GRACE_MS) : await replied;
      const result = (status: string): ExecuteResult => ({
        executionCount: cell.executionCount,
        outputs: cell.outputs,
        status,
        ...(cell.error ? { error: cell.error } : {}),
        ...(stopped ? { stopped } : {}),
      });
      // Stopped, a kernel that died or never answered leaves the outputs so far: the caller shuts it down.
      if (stopped && (!reply || reply.header.msg_type === 'kernel_died')) {
        this.replies.delete(id);
        return result(reply ? 'died' : 'unanswered');
      }
      if (!reply)
        throw new RunError(
          `the kernel ended the cell (status idle) but its execute_reply did not come within ${REPLY_AFTER_IDLE_MS / 1000} s: it was lost`,
        );
      if (reply.header.msg_type === 'kernel_died') {
        // The cell ended the kernel (process.exit, a crash): its error, in the notebook too.
        cell.fail(kernelDied(this.ending, this.stderr, deadBefore));
        return result('died');
      }
      await Promise.race([cell.idle, sleep(5_000, undefined, { signal: lost.signal })]);
      const status = reply.content.status as string;
      cell.executionCount ??= (reply.content.execution_count as number | undefined) ?? null;
      if (status === 'error' && !cell.error) {
        cell.fail({
          ename: reply.content.ename as string,
          evalue: reply.content.evalue as string,
          traceback: (reply.content.traceback as string[]) ?? [],
        });
      }
      return result(status);
    } finally {
      lost.abort(); // the timers of the deadlines end with the cell
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
      // A broken connection still shuts the kernel down: by signal, below.
      await this.waitReply(id, { timeoutMs: 3_000 }).catch(() => undefined);
      const exited = new Promise<void>((resolve) =>
        this.exited ? resolve() : this.child.once('exit', () => resolve()),
      );
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

  /**
   * The reply to `id`; undefined after `timeoutMs`, or once `until` resolves, whichever comes first. Rejects when the
   * connection broke.
   */
  private waitReply(
    id: string,
    deadline: { timeoutMs: number } | { until: Promise<unknown> },
  ): Promise<Message | undefined> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.exited) return Promise.resolve(this.died()); // it died between cells: nobody would ever answer
    return new Promise((resolve, reject) => {
      const timer =
        'timeoutMs' in deadline ? setTimeout(() => pending.resolve(undefined), deadline.timeoutMs) : undefined;
      const done = (): void => {
        clearTimeout(timer);
        this.replies.delete(id);
      };
      const pending: Pending = {
        resolve: (message) => {
          done();
          resolve(message);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      this.replies.set(id, pending);
      if ('until' in deadline) {
        deadline.until.then(
          () => this.replies.get(id)?.resolve(undefined),
          () => undefined, // the deadline was called off
        );
      }
    });
  }

  /** The connection cannot go on: every wait fails with `error`, which says why. */
  private break(error: Error): void {
    if (this.closed || this.broken) return;
    this.broken = error;
    for (const reply of [...this.replies.values()]) reply.reject(error);
  }

  private send(socket: zmq.Dealer, msgType: string, content: object, id: string = randomUUID()): string {
    const header = {
      msg_id: id,
      msg_type: msgType,
      session: this.session,
      username: 'tslab-remote',
      date: new Date().toISOString(),
      version: '5.3',
    };
    this.queues
      .get(socket)!
      .send(encodeJupyter(this.connection.key, header, content))
      .catch((error: unknown) =>
        this.break(new RunError(`cannot send ${msgType} to the kernel: ${(error as Error).message}`)),
      );
    return id;
  }

  private async receive(
    socket: zmq.Dealer | zmq.Subscriber,
    channel: string,
    handle: (message: Message) => void,
  ): Promise<void> {
    try {
      for await (const frames of socket) {
        const message = decodeJupyter(this.connection.key, frames);
        if (message) handle(message);
      }
    } catch (error) {
      // Closing the socket ends the loop with an error: only a loop that ends otherwise breaks the connection.
      if (this.closed) return;
      const why =
        error instanceof BadMessageError
          ? error.message
          : `receiving on ${channel} failed: ${(error as Error).message}`;
      this.break(new RunError(why));
    }
  }
}
