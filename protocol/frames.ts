// Frame layout shared by every socket of the project (client ↔ agent, agent ↔ worker):
//   frame 0      UTF-8 JSON header (see messages.ts)
//   frames 1..n  binary payload whose meaning the header's type fixes (a value: body then out-of-band buffers;
//                an upload: one zip archive); a client sends frames over PIECE_BYTES in pieces (header.pieces)
// A ROUTER socket adds the peer's routing id in front; the agent strips it before decoding.

import type * as zmq from 'zeromq';

import { AgentError } from './errors';

export type Frame = Buffer | Uint8Array;

/**
 * The largest frame an agent takes off the wire (ZeroMQ's maxMessageSize, which also applies before a peer has
 * authenticated): a peer sending more is disconnected before the frame is allocated.
 */
export const MAX_WIRE_FRAME_BYTES = 64 * 1024 * 1024;
/** A payload frame larger than this travels as pieces of this size (also the fastest size measured). */
export const PIECE_BYTES = 4 * 1024 * 1024;

/**
 * With `pieceBytes`, payload frames larger than it are sent as several frames and the header lists how many each
 * became (`pieces`); the receiver puts them back together with joinPieces before reading the payload.
 */
export function encodeMessage(header: object, payload: readonly Frame[] = [], pieceBytes?: number): Frame[] {
  if (pieceBytes === undefined || payload.every((frame) => frame.byteLength <= pieceBytes)) {
    return [Buffer.from(JSON.stringify(header), 'utf8'), ...payload];
  }
  const pieces: number[] = [];
  const wire: Frame[] = [];
  for (const frame of payload) {
    const count = Math.max(1, Math.ceil(frame.byteLength / pieceBytes));
    pieces.push(count);
    for (let i = 0; i < count; i++) wire.push(frame.subarray(i * pieceBytes, (i + 1) * pieceBytes));
  }
  return [Buffer.from(JSON.stringify({ ...header, pieces }), 'utf8'), ...wire];
}

/** The payload as encoded: frames sent in pieces (header.pieces) joined again, each at most `maxFrameBytes`. */
export function joinPieces(header: Record<string, unknown>, wire: Buffer[], maxFrameBytes: number): Buffer[] {
  const pieces = header.pieces;
  if (pieces === undefined) return wire;
  const valid =
    Array.isArray(pieces) &&
    pieces.every((n): n is number => Number.isSafeInteger(n) && n >= 1) &&
    pieces.reduce((sum: number, n: number) => sum + n, 0) === wire.length;
  if (!valid) {
    throw new AgentError(
      'BAD_MESSAGE',
      `invalid message: header.pieces should count the ${wire.length} payload frames, one positive number per frame`,
    );
  }
  const frames: Buffer[] = [];
  let at = 0;
  for (const count of pieces) {
    const parts = wire.slice(at, at + count);
    at += count;
    const size = parts.reduce((sum, part) => sum + part.length, 0);
    if (size > maxFrameBytes) {
      throw new AgentError(
        'TOO_LARGE',
        `payload frame ${frames.length + 1} is ${size} bytes, over the agent's bound of ${maxFrameBytes} (--max-message-mb)`,
      );
    }
    frames.push(count === 1 ? parts[0]! : Buffer.concat(parts, size));
  }
  return frames;
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
