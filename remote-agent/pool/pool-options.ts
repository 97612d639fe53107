// What a worker pool (worker-pool.ts) is started with.

/** How long a cancelled job gets to end before its worker is killed. */
export const DEFAULT_CANCEL_GRACE_MS = 2_000;

export interface PoolOptions {
  size: number;
  runDir: string;
  snapshotsRoot: string;
  compileCacheDir: string;
  nodePaths: string[];
  agentName: string;
  graceMs?: number;
  maxOldSpaceMb?: number;
  /** How long a new worker may take to report ready before it is killed (default 30 s). */
  startTimeoutMs?: number;
  log: (line: string) => void;
  onInUseChange?: (worker: number, snapshots: string[]) => void;
  /** GPU pinning: worker i gets CUDA_VISIBLE_DEVICES=gpus[i] (so `size` should equal gpus.length). */
  gpus?: string[];
  /** The time in ms (default Date.now), for the crash-loop window; tests pass their own. */
  now?: () => number;
}
