// The client library: one DEALER socket to one agent. Requests are matched to replies by id; every request ends
// with exactly one final reply or a local error (no answer in time, agent restarted, client closed), never a hang.

import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';

import { AgentError, RemoteError, toWireError, WireError } from '../../protocol/errors';
import { encodeMessage, Frame, SendQueue, TCP_KEEPALIVE } from '../../protocol/frames';
import {
  AgentInfo,
  AgentLimits,
  FINAL_REPLIES,
  JobCode,
  JobOptions,
  ManifestEntry,
  PROTOCOL_VERSION,
  Reply,
  Request,
  StatusReply,
  Unversioned,
} from '../../protocol/messages';
import { parseHeader, validateReply } from '../../protocol/validate';
import { decodeValue, encodeValue } from '../../protocol/values';
import { unpickle } from '../../pickle';
import { abortable, AbortError, afterPendingEvents } from './abort';
import { localRegistry, pickleCall, requireLoaded } from './capture';
import { ConnectionWatch } from './connection-watch';
import { LocalSnapshot, zipFiles } from './snapshot';

export interface ConnectOptions {
  /** How long to wait for the agent's welcome. */
  connectTimeoutMs?: number;
  /** How often to ping the agent. */
  heartbeatMs?: number;
  /** Pending requests fail when the connection to the agent has been down this long. */
  heartbeatTimeoutMs?: number;
  /**
   * Calls are told (a stderr line) when the agent has said nothing, pongs included, for this long although the
   * connection is up: it may be stuck. Not a failure: a large result on a slow link also silences it.
   */
  silenceNoticeMs?: number;
  /**
   * Pending requests fail AGENT_UNREACHABLE when the agent has said nothing, pongs included, for this long although
   * the connection is up: a frozen or partitioned host that TCP has not noticed yet. Off by default, since a result
   * larger than this long's worth of the link also silences the agent; a pool sets it (15 s) to move work on.
   */
  silenceTimeoutMs?: number;
  /**
   * A call whose signal aborted is cancelled on the agent; when the agent does not acknowledge the cancel within
   * this long (stuck, or cut off), the call stops waiting and fails CANCELLED at once.
   */
  cancelAckMs?: number;
  /** Fixed routing id, so a reconnecting kernel is the same client to the agent. */
  routingId?: string;
  /** Shown in the agent's log. */
  clientName?: string;
  /** CurveZMQ: the agent's public key and this client's key pair (Z85); required for agents serving with --keys. */
  curve?: ClientCurve;
  /** Gives up waiting for the welcome: the half-made socket is closed and connect rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface ClientCurve {
  serverKey: string;
  publicKey: string;
  secretKey: string;
}

/** Where and how a job runs, for `start` and `call` alike. */
export interface JobSettings {
  /** Snapshot to run in (uploaded first with `upload`); null runs outside any snapshot. */
  snapshot?: string | null;
  /** Shown as the job's file name in remote stacks. */
  filename?: string;
  timeoutMs?: JobOptions['timeoutMs'];
  worker?: JobOptions['worker'];
  /** The job's working directory, relative to the snapshot root (the notebook's directory). */
  cwd?: JobOptions['cwd'];
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  /**
   * Aborted before the job is sent, it is not sent and its result rejects with an AbortError; after, the job is
   * cancelled on the agent (its result rejects with CANCELLED, unless it already ended).
   */
  signal?: AbortSignal;
}

export interface JobRequest extends JobSettings {
  /** A JavaScript function expression; it is called with `args` on the agent. */
  source: string;
  args?: unknown[];
}

export interface CallOptions extends JobSettings {
  /** The notebook's locals (tslab's executor.locals): a cell function's free `exports.X` read from them. */
  locals?: Record<string, unknown>;
  /** Absolute code root: modules inside it travel as requires of their path inside the snapshot. */
  codeRoot?: string;
  /** First segment of pickling error paths; default the function's name. */
  label?: string;
  /** A package whose version on the agent differs from the notebook's (shown once per package). */
  onVersionMismatch?: (pkg: string, local: string, remote: string | undefined) => void;
}

export interface RunningJob<T> {
  readonly id: string;
  readonly result: Promise<T>;
  cancel(): Promise<void>;
}

export interface UploadProgress {
  /** Bytes of file content sent so far and in all, for this upload. */
  sentBytes: number;
  totalBytes: number;
  /** Files in the batch just sent. */
  files: number;
}

export interface UploadOptions {
  onProgress?: (progress: UploadProgress) => void;
  /** Content bytes per archive; default UPLOAD_BATCH_BYTES. */
  batchBytes?: number;
  /**
   * Stops the transfer before its next request (an archive already handed over still travels) and rejects with an
   * AbortError. Concurrent uploads of one snapshot share one transfer, and so the signal of the first; an upload
   * asked for after that signal aborted starts a transfer of its own.
   */
  signal?: AbortSignal;
}

/** Big enough that per-request overhead vanishes, small enough for progress to move every fraction of a second. */
export const UPLOAD_BATCH_BYTES = 8 * 1024 * 1024;

export interface UploadReport {
  snapshot: string;
  /** Files the agent lacked and that were sent. */
  filesSent: number;
  bytesSent: number;
}

interface Pending {
  onReply(reply: Reply, payload: Buffer[]): void;
  fail(error: Error): void;
  /**
   * A call: listed in pings so that after a reconnect the agent re-sends its final reply if it was lost. Other
   * requests are idempotent and are simply sent again after a reconnect (`frames`).
   */
  isJob: boolean;
  frames: readonly Frame[];
  /** A call's own stderr, for what the client has to say about it (an agent gone silent). */
  notice?(text: string): void;
}

const DEFAULTS = { connectTimeoutMs: 10_000, heartbeatMs: 1_000, heartbeatTimeoutMs: 10_000, silenceNoticeMs: 30_000, cancelAckMs: 5_000 };

/** How long one send may wait for ZeroMQ to take it before the request is held again. */
const SEND_TIMEOUT_MS = 500;

/**
 * Connects to an agent and waits for its welcome; fails with AGENT_UNREACHABLE when none answers in time, and with an
 * AbortError when `options.signal` aborts first.
 */
export async function connect(endpoint: string, options: ConnectOptions = {}): Promise<AgentClient> {
  const { signal, ...settings } = options;
  const aborted = (): AbortError => new AbortError(`gave up connecting to ${endpoint}: aborted before the agent answered`);
  if (signal?.aborted) throw aborted();
  const client = new AgentClient(endpoint, { ...DEFAULTS, ...settings });
  try {
    await abortable(client.hello(options.clientName ?? `tslab-remote client pid ${process.pid}`), signal, aborted);
  } catch (error) {
    await client.close();
    throw error;
  }
  client.startHeartbeat();
  return client;
}

export class AgentClient {
  private readonly socket: zmq.Dealer;
  private readonly sendQueue: SendQueue;
  private readonly pending = new Map<string, Pending>();
  private readonly uploads = new Map<string, Promise<UploadReport>>();
  private readonly connection: ConnectionWatch;
  /** Ids are unique per client object, so a new client reusing a routing id never repeats an old one's ids. */
  private readonly idPrefix = randomBytes(3).toString('hex');
  private nextId = 0;
  private heartbeat?: NodeJS.Timeout;
  private reconnected = false;
  /** Requests waiting for a connection: never handed to ZeroMQ while there is none, so never sent late. */
  private readonly held = new Set<string>();
  /** Calls given up on while disconnected: the agent is asked to cancel them once it is reachable again. */
  private readonly abandoned = new Set<string>();
  private closed = false;
  private info?: AgentInfo;
  /** The instance that welcomed us, kept even while a re-hello after a restart is pending. */
  private instance?: string;
  private lastHeardAt = Date.now();
  /** The calls were told the agent went silent, and are told again when it speaks. */
  private silenceNoticed = false;

