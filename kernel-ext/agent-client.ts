// The client library: one DEALER socket to one agent. Requests are matched to replies by id; every request ends
// with exactly one final reply or a local error (no answer in time, agent restarted, client closed), never a hang.

import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';

import { AgentError, RemoteError, toWireError, WireError } from '../protocol/errors';
import { encodeMessage, Frame, SendQueue } from '../protocol/frames';
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
} from '../protocol/messages';
import { parseHeader, validateReply } from '../protocol/validate';
import { decodeValue, encodeValue } from '../protocol/values';
import { unpickle } from '../protocol/pickle';
import { localRegistry, pickleCall, requireLoaded } from './pickle';
import { LocalSnapshot, zipFiles } from './snapshot';

export interface ConnectOptions {
  /** How long to wait for the agent's welcome. */
  connectTimeoutMs?: number;
  /** How often to ping the agent while requests are pending. */
  heartbeatMs?: number;
  /** Pending requests fail when the agent has been silent this long. */
  heartbeatTimeoutMs?: number;
  /** Fixed routing id, so a reconnecting kernel is the same client to the agent. */
  routingId?: string;
  /** Shown in the agent's log. */
  clientName?: string;
  /** CurveZMQ: the agent's public key and this client's key pair (Z85); required for agents serving with --keys. */
  curve?: ClientCurve;
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
  /** Uploads may take long to transmit: the heartbeat deadline does not apply while one is in flight. */
  isUpload: boolean;
  /** A call: listed in pings so the agent re-sends its final reply if it was lost while disconnected. */
  isJob?: boolean;
}

const DEFAULTS = { connectTimeoutMs: 10_000, heartbeatMs: 1_000, heartbeatTimeoutMs: 10_000 };

