// What an agent is started with: its options, and the defaults of its bounds and timeouts.

import type * as zmq from 'zeromq';

import { MAX_WIRE_FRAME_BYTES, TCP_KEEPALIVE } from '../protocol/frames';
import type { AgentLimits } from '../protocol/messages';
import type { DEFAULT_DETACHED_LIMITS } from './detached/detached-jobs';
import { DEFAULT_STORE_LIMITS } from './store/snapshot-store';

/** CurveZMQ: the agent's key pair and the client public keys it admits (Z85). */
export interface AgentCurve {
  publicKey: string;
  secretKey: string;
  allowedClientKeys: string[];
}

export interface AgentOptions {
  bind: string;
  /** Encrypt and authenticate; without it the agent must be on loopback (the CLI enforces that). */
  curve?: AgentCurve;
  workdir: string;
  workers: number;
  /** Directories bare imports of shipped code resolve from. */
  nodePaths: string[];
  /** Bounds on what a client may send and keep; defaults in DEFAULT_AGENT_LIMITS. */
  limits?: Partial<AgentLimits & { diskBudgetBytes: number }>;
  /** A client silent this long (no heartbeat) has its running jobs cancelled. */
  clientTimeoutMs?: number;
  /** A client whose connection closed has its running and queued jobs cancelled after this long (a reconnect ends it). */
  clientGraceMs?: number;
  /** How long the final reply of a job stays available to a client that was disconnected when it ended. */
  resultTtlMs?: number;
  /** Grace period between cancelling a job and killing its worker. */
  cancelGraceMs?: number;
  /** One worker per entry, pinned with CUDA_VISIBLE_DEVICES (overrides `workers`). */
  gpus?: string[];
  /** The nvidia-smi to read GPUs with (a fake one in tests); default `nvidia-smi` on PATH. */
  nvidiaSmi?: string;
  /** Bounds of detached jobs (output, result, time to live, count, disk); defaults in DEFAULT_DETACHED_LIMITS. */
  detached?: Partial<typeof DEFAULT_DETACHED_LIMITS>;
  /** Worker heap limit in MB (node's --max-old-space-size); default: node's own. */
  workerMaxOldSpaceMb?: number;
  log?: (line: string) => void;
}

const MiB = 1024 * 1024;

export const DEFAULT_AGENT_LIMITS: AgentLimits = {
  maxMessageBytes: 2048 * MiB,
  maxArchiveBytes: DEFAULT_STORE_LIMITS.maxArchiveBytes,
  maxFileBytes: DEFAULT_STORE_LIMITS.maxFileBytes,
  maxSnapshotBytes: DEFAULT_STORE_LIMITS.maxSnapshotBytes,
  maxFiles: DEFAULT_STORE_LIMITS.maxFiles,
  maxJobsPerClient: 64,
};

export const DEFAULT_CLIENT_TIMEOUT_MS = 30 * 60_000;
export const DEFAULT_CLIENT_GRACE_MS = 15_000;
export const DEFAULT_RESULT_TTL_MS = 30 * 60_000;

export function agentLimits(options: AgentOptions): AgentLimits {
  const { diskBudgetBytes: _ignored, ...limits } = options.limits ?? {};
  return { ...DEFAULT_AGENT_LIMITS, ...limits };
}

/**
 * The agent's socket. maxMessageSize bounds each wire frame, so a peer cannot make the agent allocate more than that
 * before it has authenticated (it is disconnected instead); clients check --max-message-mb for a whole value frame
 * first, since they learn it from the welcome, and the agent checks it again when joining pieces. sendTimeout 0: a
 * send to a vanished or stalled client fails at once instead of blocking the replies to everyone else (final replies
 * are kept for redelivery).
 */
export function routerOptions(limits: AgentLimits, curve: AgentCurve | undefined): zmq.SocketOptions<zmq.Router> {
  return {
    mandatory: true,
    linger: 0,
    sendTimeout: 0,
    // Messages, not bytes: at most ~64 MiB of output (64 KiB chunks) queued for a slow client before it is dropped.
    sendHighWaterMark: 1_000,
    // A vanished client is disconnected (closed connection, or TCP keepalive), so sends to it fail at once
    // (EHOSTUNREACH). Not ZMTP heartbeats: they would cut off a client still receiving a large result slowly.
    ...TCP_KEEPALIVE,
    // Per wire frame, and before authentication too: larger values and archives come in pieces (protocol/frames.ts).
    maxMessageSize: Math.min(limits.maxMessageBytes, MAX_WIRE_FRAME_BYTES),
    handshakeInterval: 30_000, // a connection that has not authenticated by then is dropped (README, Bounds)
    ...curveServerOptions(curve),
  };
}

function curveServerOptions(curve: AgentCurve | undefined): zmq.SocketOptions<zmq.Router> {
  if (!curve) return {};
  return {
    curveServer: true,
    curveSecretKey: curve.secretKey,
    curvePublicKey: curve.publicKey,
    zapDomain: 'tslab-remote',
  };
}