  constructor(
    readonly endpoint: string,
    private readonly options: typeof DEFAULTS & Omit<ConnectOptions, 'signal'>,
  ) {
    // immediate: nothing queues for a connection that is not up, so a call the client gave up on is never delivered
    // later; sendTimeout bounds how long a send waits for one. A dead agent process closes the connection (a
    // disconnect event at once); TCP keepalive finds a vanished host on an idle connection. Not ZMTP heartbeats:
    // libzmq counts only whole frames as signs of life, so a result that takes longer than the timeout to arrive
    // would be cut off, again and again.
    this.socket = new zmq.Dealer({
      routingId: options.routingId ?? `tslab-remote-${randomBytes(8).toString('hex')}`,
      linger: 0,
      immediate: true,
      sendTimeout: SEND_TIMEOUT_MS,
      ...TCP_KEEPALIVE,
      ...(options.curve
        ? { curveServerKey: options.curve.serverKey, curvePublicKey: options.curve.publicKey, curveSecretKey: options.curve.secretKey }
        : {}),
    });
    this.connection = new ConnectionWatch(
      this.socket,
      endpoint,
      { onAuthFailure: (message) => this.failAll('AUTH_FAILED', message), onConnect: (again) => this.connected(again) },
      options.curve !== undefined,
    );
    this.socket.connect(endpoint);
    this.sendQueue = new SendQueue(this.socket);
    void this.receiveLoop();
  }

