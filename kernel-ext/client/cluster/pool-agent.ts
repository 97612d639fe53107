// One agent of a pool: its connection, what it has (workers), and what the pool has it doing.

import { abortable, AbortError } from '../abort';
import { AgentClient, connect } from '../agent-client';
import type { ConnectOptions } from '../client-options';
import type { LocalSnapshot } from '../snapshot';
import type { AgentEndpoint, SessionCurve } from './types';

export type PoolAgentState = 'up' | 'lost' | 'closed';

/** A row of `pool.agents()`. */
export interface AgentListing {
  name: string;
  host: string;
  endpoint: string;
  state: PoolAgentState;
  workers: number;
  /** GPUs of the host (from its last status; 0 when it has none or none were read). */
  gpus: number;
  /** Items of this pool running or waiting on the agent now. */
  running: number;
  done: number;
  failed: number;
  /** Why the agent is lost. */
  error?: string;
}

/** A pool's connections are quicker to give up than a single client's: another agent can take the work. */
export const POOL_CONNECT_DEFAULTS: ConnectOptions = { heartbeatTimeoutMs: 3_000, silenceTimeoutMs: 15_000 };

export class PoolAgent {
  state: PoolAgentState = 'up';
  error?: string;
  running = 0;
  done = 0;
  failed = 0;
  gpus = 0;
  private uploads = new Map<string, Promise<unknown>>();

  private constructor(
    readonly endpoint: AgentEndpoint,
    readonly client: AgentClient,
  ) {}

  static async connect(
    endpoint: AgentEndpoint,
    curve: SessionCurve | undefined,
    options: ConnectOptions,
  ): Promise<PoolAgent> {
    const client = await connect(endpoint.endpoint, {
      ...POOL_CONNECT_DEFAULTS,
      ...options,
      clientName: options.clientName ?? `tslab-remote pool pid ${process.pid}`,
      ...(endpoint.serverKey && curve ? { curve: { serverKey: endpoint.serverKey, ...curve } } : {}),
    });
    const agent = new PoolAgent(endpoint, client);
    // GPUs for the listing: from a status, which may be slow (nvidia-smi); the pool does not wait for it.
    client.status().then(
      (status) => (agent.gpus = status.resources?.gpus?.length ?? 0),
      () => undefined,
    );
    return agent;
  }

  get name(): string {
    return this.endpoint.name;
  }

  get workers(): number {
    return this.client.agent.workers;
  }

  /** Usable for new work: up, connected, and heard from recently. */
  get usable(): boolean {
    return this.state === 'up' && this.client.reachable;
  }

  /** Uploads a snapshot once per pool agent (the client itself sends only the files the agent lacks). */
  upload(snapshot: LocalSnapshot, signal?: AbortSignal): Promise<unknown> {
    let upload = this.uploads.get(snapshot.hash);
    if (!upload) {
      // Shared by every map and call that needs it, so no one caller's signal may stop it: each caller stops
      // waiting on its own signal instead (abortable), and the transfer goes on for the others.
      upload = this.client.upload(snapshot);
      this.uploads.set(snapshot.hash, upload);
      upload.catch(() => this.uploads.delete(snapshot.hash));
    }
    return abortable(
      upload,
      signal,
      () => new AbortError(`stopped waiting for snapshot ${snapshot.hash.slice(0, 12)} on ${this.name}: aborted`),
    );
  }

  /** A restarted agent may have lost snapshots: upload again (a check when it kept them). */
  forgetUploads(): void {
    this.uploads.clear();
  }

  lose(reason: string): void {
    if (this.state !== 'up') return;
    this.state = 'lost';
    this.error = reason;
  }

  /** A lost agent that answers again is taken back for the next map. */
  revive(): void {
    if (this.state === 'lost' && this.client.reachable) {
      this.state = 'up';
      this.error = undefined;
      this.forgetUploads();
    }
  }

  listing(): AgentListing {
    return {
      name: this.name,
      host: this.endpoint.host ?? this.client.agent.hostname,
      endpoint: this.endpoint.endpoint,
      state: this.state === 'up' && !this.client.reachable ? 'lost' : this.state,
      workers: this.workers,
      gpus: this.gpus,
      running: this.running,
      done: this.done,
      failed: this.failed,
      ...(this.error ? { error: this.error } : {}),
    };
  }

  async close(): Promise<void> {
    this.state = 'closed';
    await this.client.close();
  }
}
