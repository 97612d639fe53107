// What each message from a worker means: output and display go to the sink of the job it runs, a result or error ends
// that job, `ready` puts the worker to work. A message about a job the worker is not running (one the pool already
// ended) is logged and dropped.

import type { FromWorker } from '../worker/channel';
import { Job, safely } from './job';
import type { WorkerProcess } from './worker-process';

export interface MessageTarget {
  log: (line: string) => void;
  /** The worker process started and takes jobs. */
  ready: (pid: number, heapLimitMb: number) => void;
  /** The job the worker runs ended with this message. */
  ended: (job: Job, message: Extract<FromWorker, { type: 'result' | 'error' }>) => void;
}

export function routeWorkerMessage(worker: WorkerProcess, message: FromWorker, target: MessageTarget): void {
  const job = 'job' in message && worker.running?.spec.id === message.job ? worker.running : undefined;
  switch (message.type) {
    case 'ready':
      return target.ready(message.pid, message.heapLimitMb);
    case 'output':
      if (job) safely(target.log, () => job.sink.output(message.stream, message.text));
      else target.log(`worker ${worker.index} ${message.stream} (no job): ${message.text.trimEnd()}`);
      return;
    case 'display':
      if (job) safely(target.log, () => job.sink.display(message.display));
      return;
    case 'result':
    case 'error':
      if (job) target.ended(job, message);
      else
        target.log(`worker ${worker.index}: ${message.type} for job ${message.job}, which it is not running; dropped`);
      return;
    case 'log':
      return target.log(`worker ${worker.index}: ${message.line}`);
    case 'cancel-ack':
      if (job) job.acknowledged = true;
      return;
  }
}

/** A line the worker process wrote natively (not through console): to the job it runs, or the log. */
export function routeNativeLine(
  worker: WorkerProcess,
  stream: 'stdout' | 'stderr',
  line: string,
  log: (line: string) => void,
): void {
  const job = worker.running;
  if (job) safely(log, () => job.sink.output(stream, `${line}\n`));
  else log(`worker ${worker.index} ${stream}: ${line}`);
}
