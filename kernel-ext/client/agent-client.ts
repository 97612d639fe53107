// The client library: one agent, one connection. Every request ends with exactly one final reply or a local error
// (no answer in time, agent restarted, client closed), never a hang. This file puts the parts together:
// request-channel.ts (the socket, requests and replies), liveness.ts (pings and deadlines), upload.ts (snapshots),
// jobs.ts (calls, cancel); the options are in client-options.ts.

import type { AgentInfo, JobCode, StatusReply } from '../../protocol/messages';
import { decodeValue, encodeValue } from '../../protocol/values';
import { unpickle } from '../../pickle';
import { abortable, AbortError } from './abort';
import { localRegistry, pickleCall, requireLoaded } from './capture';
import {
  CallOptions,
  ClientSettings,
  CONNECT_DEFAULTS,
  ConnectOptions,
  JobRequest,
  RunningJob,
  UploadOptions,
  UploadReport,
} from './client-options';
import { Jobs } from './jobs';
import { AttachOptions, DetachedCalls } from './detached';
import type { DetachedJobInfo, KeyProof } from '../../protocol/job-messages';
import { Liveness } from './liveness';
import { RequestChannel, unexpected } from './request-channel';
import type { LocalSnapshot } from './snapshot';
import { Uploads } from './upload';
import { keyProof } from '../../common/key-proof';

/**
 * Connects to an agent and waits for its welcome; fails with AGENT_UNREACHABLE when none answers in time, and with an
 * AbortError when `options.signal` aborts first.
 */
