// The wire protocol's message types: one interface per message, no logic. `docs/protocol.md` describes each one
// with its frames and an example; `validate.ts` checks received messages against these shapes at runtime.
//
// Every ZeroMQ message is: frame 0 = header (UTF-8 JSON, one of the types below), then binary frames whose meaning
// the header's type fixes. Large buffers always travel as frames of their own, never inside the header.

import type { WireError } from './errors';
import type { DetachOptions, JobReplyMessage, JobRequestMessage } from './job-messages';

export const PROTOCOL_VERSION = 1 as const;

/** One file of a snapshot: a safe relative POSIX path, its size and its content hash (see manifest.ts). */
export interface ManifestEntry {
  path: string;
  size: number;
  hash: string;
}

/**
 * What a job runs. `source`: a JavaScript function expression, called with the arguments (frames: a value).
 * `pickle`: the frames hold a pickled call, `[function, ...arguments]` (pickle/); the result comes back
 * pickled too. `filename` names the job's file in remote stacks.
 */
export type JobCode = { kind: 'source'; source: string; filename?: string } | { kind: 'pickle'; filename?: string };

export interface JobOptions {
  /** Cancel the job after this many milliseconds. */
  timeoutMs?: number;
  /** Run on this worker (index) instead of the client's sticky worker. */
  worker?: number;
  /** Working directory of the job, relative to the snapshot root. */
  cwd?: string;
  /** Run on the agent on its own, outliving this client (job-messages.ts). */
  detach?: DetachOptions;
}

interface Base {
  v: typeof PROTOCOL_VERSION;
}

// ---- client → agent --------------------------------------------------------------------------------------------

export interface HelloRequest extends Base {
  type: 'hello';
  id: string;
  client: string;
  /** On an agent with keys: the client's public key, with the proof that it holds the secret (common/key-proof.ts). */
  key?: { publicKey: string; proof: string };
}
/**
 * `waiting`: ids of the calls this client still awaits (the agent forgets the kept final replies of the others).
 * `resend`: the client has just reconnected: the agent re-sends the kept final replies of the awaited calls, and
 * answers JOB_UNKNOWN for an awaited call it has no record of.
 */
export interface PingRequest extends Base {
  type: 'ping';
  id: string;
  waiting?: string[];
  resend?: boolean;
}
export interface StatusRequest extends Base {
  type: 'status';
  id: string;
}
/** "Which of these files do you lack?" The agent materializes the snapshot at once when it lacks none. */
export interface SnapshotCheckRequest extends Base {
  type: 'snapshot.check';
  id: string;
  snapshot: string;
  files: ManifestEntry[];
}
/** Frame 1: a zip archive holding the missing files under their manifest paths. */
export interface SnapshotUploadRequest extends Base {
  type: 'snapshot.upload';
  id: string;
  snapshot: string;
  files: ManifestEntry[];
}
/** Frames 1..n: the arguments, encoded by values.ts (body, then out-of-band buffers). `id` is the job id. */
export interface CallRequest extends Base {
  type: 'call';
  id: string;
  snapshot: string | null;
  code: JobCode;
  options: JobOptions;
}
export interface CancelRequest extends Base {
  type: 'cancel';
  id: string;
  job: string;
}

export type Request =
  | HelloRequest
  | PingRequest
  | StatusRequest
  | SnapshotCheckRequest
  | SnapshotUploadRequest
  | CallRequest
  | CancelRequest
  | JobRequestMessage;

// ---- agent → client --------------------------------------------------------------------------------------------

/** The agent's bounds, sent in its welcome so a client can refuse an oversize request before sending it. */
export interface AgentLimits {
  maxMessageBytes: number;
  maxArchiveBytes: number;
  maxFileBytes: number;
  maxSnapshotBytes: number;
  maxFiles: number;
  maxJobsPerClient: number;
}

export interface AgentInfo {
  name: 'remote-agent';
  version: string;
  protocol: typeof PROTOCOL_VERSION;
  /** Random per agent start: a change means the agent restarted. */
  instance: string;
  hostname: string;
  node: string;
  pid: number;
  workers: number;
  limits: AgentLimits;
}

export interface GpuInfo {
  index: number;
  name: string;
  memoryTotalMb: number | null;
  memoryUsedMb: number | null;
  utilizationPercent: number | null;
}

/** The agent host's resources, read when `status` is asked. */
export interface Resources {
  cpus: number;
  cpuModel: string;
  loadAverage: number[];
  memoryTotalMb: number;
  memoryFreeMb: number;
  gpus: GpuInfo[];
  /** Why GPUs could not be read, when nvidia-smi exists but failed. */
  gpuError?: string;
}

export interface WorkerStatus {
  index: number;
  /** The GPU(s) this worker is pinned to (its CUDA_VISIBLE_DEVICES), if any. */
  gpu?: string;
  pid: number | null;
  state: 'starting' | 'idle' | 'busy' | 'restarting' | 'stopped';
  restarts: number;
  queued: number;
  snapshot: string | null;
  /** Why the worker is not running (its process cannot be started), while it is retried. */
  error?: string;
}

export interface StoreStats {
  snapshots: number;
  blobs: number;
  bytes: number;
  /** Snapshot directories created since the agent started (extraction count). */
  created: number;
  evicted: number;
}

export interface WelcomeReply extends Base {
  type: 'welcome';
  re: string;
  agent: AgentInfo;
}
export interface PongReply extends Base {
  type: 'pong';
  re: string;
  instance: string;
}
export interface StatusReply extends Base {
  type: 'status';
  re: string;
  agent: AgentInfo;
  workers: WorkerStatus[];
  store: StoreStats;
  resources: Resources;
}
export interface SnapshotStatusReply extends Base {
  type: 'snapshot.status';
  re: string;
  snapshot: string;
  ready: boolean;
  /** Content hashes the agent lacks; empty when ready. */
  missing: string[];
}
/** Streamed while a job runs, in the order the job wrote. */
export interface OutputReply extends Base {
  type: 'output';
  re: string;
  stream: 'stdout' | 'stderr';
  text: string;
}
/** Frames 1..n: the job's return value, encoded by values.ts. */
export interface ResultReply extends Base {
  type: 'result';
  re: string;
  worker: number;
  elapsedMs: number;
}
export interface ErrorReply extends Base {
  type: 'error';
  /** The request id, or null when the request was too malformed to have one. */
  re: string | null;
  error: WireError;
}
export interface AckReply extends Base {
  type: 'ack';
  re: string;
}

export type Reply =
  | WelcomeReply
  | PongReply
  | StatusReply
  | SnapshotStatusReply
  | OutputReply
  | ResultReply
  | ErrorReply
  | AckReply
  | JobReplyMessage;

/** A message as code builds it: the sender adds the version. */
export type Unversioned<T> = T extends unknown ? Omit<T, 'v'> : never;

/** Replies after which no more replies come for the same request. */
export const FINAL_REPLIES: ReadonlySet<Reply['type']> = new Set([
  'welcome',
  'pong',
  'status',
  'snapshot.status',
  'result',
  'error',
  'ack',
  'detached',
  'jobs',
]);
