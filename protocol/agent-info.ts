// What the agent tells about itself: in its welcome (who it is, its bounds) and in a status reply (its workers, its
// snapshot store, its host's resources). Each schema is the one definition of its shape; the type comes from it.

import { Static, Type } from '@sinclair/typebox';

import { Int, Text } from './schema';

export const PROTOCOL_VERSION = 2 as const;
export const Version = Type.Literal(PROTOCOL_VERSION);

/** The agent's bounds, sent in its welcome so a client can refuse an oversize request before sending it. */
export const AgentLimits = Type.Object({
  maxMessageBytes: Int(),
  maxArchiveBytes: Int(),
  maxFileBytes: Int(),
  maxSnapshotBytes: Int(),
  maxFiles: Int(),
  maxJobsPerClient: Int(),
});
export type AgentLimits = Static<typeof AgentLimits>;

export const AgentInfo = Type.Object({
  name: Type.Literal('remote-agent'),
  version: Text(),
  protocol: Version,
  /** Random per agent start: a change means the agent restarted. */
  instance: Text(),
  hostname: Text(),
  node: Text(),
  pid: Int(),
  workers: Int(),
  limits: AgentLimits,
});
export type AgentInfo = Static<typeof AgentInfo>;

const MaybeNumber = Type.Union([Type.Number(), Type.Null()]);

export const GpuInfo = Type.Object({
  index: Int(),
  name: Type.String({ maxLength: 1024 }),
  memoryTotalMb: MaybeNumber,
  memoryUsedMb: MaybeNumber,
  utilizationPercent: MaybeNumber,
});
export type GpuInfo = Static<typeof GpuInfo>;

/** The agent host's resources, read when `status` is asked. */
export const Resources = Type.Object({
  cpus: Int(),
  cpuModel: Type.String({ maxLength: 1024 }),
  loadAverage: Type.Array(Type.Number(), { maxItems: 16 }),
  memoryTotalMb: Type.Number(),
  memoryFreeMb: Type.Number(),
  gpus: Type.Array(GpuInfo, { maxItems: 4096 }),
  /** Why GPUs could not be read, when nvidia-smi exists but failed. */
  gpuError: Type.Optional(Type.String({ maxLength: 64 * 1024 })),
});
export type Resources = Static<typeof Resources>;

export const WorkerStatus = Type.Object({
  index: Int(),
  /** The GPU(s) this worker is pinned to (its CUDA_VISIBLE_DEVICES), if any. */
  gpu: Type.Optional(Type.String({ maxLength: 1024 })),
  pid: Type.Union([Int(), Type.Null()]),
  state: Type.Union([
    Type.Literal('starting'),
    Type.Literal('idle'),
    Type.Literal('busy'),
    Type.Literal('restarting'),
    Type.Literal('stopped'),
  ]),
  restarts: Int(),
  queued: Int(),
  snapshot: Type.Union([Type.String({ maxLength: 128 }), Type.Null()]),
  /** Why the worker is not running (its process cannot be started), while it is retried. */
  error: Type.Optional(Type.String({ maxLength: 64 * 1024 })),
});
export type WorkerStatus = Static<typeof WorkerStatus>;

export const StoreStats = Type.Object({
  snapshots: Int(),
  blobs: Int(),
  bytes: Int(),
  /** Snapshot directories created since the agent started (extraction count). */
  created: Int(),
  evicted: Int(),
});
export type StoreStats = Static<typeof StoreStats>;
