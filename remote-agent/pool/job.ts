// A job as the pool sees it: what the server asked for, where its outcome goes, and where it is in its life.

import type { WireError } from '../../protocol/errors';
import type { DisplayContent, JobCode, JobOptions } from '../../protocol/messages';
import type { CancelReason } from '../worker/channel';
import type { WorkerProcess } from './worker-process';

export interface JobSpec {
  /** Unique in the agent. */
  id: string;
  /** How errors name the job to its user (the client's own id); defaults to `id`. */
  label?: string;
  client: string;
  /** Started to outlive its client (detached jobs): not cancelled when the client goes away. */
  outlivesClient?: boolean;
  snapshot: string | null;
  code: JobCode;
  options: JobOptions;
  args: Uint8Array[];
}

export interface JobSink {
  /** The job left the queue for a worker. */
  started?(worker: number): void;
  output(stream: 'stdout' | 'stderr', text: string): void;
  /** Rich output, in order with the text. */
  display(content: DisplayContent): void;
  result(frames: Uint8Array[], info: { worker: number; elapsedMs: number }): void;
  error(error: WireError, info: { worker: number | null }): void;
}

export interface Job {
  spec: JobSpec;
  sink: JobSink;
  worker: WorkerProcess;
  state: 'queued' | 'running' | 'done';
  stop: CancelReason | null;
  /** The worker took the cancel message: its event loop is free, so no SIGINT is sent. */
  acknowledged?: boolean;
  timers: NodeJS.Timeout[];
}

export function labelOf(job: Job): string {
  return job.spec.label ?? job.spec.id;
}

/** Calls into user-supplied callbacks (sinks, hooks) so that one that throws cannot break the pool. */
export function safely(log: (line: string) => void, call: () => void): void {
  try {
    call();
  } catch (err) {
    log(`a job sink or hook threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}
