// Which worker runs a job: the one the job names, else the client's sticky worker (its module state lives there),
// else, for a client seen for the first time, the least loaded one.

import type { WorkerProcess } from './worker-process';

export class Scheduler {
  /** Client → its sticky worker. */
  private readonly clients = new Map<string, WorkerProcess>();

  constructor(private readonly workers: readonly WorkerProcess[]) {}

  /** The worker for a job, or a message saying why the requested one does not exist. */
  pick(client: string, pinned: number | undefined, agentName: string): WorkerProcess | string {
    if (pinned !== undefined) {
      const worker = Number.isInteger(pinned) ? this.workers[pinned] : undefined;
      return (
        worker ??
        `options.worker ${pinned} is out of range: agent ${agentName} has workers 0..${this.workers.length - 1}`
      );
    }
    let worker = this.clients.get(client);
    if (!worker) {
      worker = this.leastLoaded();
      this.clients.set(client, worker);
    }
    return worker;
  }

  forget(client: string): void {
    this.clients.delete(client);
  }

  /** The worker for a new client: least work queued, then fewest clients, then lowest index. */
  private leastLoaded(): WorkerProcess {
    const clientsOf = (worker: WorkerProcess): number => [...this.clients.values()].filter((w) => w === worker).length;
    const load = (worker: WorkerProcess): number => worker.queue.length + (worker.running ? 1 : 0);
    let best = this.workers[0]!;
    for (const worker of this.workers.slice(1)) {
      const diff = load(worker) - load(best) || clientsOf(worker) - clientsOf(best);
      if (diff < 0) best = worker;
    }
    return best;
  }
}
