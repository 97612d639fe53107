// Frame layout shared by every socket of the project (client ↔ agent, agent ↔ worker):
//   frame 0      UTF-8 JSON header (see messages.ts)
//   frames 1..n  binary payload whose meaning the header's type fixes (a value: body then out-of-band buffers;
//                an upload: one zip archive)
// A ROUTER socket adds the peer's routing id in front; the agent strips it before decoding.

import type * as zmq from 'zeromq';

export type Frame = Buffer | Uint8Array;

export function encodeMessage(header: object, payload: readonly Frame[] = []): Frame[] {
  return [Buffer.from(JSON.stringify(header), 'utf8'), ...payload];
}

/** Both ends: probe an idle TCP connection after 10 s, every 2 s, 3 times: a vanished peer is a disconnect in ~16 s. */
export const TCP_KEEPALIVE = {
  tcpKeepalive: 1,
  tcpKeepaliveIdle: 10,
  tcpKeepaliveInterval: 2,
  tcpKeepaliveCount: 3,
  // TCP_USER_TIMEOUT: keepalive probes only an idle connection, and pings keep it busy; sent data unacknowledged
  // this long (a host that vanished without FIN or RST) drops the connection instead of retrying for 15 minutes.
  tcpMaxRetransmitTimeout: 10_000,
} as const;

type Sendable = Pick<zmq.Dealer, 'send'> | Pick<zmq.Router, 'send'>;

/**
 * zeromq.js allows one pending send per socket; replies come from many concurrent jobs. This queue sends them one
 * after another in call order, and reports each send's own failure to its caller only.
 */
export class SendQueue {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly socket: Sendable) {}

  send(frames: readonly Frame[]): Promise<void> {
    const sent = this.tail.then(() => this.socket.send(frames as Frame[]));
    this.tail = sent.catch(() => undefined);
    return sent;
  }

  /** Resolves when everything queued so far has been handed to ZeroMQ. */
  drained(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}
