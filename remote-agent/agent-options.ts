// What an agent is started with: its options, and the defaults of its bounds and timeouts.

import type * as zmq from 'zeromq';

import type { AgentLimits } from '../protocol/messages';
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

export function curveServerOptions(curve: AgentCurve | undefined): zmq.SocketOptions<zmq.Router> {
  if (!curve) return {};
  return { curveServer: true, curveSecretKey: curve.secretKey, curvePublicKey: curve.publicKey, zapDomain: 'tslab-remote' };
}