  /** The agent's description, from its welcome. */
  get agent(): AgentInfo {
    if (!this.info) throw new Error('not connected yet');
    return this.info;
  }

  async hello(clientName: string): Promise<AgentInfo> {
    const timer = setTimeout(
      () =>
        this.failAll(
          'AGENT_UNREACHABLE',
          `no agent answered at ${this.endpoint} within ${this.options.connectTimeoutMs / 1000} s: ` +
            'start one there with `npx remote-agent serve`, or check the endpoint and any firewall or tunnel',
        ),
      this.options.connectTimeoutMs,
    );
    try {
      const reply = await this.request({ type: 'hello', client: clientName });
      if (reply.type !== 'welcome') throw unexpected(reply);
      this.info = reply.agent;
      this.instance = reply.agent.instance;
      return reply.agent;
    } finally {
      clearTimeout(timer);
    }
  }

  async status(): Promise<StatusReply> {
    const reply = await this.request({ type: 'status' });
    if (reply.type !== 'status') throw unexpected(reply);
    return reply;
  }

  /**
   * Makes the snapshot runnable on the agent, sending only the files it lacks, in batches so `onProgress` can
   * report. Concurrent uploads of one snapshot share one transfer.
   */
  upload(snapshot: LocalSnapshot, options: UploadOptions = {}): Promise<UploadReport> {
    const shared = this.uploads.get(snapshot.hash);
    if (shared) return shared;
    const upload: Promise<UploadReport> = this.transfer(snapshot, options).finally(() => forget());
    const forget = (): void => {
      if (this.uploads.get(snapshot.hash) === upload) this.uploads.delete(snapshot.hash);
    };
    this.uploads.set(snapshot.hash, upload);
    // An aborted transfer is its caller's: a later caller starts a fresh one rather than share its end.
    options.signal?.addEventListener('abort', forget, { once: true });
    return upload;
  }

  private async transfer(snapshot: LocalSnapshot, options: UploadOptions): Promise<UploadReport> {
    const report: UploadReport = { snapshot: snapshot.hash, filesSent: 0, bytesSent: 0 };
    const checkAborted = (): void => {
      if (options.signal?.aborted) throw new AbortError(`stopped uploading snapshot ${snapshot.hash.slice(0, 12)}: aborted`);
    };
    checkAborted();
    let status = await this.snapshotRequest({ type: 'snapshot.check', snapshot: snapshot.hash, files: snapshot.files });
    // A blob the agent reported present may be evicted before the upload lands: ask again, a bounded number of times.
    for (let round = 0; round < 3 && !status.ready; round++) {
      const lacking = new Set(status.missing);
      const toSend = snapshot.files.filter((file) => lacking.has(file.hash));
      const totalBytes = toSend.reduce((sum, file) => sum + file.size, 0);
      let sentBytes = 0;
      for (const batch of batches(toSend, options.batchBytes ?? UPLOAD_BATCH_BYTES)) {
        const archive = await zipFiles(snapshot, batch);
        this.checkBound('maxArchiveBytes', archive.length, 'the upload archive', '--max-archive-mb');
        checkAborted();
        status = await this.snapshotRequest({ type: 'snapshot.upload', snapshot: snapshot.hash, files: snapshot.files }, archive);
        sentBytes += batch.reduce((sum, file) => sum + file.size, 0);
        report.filesSent += batch.length;
        report.bytesSent += archive.length;
        options.onProgress?.({ sentBytes, totalBytes, files: batch.length });
      }
    }
    if (!status.ready) {
      throw new RemoteError(localError('FILES_MISSING', `the agent still lacks ${status.missing.length} file(s) of snapshot ${snapshot.hash.slice(0, 12)} after 3 uploads`));
    }
    return report;
  }