/** Connects to an agent and waits for its welcome; fails with AGENT_UNREACHABLE when none answers in time. */
export async function connect(endpoint: string, options: ConnectOptions = {}): Promise<AgentClient> {
  const client = new AgentClient(endpoint, { ...DEFAULTS, ...options });
  try {
    await client.hello(options.clientName ?? `tslab-remote client pid ${process.pid}`);
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
  private nextId = 0;
  private lastHeard = Date.now();
  private heartbeat?: NodeJS.Timeout;
  private closed = false;
  private info?: AgentInfo;

  constructor(
    readonly endpoint: string,
    private readonly options: typeof DEFAULTS & ConnectOptions,
  ) {
    this.socket = new zmq.Dealer({
      routingId: options.routingId ?? `tslab-remote-${randomBytes(8).toString('hex')}`,
      linger: 0,
      ...(options.curve
        ? { curveServerKey: options.curve.serverKey, curvePublicKey: options.curve.publicKey, curveSecretKey: options.curve.secretKey }
        : {}),
    });
    void this.watchHandshakes();
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
    let upload = this.uploads.get(snapshot.hash);
    if (!upload) {
      upload = this.transfer(snapshot, options).finally(() => this.uploads.delete(snapshot.hash));
      this.uploads.set(snapshot.hash, upload);
    }
    return upload;
  }

  private async transfer(snapshot: LocalSnapshot, options: UploadOptions): Promise<UploadReport> {
    const report: UploadReport = { snapshot: snapshot.hash, filesSent: 0, bytesSent: 0 };
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
    const reply = await this.request(body, archive ? [archive] : [], archive !== undefined);
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
    const result = new Promise<T>((resolve, reject) => {
      const args = encodeArgs();
      for (const frame of args) this.checkBound('maxMessageBytes', frame.byteLength, 'an argument frame', '--max-message-mb');
      this.send(id, header, args, {
        isUpload: false,
        isJob: true,
        fail: reject,
        onReply: (reply, payload) => {
          if (reply.type === 'output') job.onOutput?.(reply.stream, reply.text);
          else if (reply.type === 'result') resolve(decode(payload));
          else reject(unexpected(reply));
        },
      });
    });
    return { id, result, cancel: () => this.cancel(id) };
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
    this.socket.close();
  }

  private request(
    body: Unversioned<Request> extends infer R ? (R extends { id: string } ? Omit<R, 'id'> : never) : never,
    payload: Frame[] = [],
    isUpload = false,
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.send(this.newId(), body, payload, { isUpload, fail: reject, onReply: (reply) => resolve(reply) });
    });
  }

  private send(id: string, body: object, payload: readonly Frame[], pending: Pending): void {
    if (this.closed) {
      pending.fail(new RemoteError(localError('CLIENT_CLOSED', 'the connection to the agent is closed')));
      return;
    }
    this.pending.set(id, pending);
    this.sendQueue.send(encodeMessage({ v: PROTOCOL_VERSION, id, ...body }, payload)).catch((error: unknown) => {
      this.pending.delete(id);
      pending.fail(new RemoteError(toWireError(error, 'INTERNAL')));
    });
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [header, ...payload] of this.socket) this.dispatch(header, payload);
    } catch (error) {
      if (!this.closed) this.failAll('INTERNAL', `the client socket failed: ${(error as Error).message}`);
    }
  }

  /**
   * A refused key never produces a reply, only socket events: turn them into an error at once instead of letting the
   * request wait for its deadline. Once a handshake has succeeded the keys are right, and later handshake errors are
   * network trouble that ZeroMQ's reconnection and the heartbeat deal with.
   */
  private async watchHandshakes(): Promise<void> {
    let succeeded = false;
    try {
      for await (const event of this.socket.events) {
        if (event.type === 'handshake') succeeded = true;
        else if (event.type === 'handshake:error:auth') {
          this.failAll('AUTH_FAILED', `the agent at ${this.endpoint} refused this kernel's key: ask its owner to add your public key with --allow`);
        } else if (!succeeded && (event.type === 'handshake:error:protocol' || event.type === 'handshake:error:other')) {
          this.failAll(
            'AUTH_FAILED',
            `the secure handshake with ${this.endpoint} failed (${event.error.message}): check that you hold the agent's ` +
              'current public key, and that both sides use keys (or neither does)',
          );
        }
      }
    } catch (error) {
      if (!this.closed) process.emitWarning(`tslab-remote: socket events stopped: ${(error as Error).message}`);
    }
  }

  private dispatch(headerFrame: Buffer | undefined, payload: Buffer[]): void {
    this.lastHeard = Date.now();
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
      if (this.info && reply.instance !== this.info.instance) this.agentRestarted();
      return;
    }
    const pending = this.pending.get(reply.re!);
    if (!pending) return; // a late reply to a request that already failed locally
    if (FINAL_REPLIES.has(reply.type)) this.pending.delete(reply.re!);
    if (reply.type === 'error') pending.fail(new RemoteError(reply.error));
    else pending.onReply(reply, payload);
  }

  /**
   * Pings every heartbeatMs; pongs are not tracked as requests: any message from the agent proves it alive, and a
   * pong from another instance means it restarted. An agent silent past the deadline fails pending requests
   * instead of letting them hang. Called by connect().
   */
  startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      const waiting = [...this.pending.values()];
      if (waiting.some((p) => p.isUpload)) this.lastHeard = Date.now();
      const silentMs = Date.now() - this.lastHeard;
      if (waiting.length > 0 && silentMs > this.options.heartbeatTimeoutMs) {
        this.failAll(
          'AGENT_UNREACHABLE',
          `the agent at ${this.endpoint} stopped answering (no heartbeat for ${Math.round(silentMs / 1000)} s): ` +
            'it may have crashed or the network is down; its jobs may be lost. Check the agent and run the cell again',
        );
        return;
      }
      // Pings go out even when idle, so the agent can forget final replies this client already has.
      const jobs = [...this.pending].filter(([, p]) => p.isJob).map(([id]) => id);
      this.sendQueue.send(encodeMessage({ v: PROTOCOL_VERSION, id: this.newId(), type: 'ping', waiting: jobs })).catch(() => undefined);
    }, this.options.heartbeatMs);
    this.heartbeat.unref();
  }

  private agentRestarted(): void {
    this.failAll(
      'AGENT_RESTARTED',
      `the agent at ${this.endpoint} restarted, so the jobs it was running were lost: run the cell again`,
    );
    this.info = undefined;
    void this.hello('reconnect').catch(() => undefined);
  }

  private failAll(code: WireError['code'], message: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.fail(new RemoteError(localError(code, message)));
  }

  private newId(): string {
    return `${process.pid.toString(36)}-${(this.nextId++).toString(36)}`;
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
