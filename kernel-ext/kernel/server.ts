// The Jupyter side: tslab's ZmqServer (sockets, signing, kernel_info, completion, inspection, is_complete, shutdown)
// with execution replaced where tslab cuts corners:
//
//   - `stop_on_error` is honoured. tslab aborts every request that arrives within 200 ms after a failed cell, so a
//     client that runs a notebook with errors allowed (nbclient, papermill) loses the cells after an error. Here a
//     failed cell aborts only the requests already queued behind it, and only when its own request asked for that
//     (`stop_on_error`, true by default, as in ipykernel).
//   - `execute_input` is published, with the execution count; silent requests and store_history=false do not
//     count, as the messaging spec says.
//   - a cell's value is an `execute_result` (tslab console.logs it), failures are `error` messages with ename,
//     evalue and traceback (tslab writes them to stderr), and the execute_reply carries them too.
//   - sends on each socket are serialized. tslab calls zeromq's `send` without awaiting it; when a send cannot
//     complete at once, the next one throws "Socket is busy writing" synchronously, the cell's reply is lost and
//     the client waits forever (seen after ~500 iopub messages in quick succession).

import { ZmqServer } from 'tslab/dist/jupyter';

import { CellRunner } from './cells';
import { CellFailure, CellIO, JupyterError } from './io';
import { toolingView } from './magic-tooling';
import { answerQuietly, peekType, QUIET_TYPES } from './quiet-replies';
import { DisplayData, jupyter } from './tslab-parts';
import { colouredTraceback } from './traceback-colour';

type ShellMessage = Parameters<ZmqServer['handleExecute']>[1];
type ShellSocket = Parameters<ZmqServer['handleShellMessage']>[0];

export interface ExecuteRequest {
  code: string;
  silent?: boolean;
  store_history?: boolean;
  user_expressions?: Record<string, unknown>;
  allow_stdin?: boolean;
  stop_on_error?: boolean;
}

export type ExecuteReplyContent =
  | { status: 'ok'; execution_count: number; user_expressions: Record<string, unknown>; payload: unknown[] }
  | ({ status: 'error'; execution_count: number } & JupyterError)
  | { status: 'aborted'; execution_count: number };

type Publish = (msgType: string, content: object) => void;

/** Executes requests one at a time, in arrival order, with Jupyter's rules for counts and aborts. */
export class ExecutionQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private arrived = 0;
  /** Requests that arrived before this number are aborted (a failed cell with stop_on_error). */
  private abortBelow = 0;
  private count = 0;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- kept to restore the stream and called with it as `this`
  private readonly writeStdout = process.stdout.write;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- kept to restore the stream and called with it as `this`
  private readonly writeStderr = process.stderr.write;

  constructor(private readonly cells: CellRunner) {}

  get executionCount(): number {
    return this.count;
  }

  submit(request: ExecuteRequest, publish: Publish): Promise<ExecuteReplyContent> {
    const seq = this.arrived++;
    const run = this.tail.then(() => this.execute(seq, request, publish));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async execute(seq: number, request: ExecuteRequest, publish: Publish): Promise<ExecuteReplyContent> {
    if (seq < this.abortBelow) return { status: 'aborted', execution_count: this.count };
    const silent = Boolean(request.silent);
    const store = !silent && request.store_history !== false;
    if (store) this.count++;
    const count = this.count;
    if (!silent) publish('execute_input', { code: request.code, execution_count: count });
    const io = this.route(publish, count, silent);
    try {
      await this.cells.run(request.code, count, io, store);
      return { status: 'ok', execution_count: count, user_expressions: {}, payload: [] };
    } catch (thrown) {
      const error = colouredTraceback(thrown instanceof CellFailure ? thrown.error : internalError(thrown));
      publish('error', error);
      if (request.stop_on_error !== false) this.abortBelow = this.arrived;
      return { status: 'error', execution_count: count, ...error };
    }
  }

  /**
   * Output of this request: the cell's own streams, display data and result, and (as in tslab, and the Python
   * kernel) console output that happens later, from timers, goes to the last cell that ran.
   */
  private route(publish: Publish, count: number, silent: boolean): CellIO {
    const stream = (name: 'stdout' | 'stderr', text: string): void => {
      if (text.length > 0) publish('stream', { name, text });
    };
    process.stdout.write = writerTo('stdout', stream);
    process.stderr.write = writerTo('stderr', stream);
    const display = (data: DisplayData, update: boolean): void =>
      publish(update ? 'update_display_data' : 'display_data', data);
    jupyter.lastWriteDisplayData = display;
    return {
      stream,
      display,
      result: (bundle) => {
        if (!silent) publish('execute_result', { execution_count: count, data: bundle, metadata: {} });
      },
    };
  }

  restoreStdio(): void {
    process.stdout.write = this.writeStdout;
    process.stderr.write = this.writeStderr;
  }
}

interface Sender {
  send(message: unknown): Promise<void>;
  readonly closed?: boolean;
}

/** A socket seen through serializeSends: `sent` settles once every send asked for so far is done. */
interface Serialized {
  readonly sent?: Promise<void>;
}

/**
 * One send at a time on a zeromq socket, in call order. tslab never awaits the promise `send` returns, so the
 * queued one never rejects: a failed send is reported on the kernel's stderr (the Jupyter server's log).
 */
