// The pool's socket: a ROUTER bound to ipc://<runDir>/workers.sock (tcp loopback when that path is too long for a
// unix socket); each worker connects a DEALER with a fresh random routing id per process, so a message from a dead
// incarnation can never be taken for its successor's. See worker/channel.ts for the messages.

import * as fs from 'node:fs';
import * as path from 'node:path';

import * as zmq from 'zeromq';

import { SendQueue } from '../../protocol/frames';
import { FromWorker, parseFromWorker } from '../worker/channel';

export interface Delivery<W> {
  message(worker: W, message: FromWorker, payload: Uint8Array[]): void;
  /** A message from the worker that does not parse. */
  unreadable(worker: W, why: string): void;
}

const MAX_IPC_PATH = 100;

export class WorkerTransport<W> {
  /** Routing id → the worker process that has it; messages from ids not here (dead incarnations) are dropped. */
  private readonly byRoutingId = new Map<string, W>();
  private readonly router = new zmq.Router({ mandatory: true, linger: 0 });
  private readonly sendQueue = new SendQueue(this.router);
  private ipcPath: string | null = null;
  private receiving: Promise<void> | null = null;
  private closing = false;
  endpoint = '';

  /** Binds, then hands every message from a registered worker to `delivery` until closed. */
  async bind(runDir: string, delivery: Delivery<W>, log: (line: string) => void): Promise<void> {
    const socketPath = path.join(runDir, 'workers.sock');
    if (socketPath.length <= MAX_IPC_PATH) {
      fs.rmSync(socketPath, { force: true }); // left by an agent that did not stop cleanly
      this.ipcPath = socketPath;
      this.endpoint = `ipc://${socketPath}`;
      await this.router.bind(this.endpoint);
    } else {
      await this.router.bind('tcp://127.0.0.1:*');
      this.endpoint = this.router.lastEndpoint ?? '';
    }
    this.receiving = this.receive(delivery, log);
  }

  register(routingId: string, worker: W): void {
    this.byRoutingId.set(routingId, worker);
  }

  forget(routingId: string): void {
    this.byRoutingId.delete(routingId);
  }

  /** Sends to one worker; rejects when it is gone (its exit handler reports its job). */
  send(routingId: string, frames: Uint8Array[]): Promise<void> {
    return this.sendQueue.send([Buffer.from(routingId), ...frames]);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.router.close();
    await this.receiving;
    if (this.ipcPath) fs.rmSync(this.ipcPath, { force: true });
  }

  private async receive(delivery: Delivery<W>, log: (line: string) => void): Promise<void> {
    try {
      for await (const [id, ...frames] of this.router) {
        const worker = id ? this.byRoutingId.get(id.toString()) : undefined;
        if (worker === undefined) continue; // a worker we already buried, or a stranger
        let parsed: ReturnType<typeof parseFromWorker>;
        try {
          parsed = parseFromWorker(frames);
        } catch (err) {
          delivery.unreadable(worker, (err as Error).message);
          continue;
        }
        delivery.message(worker, parsed.message, parsed.payload);
      }
    } catch (err) {
      if (!this.closing) log(`worker socket failed: ${String(err)}`);
    }
  }
}
