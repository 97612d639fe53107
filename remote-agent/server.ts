// The agent's front door: one ZeroMQ ROUTER. Every message is validated; every request gets exactly one final
// reply (an error reply included), and nothing a peer sends can stop the loop.

import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as zmq from 'zeromq';

import { AgentError, toWireError, WireError } from '../protocol/errors';
import { encodeMessage, Frame, joinPieces, SendQueue } from '../protocol/frames';
import {
  AgentInfo,
  AgentLimits,
  CallRequest,
  PROTOCOL_VERSION,
  Reply,
  Request,
  Unversioned,
} from '../protocol/messages';
import { DEFAULT_HEADER_LIMITS, HeaderLimits, parseHeader, requestIdOf, validateRequest } from '../protocol/validate';
import type { SnapshotStore } from './store/snapshot-store';
import { ClientRegistry } from './client-registry';
import { droppedOutputNotice, unknownJob } from './client-session';
import { JobSink, WorkerPool } from './pool/worker-pool';
import { GpuReader, readResources } from './resources';
import type { ZapHandler } from './zap';
import type { DetachedJobs } from './detached/detached-jobs';
import { AgentParts, openAgentParts } from './agent-parts';
import { JobRequests } from './detached/job-requests';
import { clientOwner } from './client-owner';
import { lockWorkdir } from './workdir-lock';
import { PACKAGE_VERSION } from '../common/package-info';
import {
  AgentOptions,
  agentLimits,
  DEFAULT_CLIENT_GRACE_MS,
  DEFAULT_CLIENT_TIMEOUT_MS,
  DEFAULT_RESULT_TTL_MS,
} from './agent-options';

export type { AgentCurve, AgentOptions } from './agent-options';
export {
  DEFAULT_AGENT_LIMITS,
  DEFAULT_CLIENT_GRACE_MS,
  DEFAULT_CLIENT_TIMEOUT_MS,
  DEFAULT_RESULT_TTL_MS,
} from './agent-options';

/** On stop, replies of jobs that ended this long before it are waited for too: they may still sit in ZeroMQ. */
const COLLECT_WINDOW_MS = 1_000;
/** On stop, how long to wait for clients to collect those replies (clients ping every second). */
const COLLECT_TIMEOUT_MS = 3_000;

export class Agent {
  readonly info: AgentInfo;
  private readonly sendQueue: SendQueue;
  private clients!: ClientRegistry;
  private readonly log: (line: string) => void;
  private readonly limits: AgentLimits;
  private readonly headerLimits: HeaderLimits;
  private releaseWorkdir: () => void = () => undefined;
  private readonly gpuReader: GpuReader;
  private stopping?: Promise<void>;
  private loop?: Promise<void>;
  private readonly jobRequests: JobRequests;

  readonly endpoint: string;
  private readonly router: zmq.Router;
  private readonly store: SnapshotStore;
  private readonly pool: WorkerPool;
  private readonly zap: ZapHandler | undefined;
  private readonly detached: DetachedJobs;

  private constructor(
    private readonly options: AgentOptions,
    parts: AgentParts,
  ) {
    this.endpoint = parts.endpoint;
    this.router = parts.router;
    this.store = parts.store;
    this.pool = parts.pool;
    this.zap = parts.zap;
    this.detached = parts.detached;
    this.log = options.log ?? (() => undefined);
    this.limits = agentLimits(options);
    this.headerLimits = { ...DEFAULT_HEADER_LIMITS, maxFiles: this.limits.maxFiles };
    this.sendQueue = new SendQueue(this.router);
    this.gpuReader = new GpuReader(options.nvidiaSmi ?? 'nvidia-smi');
    this.jobRequests = new JobRequests({
      detached: this.detached,
      pool: this.pool,
      maxJobsPerOwner: this.limits.maxJobsPerClient,
      // Proven on every request, not once per connection: a routing id that another key takes over later inherits nothing.
      ownerOf: (client, key) => clientOwner(options.curve, Buffer.from(client, 'hex'), key, this.log),
      encode: (reply, payload) => this.encode(reply, payload),
    });
    this.info = {
      name: 'remote-agent',
      version: PACKAGE_VERSION,
      protocol: PROTOCOL_VERSION,
      instance: randomBytes(8).toString('hex'),
      hostname: os.hostname(),
      node: process.version,
      pid: process.pid,
      workers: options.gpus?.length ?? options.workers,
      limits: this.limits,
    };
  }