  private async snapshotRequest(body: { type: 'snapshot.check' | 'snapshot.upload'; snapshot: string; files: LocalSnapshot['files'] }, archive?: Buffer) {
    const reply = await this.request(body, archive ? [archive] : []);
    if (reply.type !== 'snapshot.status') throw unexpected(reply);
    return reply;
  }

  /** Runs a job and resolves with its decoded return value; a remote failure rejects with a RemoteError. */
  run<T = unknown>(job: JobRequest): Promise<T> {
    return this.start<T>(job).result;
  }

  /** Starts a job from source text and returns a handle to await or cancel it. */
  start<T = unknown>(job: JobRequest): RunningJob<T> {
    const code: JobCode = { kind: 'source', source: job.source, ...(job.filename ? { filename: job.filename } : {}) };
    return this.startJob<T>(code, () => encodeValue(job.args ?? []), job, (payload) => decodeValue(payload) as T);
  }

  /**
   * Calls `fn(...args)` on the agent. The function travels with its closure by the pickler (free variables from
   * its scopes and from the notebook's `locals`, local modules as requires inside the snapshot); the result comes
   * back the same way, instances of notebook and local-module classes as instances of the local class. A value
   * that cannot travel rejects before anything is sent, with a PickleError naming it.
   */
  call<T = unknown>(fn: Function, args: readonly unknown[], options: CallOptions = {}): RunningJob<T> {
    const codeRoot = options.codeRoot ?? process.cwd();
    const code: JobCode = { kind: 'pickle', ...(options.filename ? { filename: options.filename } : {}) };
    const frames = () => pickleCall(fn, args, { locals: options.locals, codeRoot: options.codeRoot, label: options.label });
    const decode = (payload: Buffer[]): T =>
      unpickle(payload, {
        requireModule: requireLoaded(codeRoot),
        localClasses: localRegistry,
        onVersionMismatch: options.onVersionMismatch,
      }) as T;
    return this.startJob<T>(code, frames, options, decode);
  }

  private startJob<T>(code: JobCode, encodeArgs: () => Uint8Array[], job: JobSettings, decode: (payload: Buffer[]) => T): RunningJob<T> {
    const id = this.newId();
    const options: JobOptions = { timeoutMs: job.timeoutMs, worker: job.worker, cwd: job.cwd };
    const header = { type: 'call' as const, snapshot: job.snapshot ?? null, code, options };
    const { signal } = job;
    // Without a signal the call is sent before start() returns; with one, a moment later (see below).
    let state: 'encoding' | 'sent' | 'dropped' = 'encoding';
    const result = new Promise<T>((resolve, reject) => {
      const args = encodeArgs();
      for (const frame of args) this.checkBound('maxMessageBytes', frame.byteLength, 'an argument frame', '--max-message-mb');
      const send = (): void => {
        state = 'sent';
        this.send(id, header, args, {
          isJob: true,
          fail: reject,
          notice: (text) => job.onOutput?.('stderr', text),
          onReply: (reply, payload) => {
            if (reply.type === 'output') job.onOutput?.(reply.stream, reply.text);
            else if (reply.type === 'result') resolve(decode(payload));
            else reject(unexpected(reply));
          },
        });
      };
      if (!signal) return send();
      // Encoding is synchronous and may take long: an abort caused by something that happened meanwhile (a SIGINT)
      // only comes once the event loop turns, and must still keep the call from being sent.
      void afterPendingEvents().then(() => {
        if (state === 'dropped') return reject(new RemoteError(localError('CANCELLED', `call ${id} was cancelled before it was sent`)));
        if (signal.aborted) return reject(new AbortError(`call ${id} was not sent: aborted`));
        send();
        const cancel = (): void => this.cancelOrAbandon(id, reject);
        signal.addEventListener('abort', cancel, { once: true });
        void result.catch(() => undefined).finally(() => signal.removeEventListener('abort', cancel));
      });
    });
    const cancel = async (): Promise<void> => {
      if (state === 'sent') return this.cancel(id);
      state = 'dropped';
    };
    return { id, result, cancel };
  }