export function serializeSends<T extends Sender>(socket: T, name: string): T {
  const send = socket.send.bind(socket);
  const stderr = process.stderr.write.bind(process.stderr);
  let tail: Promise<void> = Promise.resolve();
  const serialized = (message: unknown): Promise<void> => {
    tail = tail
      .then(() => send(message))
      .catch((error: unknown) => {
        // After the shutdown closed the sockets, late output (a timer's console.log) has nowhere to go: no news.
        if (socket.closed) return;
        stderr(`tslab-remote kernel: a message on the ${name} socket was not sent: ${(error as Error).message}\n`);
      });
    return tail;
  };
  // zeromq's sockets are sealed objects with a read-only `send`: the socket is seen through a proxy instead, whose
  // other members are the socket's own (methods bound to it, so its native code sees the real object).
  return new Proxy(socket, {
    get(target, property) {
      if (property === 'send') return serialized;
      if (property === 'sent') return tail;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function writerTo(name: 'stdout' | 'stderr', stream: (name: 'stdout' | 'stderr', text: string) => void) {
  const decoder = new TextDecoder();
  return (chunk: string | Uint8Array, encoding?: unknown, callback?: unknown): boolean => {
    stream(name, typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') process.nextTick(done);
    return true;
  };
}

function internalError(thrown: unknown): JupyterError {
  const error = thrown instanceof Error ? thrown : new Error(String(thrown));
  return {
    ename: error.name,
    evalue: error.message,
    traceback: (error.stack ?? `${error.name}: ${error.message}`).split('\n'),
  };
}

export interface KernelInfo {
  implementation: string;
  implementation_version: string;
  banner: string;
}

/** tslab's server with our execution; everything else is tslab's. */
export class KernelServer extends ZmqServer {
  private onClose?: () => void;

  constructor(
    handler: ConstructorParameters<typeof ZmqServer>[0],
    configPath: string,
    private readonly queue: ExecutionQueue,
    private readonly info: KernelInfo,
  ) {
    super(handler, configPath);
    // tslab's init() assigns the sockets; each gets a serialized send as it is assigned, before any use.
    for (const name of ['iopub', 'shell', 'control', 'stdin', 'hb'] as const) {
      let socket: unknown;
      Object.defineProperty(this, name, {
        configurable: true,
        enumerable: true,
        get: () => socket,
        set: (value: unknown) => {
          socket = serializeSends(value as Sender, name);
        },
      });
    }
  }

  /** Called once the sockets are closed after a shutdown_request. */
  whenClosed(callback: () => void): void {
    this.onClose = callback;
  }

  /** Requests tslab does not know (history, comms): answered here, without its "unknown msg_type" warning. */
  override async handleShellMessage(sock: ShellSocket, ...frames: Buffer[]): Promise<void> {
    if (!QUIET_TYPES.has(peekType(frames) ?? '')) return super.handleShellMessage(sock, ...frames);
    answerQuietly(this.connInfo.key, frames, sock, this.iopub);
  }

  override handleKernelInfo(sock: unknown, msg: ShellMessage): void {
    const reply = msg.createReply();
    reply.header.msg_type = 'kernel_info_reply';
    reply.content = { ...this.handler.handleKernel(), ...this.info };
    reply.signAndSend(this.connInfo.key, sock);
  }

  override async handleExecute(sock: unknown, msg: ShellMessage): Promise<void> {
    const publish: Publish = (msgType, content) => {
      const out = msg.createReply();
      out.header.msg_type = msgType;
      out.content = content;
      out.signAndSend(this.connInfo.key, this.iopub);
    };
    const content = await this.queue.submit(msg.content as ExecuteRequest, publish);
    const reply = msg.createReply();
    reply.header.msg_type = 'execute_reply';
    reply.content = content;
    reply.signAndSend(this.connInfo.key, sock);
  }

  /** Completion inside `%remote` and `%%remote` cells: tslab's, on the TypeScript the magic stands for. */
  override handleComplete(sock: unknown, msg: ShellMessage): void {
    const request = msg.content as { code: string; cursor_pos: number };
    if (!request.code.trimStart().startsWith('%')) return super.handleComplete(sock, msg);
    const view = toolingView(request.code, request.cursor_pos);
    const reply = msg.createReply();
    reply.header.msg_type = 'complete_reply';
    if (!view) {
      reply.content = {
        matches: [],
        cursor_start: request.cursor_pos,
        cursor_end: request.cursor_pos,
        metadata: {},
        status: 'ok',
      };
    } else {
      const found = this.handler.handleComplete({ code: view.source, cursor_pos: view.cursor });
      reply.content = {
        ...found,
        cursor_start: view.toCell(found.cursor_start),
        cursor_end: view.toCell(found.cursor_end),
      };
    }
    reply.signAndSend(this.connInfo.key, sock);
  }

  /** Inspection (hover, shift-tab) inside `%remote` and `%%remote` cells, likewise. */
  override handleInspect(sock: unknown, msg: ShellMessage): void {
    const request = msg.content as { code: string; cursor_pos: number; detail_level: 0 | 1 };
    if (!request.code.trimStart().startsWith('%')) return super.handleInspect(sock, msg);
    const view = toolingView(request.code, request.cursor_pos);
    const reply = msg.createReply();
    reply.header.msg_type = 'inspect_reply';
    reply.content = view
      ? this.handler.handleInspect({ code: view.source, cursor_pos: view.cursor, detail_level: request.detail_level })
      : { status: 'ok', found: false, data: {}, metadata: {} };
    reply.signAndSend(this.connInfo.key, sock);
  }

  /**
   * After a shutdown_request: once the replies and the last status have gone out (sends are queued, see
   * serializeSends), so that closing the sockets does not cut them off, which the client would log.
   */
  override close(): void {
    const pending = [this.iopub, this.shell, this.control].map(
      (socket) => (socket as unknown as Serialized).sent ?? Promise.resolve(),
    );
    void Promise.all(pending).then(() => {
      super.close();
      this.onClose?.();
    });
  }
}