  /** Locks the workdir, opens the store, starts the workers, then binds: the agent answers once it can run jobs. */
  static async start(options: AgentOptions): Promise<Agent> {
    const workdir = path.resolve(options.workdir);
    const releaseWorkdir = lockWorkdir(workdir);
    try {
      const agent = await Agent.startLocked(options, workdir);
      agent.releaseWorkdir = releaseWorkdir;
      return agent;
    } catch (error) {
      releaseWorkdir();
      throw error;
    }
  }

  private static async startLocked(options: AgentOptions, workdir: string): Promise<Agent> {
    const agent = new Agent(options, await openAgentParts(options, workdir));
    agent.loop = agent.receiveLoop();
    agent.watchClients(agent.router);
    return agent;
  }

  /** Cancels every job, ends every worker, sends the last replies, closes the socket. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.clients.stop();
      const since = Date.now() - COLLECT_WINDOW_MS;
      await this.pool.stop();
      this.detached.stop();
      await this.sendQueue.drained();
      await this.untilCollected(since);
      // A finished send is only queued: with linger 0 a close could drop the last replies before they are written.
      // Bounded, so a client that stopped reading cannot hold the shutdown.
      this.router.linger = 2_000;
      this.router.close();
      await this.loop?.catch(() => undefined);
      await this.zap?.close();
      this.releaseWorkdir();
    })();
    return this.stopping;
  }

  /**
   * A sent reply is only queued in ZeroMQ, and closing the socket or exiting can drop it. The replies of jobs that
   * ended just before or during the stop are the ones at risk: wait, bounded, for the clients' pings to show they
   * have them.
   */
  private async untilCollected(since: number): Promise<void> {
    const deadline = Date.now() + COLLECT_TIMEOUT_MS;
    const uncollected = (): boolean => [...this.clients.all()].some((session) => session.holdsRepliesSince(since));
    while (uncollected() && Date.now() < deadline) await sleep(20);
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [identity, ...frames] of this.router) {
        if (identity) void this.handle(identity, frames);
      }
    } catch (error) {
      if (!this.stopping) this.log(`receive loop ended: ${(error as Error).message}`);
    }
  }

  /** One message in, one final reply out, whatever happens in between. */
  private async handle(identity: Buffer, frames: Buffer[]): Promise<void> {
    const client = identity.toString('hex');
    this.clients.seen(client, identity);
    let header: Record<string, unknown> | undefined;
    try {
      header = parseHeader(frames[0], this.headerLimits);
      const payload = joinPieces(header, frames.slice(1), this.limits.maxMessageBytes);
      const request = validateRequest(header, payload.length, this.headerLimits);
      if (this.stopping && request.type !== 'ping')
        throw new AgentError('SHUTTING_DOWN', 'the agent is shutting down; start it again and retry');
      await this.dispatch(identity, client, request, payload);
    } catch (error) {
      const wire = toWireError(error);
      if (wire.code === 'INTERNAL') this.log(`internal error on a request from ${client}: ${(error as Error).stack}`);
      else this.log(`refused a request from ${client}: ${wire.code}: ${wire.message}`);
      void this.reply(identity, { type: 'error', re: requestIdOf(header), error: wire });
    }
  }

  private async dispatch(identity: Buffer, client: string, request: Request, payload: Buffer[]): Promise<void> {
    switch (request.type) {
      case 'hello':
        this.log(`client ${client} (${request.client}) connected`);
        clientOwner(this.options.curve, identity, request.key, this.log); // an unproven key is logged at once
        return this.reply(identity, { type: 'welcome', re: request.id, agent: this.info });
      case 'ping': {
        // The pong goes first: a client that reached a restarted agent learns it from the pong's instance before any
        // JOB_UNKNOWN for the calls the old agent had.
        const pong = this.reply(identity, { type: 'pong', re: request.id, instance: this.info.instance });
        this.clients
          .session(client, identity)
          .onPing(
            request.waiting ?? [],
            request.resend === true,
            (job) => void this.reply(identity, { type: 'error', re: job, error: unknownJob(job) }),
          );
        return pong;
      }
      case 'status':
        return this.reply(identity, {
          type: 'status',
          re: request.id,
          agent: this.info,
          workers: this.pool.status(),
          store: this.store.stats(),
          resources: await readResources(this.gpuReader),
        });
      case 'snapshot.check': {
        const status = await this.store.check(request.snapshot, request.files);
        return this.reply(identity, { type: 'snapshot.status', re: request.id, snapshot: request.snapshot, ...status });
      }
      case 'snapshot.upload': {
        const status = await this.store.upload(request.snapshot, request.files, payload[0]!);
        return this.reply(identity, { type: 'snapshot.status', re: request.id, snapshot: request.snapshot, ...status });
      }
      case 'call':
        return this.call(identity, client, request, payload);
      case 'cancel':
        if (!this.jobRequests.unwatch(client, request.job)) this.pool.cancel(jobKey(client, request.job), 'CANCELLED');
        return this.reply(identity, { type: 'ack', re: request.id });
      case 'jobs':
        return this.reply(identity, this.jobRequests.list(this.clients.session(client, identity), request));
      case 'job.cancel':
        return this.reply(identity, this.jobRequests.cancel(this.clients.session(client, identity), request));
      case 'attach':
        return this.jobRequests.attach(client, this.clients.session(client, identity), request);
    }
  }

  private call(identity: Buffer, client: string, request: CallRequest, args: Buffer[]): void {
    const session = this.clients.session(client, identity);
    if (session.knows(request.id)) {
      throw new AgentError('BAD_MESSAGE', `job id ${request.id} was already used by this client; use a new id`);
    }
    if (session.jobs.size >= this.limits.maxJobsPerClient) {
      throw new AgentError(
        'TOO_LARGE',
        `this client has ${session.jobs.size} jobs running or queued, the agent's bound (--max-jobs-per-client) is ` +
          `${this.limits.maxJobsPerClient}: wait for some to finish or cancel them`,
      );
    }
    if (request.snapshot !== null && !this.store.has(request.snapshot)) {
      throw new AgentError(
        'SNAPSHOT_MISSING',
        `the agent does not hold snapshot ${request.snapshot.slice(0, 12)} (never uploaded, or evicted): upload it, then call again`,
      );
    }
    const release = request.snapshot === null ? () => undefined : this.store.pin(request.snapshot);
    if (request.snapshot !== null) void this.store.touch(request.snapshot);
    session.jobs.add(request.id);
    if (request.options.detach) {
      // Kept for redelivery like a call's result, so a reconnecting client learns of the job it started.
      return session.finish(
        request.id,
        this.encode(this.jobRequests.detach(client, session, request, args, release)),
        () => [],
      );
    }
    const re = request.id;
    const finish = (reply: Unversioned<Reply>, payload: readonly Frame[] = []): void => {
      release();
      const notice = (count: number): Frame[] =>
        this.encode({ type: 'output', re, stream: 'stderr', text: droppedOutputNotice(count) });
      session.finish(re, this.encode(reply, payload), notice);
    };
    const sink: JobSink = {
      output: (stream, text) => void session.output(re, this.encode({ type: 'output', re, stream, text })),
      display: (display) => void session.output(re, this.encode({ type: 'display', re, display })),
      result: (frames, info) =>
        finish({ type: 'result', re, worker: info.worker, elapsedMs: Math.round(info.elapsedMs) }, frames),
      error: (error: WireError) => finish({ type: 'error', re, error }),
    };
    this.pool.submit(
      {
        id: jobKey(client, re),
        label: re,
        client,
        snapshot: request.snapshot,
        code: request.code,
        options: request.options,
        args,
      },
      sink,
    );
  }

  private encode(reply: Unversioned<Reply>, payload: readonly Frame[] = []): Frame[] {
    return encodeMessage({ v: PROTOCOL_VERSION, ...reply }, payload);
  }

  private reply(identity: Buffer, reply: Unversioned<Reply>, payload: readonly Frame[] = []): Promise<void> {
    return this.send(identity, this.encode(reply, payload)).then((failure) => {
      if (failure !== null) this.log(`could not send ${reply.type} to ${identity.toString('hex')}: ${failure}`);
    });
  }

  /** Sends to one client; resolves with null or the failure's code (EHOSTUNREACH: not connected; EAGAIN: queue full). */
  private async send(identity: Buffer, frames: readonly Frame[]): Promise<string | null> {
    try {
      await this.sendQueue.send([identity, ...frames]);
      return null;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    }
  }

  /** Client liveness: see client-registry.ts. A closed connection is the cue to look for clients that are gone. */
  private watchClients(router: zmq.Router): void {
    this.clients = new ClientRegistry({
      timeoutMs: this.options.clientTimeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS,
      graceMs: this.options.clientGraceMs ?? DEFAULT_CLIENT_GRACE_MS,
      ttlMs: this.options.resultTtlMs ?? DEFAULT_RESULT_TTL_MS,
      send: (identity, frames) => this.send(identity, frames),
      probe: () => this.encode({ type: 'pong', re: 'probe', instance: this.info.instance }),
      cancelJobs: (client) => this.pool.cancelClient(client) + this.jobRequests.unwatchClient(client),
      forget: (client) => this.pool.forgetClient(client),
      log: this.log,
    });
    router.events.on('disconnect', () => void this.clients.connectionClosed());
  }
}

function jobKey(client: string, job: string): string {
  return `${client}/${job}`;
}