  /** Refuses locally what the agent would refuse, naming its bound, instead of sending it across the network. */
  private checkBound(bound: keyof AgentLimits, size: number, what: string, flag: string): void {
    const limit = this.info?.limits[bound];
    if (limit !== undefined && size > limit) {
      throw new RemoteError(
        localError('TOO_LARGE', `${what} is ${size} bytes, over the agent's bound ${bound} = ${limit} (${flag} on the agent)`),
      );
    }
  }

  /**
   * An aborted call: cancelled on the agent, whose final reply then ends it; but if the agent does not even
   * acknowledge the cancel in time, the call stops waiting now (and is cancelled again if the connection comes back).
   */
  private cancelOrAbandon(id: string, reject: (error: Error) => void): void {
    const timer = setTimeout(() => {
      if (!this.pending.delete(id)) return;
      this.abandoned.add(id);
      const seconds = this.options.cancelAckMs / 1000;
      reject(new RemoteError(localError('CANCELLED', `the agent at ${this.endpoint} did not acknowledge the cancel of call ${id} within ${seconds} s (it may be stuck): stopped waiting; the call is cancelled there if it answers again`)));
    }, this.options.cancelAckMs);
    timer.unref();
    this.cancel(id).then(() => clearTimeout(timer), () => undefined);
  }

  /** Asks the agent to cancel a job; the job's own promise then rejects with CANCELLED (unless it already ended). */
  async cancel(jobId: string): Promise<void> {
    const reply = await this.request({ type: 'cancel', job: jobId });
    if (reply.type !== 'ack') throw unexpected(reply);
  }

  /** Closes the socket; pending requests fail with CLIENT_CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.failAll('CLIENT_CLOSED', 'the connection to the agent was closed');
    // A last ping waiting for nothing lets the agent drop the final replies it kept for us at once.
    if (this.info && this.connection.disconnectedForMs() === 0) {
      this.socket.linger = 500;
      await this.sendQueue.send(encodeMessage({ v: PROTOCOL_VERSION, id: this.newId(), type: 'ping', waiting: [] })).catch(() => undefined);
    }
    this.socket.close();
  }

  private request(
    body: Unversioned<Request> extends infer R ? (R extends { id: string } ? Omit<R, 'id'> : never) : never,
    payload: Frame[] = [],
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.send(this.newId(), body, payload, { isJob: false, fail: reject, onReply: (reply) => resolve(reply) });
    });
  }

  private send(id: string, body: object, payload: readonly Frame[], handlers: Omit<Pending, 'frames'>): void {
    if (this.closed) {
      handlers.fail(new RemoteError(localError('CLIENT_CLOSED', 'the connection to the agent is closed')));
      return;
    }
    const frames = encodeMessage({ v: PROTOCOL_VERSION, id, ...body }, payload);
    this.pending.set(id, { ...handlers, frames });
    this.transmit(id, frames);
  }

  /**
   * Hands a request to ZeroMQ only while connected; otherwise it waits in `held` until a connection comes, or until
   * the client gives up on it, and so it can never be delivered after the caller was told it failed.
   */
  private transmit(id: string, frames: readonly Frame[]): void {
    if (this.connection.disconnectedForMs() > 0) {
      this.held.add(id);
      return;
    }
    this.sendQueue.send(frames).catch((error: unknown) => {
      const pending = this.pending.get(id);
      if (!pending || pending.frames !== frames) return; // abandoned meanwhile
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
        // The connection went away under us (or the queue is full): hold it, and retry while connected.
        this.held.add(id);
        setTimeout(() => this.flushHeld(), SEND_TIMEOUT_MS).unref();
        return;
      }
      this.pending.delete(id);
      pending.fail(new RemoteError(toWireError(error, 'INTERNAL')));
    });
  }