export async function connect(endpoint: string, options: ConnectOptions = {}): Promise<AgentClient> {
  const { signal, ...settings } = options;
  const aborted = (): AbortError =>
    new AbortError(`gave up connecting to ${endpoint}: aborted before the agent answered`);
  if (signal?.aborted) throw aborted();
  const client = new AgentClient(endpoint, { ...CONNECT_DEFAULTS, ...settings });
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
  private readonly channel: RequestChannel;
  private readonly liveness: Liveness;
  private readonly uploads: Uploads;
  private readonly jobs: Jobs;
  private readonly detached: DetachedCalls;
  private proof?: KeyProof;
  private info?: AgentInfo;

  constructor(
    readonly endpoint: string,
    private readonly settings: ClientSettings,
  ) {
    // Its welcome brings a restarted agent's description and limits.
    this.liveness = new Liveness(settings, () => void this.hello('reconnect').catch(() => undefined));
    this.channel = new RequestChannel(endpoint, settings, this.liveness);
    this.liveness.attach(this.channel);
    const limits = () => this.info?.limits;
    this.uploads = new Uploads(this.channel, limits);
    this.jobs = new Jobs(this.channel, settings, limits);
    this.detached = new DetachedCalls(this.channel, limits, () => this.keyProof());
  }

  /** The agent's description, from its welcome. */
  get agent(): AgentInfo {
    if (!this.info) throw new Error('not connected yet');
    return this.info;
  }

  /** Whether the connection is up and the agent spoke (a pong at least) within silenceTimeoutMs, if set. */
  get reachable(): boolean {
    return this.liveness.reachable;
  }

  async hello(clientName: string): Promise<AgentInfo> {
    const timer = setTimeout(
      () =>
        this.channel.failAll(
          'AGENT_UNREACHABLE',
          `no agent answered at ${this.endpoint} within ${this.settings.connectTimeoutMs / 1000} s: ` +
            'start one there with `npx remote-agent serve`, or check the endpoint and any firewall or tunnel',
        ),
      this.settings.connectTimeoutMs,
    );
    try {
      const key = this.keyProof();
      const reply = await this.channel.request({ type: 'hello', client: clientName, ...(key ? { key } : {}) });
      if (reply.type !== 'welcome') throw unexpected(reply);
      this.info = reply.agent;
      this.liveness.instance = reply.agent.instance;
      return reply.agent;
    } finally {
      clearTimeout(timer);
    }
  }

  /** On an agent with keys, who we are: it owns our detached jobs (common/key-proof.ts). Made once: the inputs stay. */
  private keyProof(): KeyProof | undefined {
    const curve = this.settings.curve;
    if (!curve) return undefined;
    this.proof ??= {
      publicKey: curve.publicKey,
      proof: keyProof(curve.secretKey, curve.serverKey, this.channel.routingId),
    };
    return this.proof;
  }

  async status(): Promise<StatusReply> {
    const reply = await this.channel.request({ type: 'status' });
    if (reply.type !== 'status') throw unexpected(reply);
    return reply;
  }

  /**
   * Makes the snapshot runnable on the agent, sending only the files it lacks, in batches so `onProgress` can
   * report. Concurrent uploads of one snapshot share one transfer.
   */
  upload(snapshot: LocalSnapshot, options: UploadOptions = {}): Promise<UploadReport> {
    return this.uploads.upload(snapshot, options);
  }

  /** Runs a job and resolves with its decoded return value; a remote failure rejects with a RemoteError. */
  run<T = unknown>(job: JobRequest): Promise<T> {
    return this.start<T>(job).result;
  }

  /** Starts a job from source text and returns a handle to await or cancel it. */
  start<T = unknown>(job: JobRequest): RunningJob<T> {
    const code: JobCode = { kind: 'source', source: job.source, ...(job.filename ? { filename: job.filename } : {}) };
    return this.jobs.start<T>(
      code,
      () => encodeValue(job.args ?? []),
      job,
      (payload) => decodeValue(payload) as T,
    );
  }

  /**
   * Calls `fn(...args)` on the agent. The function travels with its closure by the pickler (free variables from
   * its scopes and from the notebook's `locals`, local modules as requires inside the snapshot); the result comes
   * back the same way, instances of notebook and local-module classes as instances of the local class. A value
   * that cannot travel rejects before anything is sent, with a PickleError naming it.
   */
  call<T = unknown>(fn: Function, args: readonly unknown[], options: CallOptions = {}): RunningJob<T> {
    const code: JobCode = { kind: 'pickle', ...(options.filename ? { filename: options.filename } : {}) };
    const frames = () =>
      pickleCall(fn, args, { locals: options.locals, codeRoot: options.codeRoot, label: options.label });
    return this.jobs.start<T>(code, frames, options, (payload) => this.unpickle<T>(payload, options));
  }

  /**
   * Calls `fn(...args)` as `call` does, as a detached job: it runs on the agent on its own, outliving this client
   * (and its kernel), which may go at once. `attach` follows it, from this client or a later one with the same key.
   */
  detach(
    fn: Function,
    args: readonly unknown[],
    options: CallOptions & { name?: string } = {},
  ): Promise<DetachedJobInfo> {
    const code: JobCode = { kind: 'pickle', ...(options.filename ? { filename: options.filename } : {}) };
    const frames = pickleCall(fn, args, { locals: options.locals, codeRoot: options.codeRoot, label: options.label });
    return this.detached.start(code, frames, options, options.name === undefined ? {} : { name: options.name });
  }

  /** This client's key's detached jobs on the agent (all of them on an agent without keys), oldest first. */
  detachedJobs(): Promise<DetachedJobInfo[]> {
    return this.detached.list();
  }

  /**
   * Replays a detached job's output (by id or name; the newest of a name), follows the rest and resolves with its
   * result, decoded as `call` decodes (`options.codeRoot` for local classes); rejects with its error.
   */
  attach<T = unknown>(
    job: string,
    options: AttachOptions & Pick<CallOptions, 'codeRoot' | 'onVersionMismatch'> = {},
  ): Promise<T> {
    const decode = (kind: DetachedJobInfo['kind'], payload: Buffer[]): T =>
      kind === 'pickle' ? this.unpickle<T>(payload, options) : (decodeValue(payload) as T);
    return this.detached.attach(job, decode, options);
  }

  /** Cancels a detached job by id or name; resolves with the job as it was when the cancel arrived. */
  cancelDetached(job: string): Promise<DetachedJobInfo> {
    return this.detached.cancel(job);
  }

  private unpickle<T>(payload: Buffer[], options: Pick<CallOptions, 'codeRoot' | 'onVersionMismatch'>): T {
    return unpickle(payload, {
      requireModule: requireLoaded(options.codeRoot ?? process.cwd()),
      localClasses: localRegistry,
      onVersionMismatch: options.onVersionMismatch,
    }) as T;
  }

  /** Asks the agent to cancel a job; the job's own promise then rejects with CANCELLED (unless it already ended). */
  cancel(jobId: string): Promise<void> {
    return this.jobs.cancel(jobId);
  }

  /** Pings on a timer and applies the deadlines (see liveness.ts). Called by connect(). */
  startHeartbeat(): void {
    this.liveness.start();
  }

  /** Closes the socket; pending requests fail with CLIENT_CLOSED. */
  async close(): Promise<void> {
    this.liveness.stop();
    await this.channel.close(this.info !== undefined);
  }
}
