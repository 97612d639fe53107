// The pool's socket: a ROUTER bound to ipc://<runDir>/workers.sock (tcp loopback when that path is too long for a
// unix socket); each worker connects a DEALER with a fresh random routing id per process, so a message from a dead
// incarnation can never be taken for its successor's. See worker/channel.ts for the messages.

import * as fs from 'node:fs';
import * as path from 'node:path';

import * as zmq from 'zeromq';

import { SendQueue } from '../../protocol/frames';

const MAX_IPC_PATH = 100;

export class WorkerTransport {
  private readonly router = new zmq.Router({ mandatory: true, linger: 0 });
  private readonly sendQueue = new SendQueue(this.router);
  private ipcPath: string | null = null;
  private receiving: Promise<void> | null = null;
  private closing = false;
  endpoint = '';

  /** Binds, then hands every message (routing id, frames) to `deliver` until closed. */
  async bind(runDir: string, deliver: (routingId: string, frames: Buffer[]) => void, log: (line: string) => void): Promise<void> {
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
    this.receiving = this.receive(deliver, log);
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

  private async receive(deliver: (routingId: string, frames: Buffer[]) => void, log: (line: string) => void): Promise<void> {
    try {
      for await (const [id, ...frames] of this.router) {
        if (id) deliver(id.toString(), frames);
      }
    } catch (err) {
      if (!this.closing) log(`worker socket failed: ${String(err)}`);
    }
  }
}