  private flushHeld(): void {
    if (this.connection.disconnectedForMs() > 0) return;
    for (const id of [...this.held]) {
      this.held.delete(id);
      const pending = this.pending.get(id);
      if (pending) this.transmit(id, pending.frames);
    }
  }

  /**
   * Connected: held requests go. Reconnected: requests whose reply may have been lost go again (all are idempotent
   * but calls), and the next ping asks the agent to re-send the final replies of calls.
   */
  private connected(again: boolean): void {
    this.lastHeardAt = Date.now(); // silence is counted from when the agent could speak
    for (const job of this.abandoned) {
      void this.sendQueue.send(encodeMessage({ v: PROTOCOL_VERSION, id: this.newId(), type: 'cancel', job })).catch(() => undefined);
    }
    this.abandoned.clear();
    if (again) {
      this.reconnected = true;
      for (const [id, pending] of this.pending) if (!pending.isJob) this.held.add(id);
    }
    this.flushHeld();
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [header, ...payload] of this.socket) this.dispatch(header, payload);
    } catch (error) {
      if (!this.closed) this.failAll('INTERNAL', `the client socket failed: ${(error as Error).message}`);
    }
  }

  private dispatch(headerFrame: Buffer | undefined, payload: Buffer[]): void {
    this.heard();
    let reply: Reply;
    try {
      reply = validateReply(parseHeader(headerFrame), payload.length);
    } catch (error) {
      // A reply we cannot read cannot be matched to its request either; the heartbeat deadline still applies.
      process.emitWarning(`tslab-remote: ignored an unreadable message from ${this.endpoint}: ${(error as Error).message}`);
      return;
    }
    if (reply.type === 'error' && reply.re === null) {
      process.emitWarning(`tslab-remote: the agent refused a message: ${reply.error.message}`);
      return;
    }
    if (reply.type === 'pong') {
      if (this.instance && reply.instance !== this.instance) this.agentRestarted(reply.instance);
      return;
    }
    const pending = this.pending.get(reply.re!);
    if (!pending) return; // a late or repeated reply to a request that already ended
    if (FINAL_REPLIES.has(reply.type)) this.pending.delete(reply.re!);
    if (reply.type === 'error') {
      pending.fail(new RemoteError(reply.error));
      return;
    }
    try {
      pending.onReply(reply, payload);
    } catch (error) {
      // A result that cannot be rebuilt here, or a throwing onOutput: that request fails, the client goes on.
      this.pending.delete(reply.re!);
      pending.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * Every heartbeatMs: fails pending requests once the connection has been down past the deadline, and pings,
   * listing the calls still awaited. Pongs are not tracked as requests: a pong from another instance means the agent
   * restarted. Liveness comes from the connection (ZMTP heartbeats), not from replies, so a result that takes minutes
   * to arrive over a slow link is not mistaken for a dead agent. Called by connect().
   */
  startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      const downMs = this.connection.disconnectedForMs();
      if (this.pending.size > 0 && downMs > this.options.heartbeatTimeoutMs) {
        this.giveUp(downMs);
        return;
      }
      if (downMs > 0) return; // nothing would carry a ping now
      if (this.pending.size > 0 && this.silentTooLong()) return;
      this.checkSilence();
      const jobs = [...this.pending].filter(([, p]) => p.isJob).map(([id]) => id);
      const resend = this.reconnected;
      this.reconnected = false;
      const ping = { v: PROTOCOL_VERSION, id: this.newId(), type: 'ping', waiting: jobs, ...(resend ? { resend } : {}) };
      this.sendQueue.send(encodeMessage(ping)).catch(() => undefined);
    }, this.options.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Whether the connection is up and the agent spoke (a pong at least) within the silence timeout, if any. */
  get reachable(): boolean {
    if (this.closed || this.connection.disconnectedForMs() > 0) return false;
    return !this.options.silenceTimeoutMs || Date.now() - this.lastHeardAt < this.options.silenceTimeoutMs;
  }

  /** Connected but silent past silenceTimeoutMs: fail what waits, as for a connection that stayed down. */
  private silentTooLong(): boolean {
    const silentMs = Date.now() - this.lastHeardAt;
    if (!this.options.silenceTimeoutMs || silentMs < this.options.silenceTimeoutMs) return false;
    const calls = [...this.pending].filter(([, p]) => p.isJob).map(([id]) => id);
    this.failAll(
      'AGENT_UNREACHABLE',
      `no word from the agent at ${this.endpoint} for ${Math.round(silentMs / 1000)} s although the connection is up: ` +
        'the host may be frozen or cut off from this one. Its running jobs are cancelled if it answers again',
    );
    for (const job of calls) this.abandoned.add(job);
    return true;
  }

  /** Connected, calls waiting, and not a word from the agent, not even a pong: tell the calls, once. */
  private checkSilence(): void {
    const silentMs = Date.now() - this.lastHeardAt;
    if (this.silenceNoticed || silentMs < this.options.silenceNoticeMs) return;
    if (![...this.pending.values()].some((pending) => pending.isJob)) return;
    this.silenceNoticed = true;
    this.noticeToCalls(
      `tslab-remote: no word from the agent at ${this.endpoint} for ${Math.round(silentMs / 1000)} s although the connection is up: ` +
        'it may be stuck, or still sending a large result. Interrupt to stop waiting\n',
    );
  }

  private heard(): void {
    const silentMs = Date.now() - this.lastHeardAt;
    this.lastHeardAt = Date.now();
    if (!this.silenceNoticed) return;
    this.silenceNoticed = false;
    this.noticeToCalls(`tslab-remote: the agent at ${this.endpoint} answers again, after ${Math.round(silentMs / 1000)} s\n`);
  }

  private noticeToCalls(text: string): void {
    for (const pending of this.pending.values()) {
      try {
        pending.notice?.(text);
      } catch {
        // a throwing output handler fails its call when the agent's own output reaches it
      }
    }
  }

  /** The connection stayed down: fail what waits, and ask the agent (if it comes back) to cancel those calls. */
  private giveUp(downMs: number): void {
    const calls = [...this.pending].filter(([, p]) => p.isJob).map(([id]) => id);
    this.failAll(
      'AGENT_UNREACHABLE',
      `lost the connection to the agent at ${this.endpoint} ${Math.round(downMs / 1000)} s ago and could not reconnect: ` +
        'it may have crashed or the network is down. Its running jobs are cancelled if it comes back; check the agent and run the cell again',
    );
    for (const job of calls) this.abandoned.add(job);
  }

  private agentRestarted(instance: string): void {
    // The new instance is ours from its first pong: its later pongs must not fail what was sent since (a call run
    // again at once, the hello below).
    this.instance = instance;
    this.failAll(
      'AGENT_RESTARTED',
      `the agent at ${this.endpoint} restarted, so the jobs it was running were lost: run the cell again`,
    );
    // Its welcome brings its description and limits.
    void this.hello('reconnect').catch(() => undefined);
  }

  private failAll(code: WireError['code'], message: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.held.clear();
    this.silenceNoticed = false; // the calls told of a silence are failed: later ones were not told
    for (const p of pending) p.fail(new RemoteError(localError(code, message)));
  }

  private newId(): string {
    return `${this.idPrefix}-${(this.nextId++).toString(36)}`;
  }
}

/** Consecutive groups of at most `limit` content bytes (a larger file goes alone). */
function batches(files: readonly ManifestEntry[], limit: number): ManifestEntry[][] {
  const groups: ManifestEntry[][] = [];
  let current: ManifestEntry[] = [];
  let bytes = 0;
  for (const file of files) {
    if (current.length > 0 && bytes + file.size > limit) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(file);
    bytes += file.size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

function localError(code: WireError['code'], message: string): WireError {
  return toWireError(new AgentError(code, message), code);
}

function unexpected(reply: Reply): RemoteError {
  return new RemoteError(localError('BAD_MESSAGE', `unexpected reply ${reply.type} from the agent`));
}
