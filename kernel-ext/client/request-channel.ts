// The request channel: one DEALER socket to one agent. Requests are matched to replies by id; every request ends
// with exactly one final reply or a local error (failAll), never a hang. Requests are handed to ZeroMQ only while
// connected, so one the caller was told failed is never delivered late.

import { randomBytes } from 'node:crypto';
import * as zmq from 'zeromq';

import { AgentError, RemoteError, toWireError, WireError } from '../../protocol/errors';
import { encodeMessage, Frame, PIECE_BYTES, SendQueue, TCP_KEEPALIVE } from '../../protocol/frames';
import { FINAL_REPLIES, PROTOCOL_VERSION, Reply, Request, Unversioned } from '../../protocol/messages';
import { parseHeader, validateReply } from '../../protocol/validate';
import type { ClientSettings } from './client-options';
import { ConnectionWatch } from './connection-watch';

export interface Pending {
  onReply(reply: Reply, payload: Buffer[]): void;
  fail(error: Error): void;
  /**
   * A call: listed in pings so that after a reconnect the agent re-sends its final reply if it was lost. Other
   * requests are idempotent and are simply sent again after a reconnect (`frames`).
   */
  isJob: boolean;
  frames: readonly Frame[];
  /** A call's own stderr, for what the client has to say about it (an agent gone silent). */
  notice?(text: string): void;
}

/** What the channel tells the liveness watch. */
export interface ChannelEvents {
  /** Any message arrived. */
  heard(): void;
  /** A pong, with the instance of the agent that sent it. */
  pong(instance: string): void;
  /** A handshake completed (again: after a disconnect). */
  connected(): void;
  /** Every pending request was just failed. */
  failedAll(): void;
}

export type RequestBody =
  Unversioned<Request> extends infer R ? (R extends { id: string } ? Omit<R, 'id'> : never) : never;

/** How long one send may wait for ZeroMQ to take it before the request is held again. */
const SEND_TIMEOUT_MS = 500;

export class RequestChannel {
  readonly pending = new Map<string, Pending>();
  /** Calls given up on: the agent is asked to cancel them once it can hear us again. */
  readonly abandoned = new Set<string>();
  readonly connection: ConnectionWatch;
  closed = false;
  /** This client's identity to the agent. */
  readonly routingId: string;
  /** Set on a reconnect, cleared by the next ping: it asks the agent to re-send final replies. */
  reconnected = false;
  private readonly socket: zmq.Dealer;
  private readonly sendQueue: SendQueue;
  /** Ids are unique per client object, so a new client reusing a routing id never repeats an old one's ids. */
  private readonly idPrefix = randomBytes(3).toString('hex');
  private nextId = 0;
  /** Requests waiting for a connection: never handed to ZeroMQ while there is none, so never sent late. */
  private readonly held = new Set<string>();

  constructor(
    readonly endpoint: string,
    settings: ClientSettings,
    private readonly events: ChannelEvents,
  ) {
    // immediate: nothing queues for a connection that is not up, so a call the client gave up on is never delivered
    // later; sendTimeout bounds how long a send waits for one. A dead agent process closes the connection (a
    // disconnect event at once); TCP keepalive finds a vanished host on an idle connection. Not ZMTP heartbeats:
    // libzmq counts only whole frames as signs of life, so a result that takes longer than the timeout to arrive
    // would be cut off, again and again.
    this.routingId = settings.routingId ?? `tslab-remote-${randomBytes(8).toString('hex')}`;
    this.socket = new zmq.Dealer({
      routingId: this.routingId,
      linger: 0,
      immediate: true,
      sendTimeout: SEND_TIMEOUT_MS,
      ...TCP_KEEPALIVE,
      ...(settings.curve
        ? {
            curveServerKey: settings.curve.serverKey,
            curvePublicKey: settings.curve.publicKey,
            curveSecretKey: settings.curve.secretKey,
          }
        : {}),
    });
    this.connection = new ConnectionWatch(
      this.socket,
      endpoint,
      { onAuthFailure: (message) => this.failAll('AUTH_FAILED', message), onConnect: (again) => this.connected(again) },
      settings.curve !== undefined,
    );
    this.socket.connect(endpoint);
    this.sendQueue = new SendQueue(this.socket);
    void this.receiveLoop();
  }

  request(body: RequestBody, payload: Frame[] = []): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.send(this.newId(), body, payload, { isJob: false, fail: reject, onReply: (reply) => resolve(reply) });
    });
  }

  send(id: string, body: object, payload: readonly Frame[], handlers: Omit<Pending, 'frames'>): void {
    if (this.closed) {
      handlers.fail(new RemoteError(localError('CLIENT_CLOSED', 'the connection to the agent is closed')));
      return;
    }
    const frames = encodeMessage({ v: PROTOCOL_VERSION, id, ...body }, payload, PIECE_BYTES); // the agent's frame bound
    this.pending.set(id, { ...handlers, frames });
    this.transmit(id, frames);
  }

  /** A message that expects no reply (ping, cancel of an abandoned call): sent if it can be, else dropped. */
  post(body: object): Promise<void> {
    return this.sendQueue
      .send(encodeMessage({ v: PROTOCOL_VERSION, id: this.newId(), ...body }))
      .catch(() => undefined);
  }

  /** Ids of the calls still awaited. */
  jobIds(): string[] {
    return [...this.pending].filter(([, p]) => p.isJob).map(([id]) => id);
  }

  failAll(code: WireError['code'], message: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.held.clear();
    this.events.failedAll();
    for (const p of pending) p.fail(new RemoteError(localError(code, message)));
  }

  /** Fails what waits, and asks the agent (if it can hear us again) to cancel the calls among them. */
  giveUp(code: WireError['code'], message: string): void {
    const calls = this.jobIds();
    this.failAll(code, message);
    for (const job of calls) this.abandoned.add(job);
  }

  /** Calls given up on are cancelled on the agent as soon as it can hear us again. */
  cancelAbandoned(): void {
    if (this.abandoned.size === 0 || this.connection.disconnectedForMs() > 0) return;
    for (const job of this.abandoned) void this.post({ type: 'cancel', job });
    this.abandoned.clear();
  }

  /** Closes the socket; pending requests fail with CLIENT_CLOSED. */
  async close(greet: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll('CLIENT_CLOSED', 'the connection to the agent was closed');
    // A last ping waiting for nothing lets the agent drop the final replies it kept for us at once.
    if (greet && this.connection.disconnectedForMs() === 0) {
      this.socket.linger = 500;
      await this.post({ type: 'ping', waiting: [] });
    }
    this.socket.close();
  }

  newId(): string {
    return `${this.idPrefix}-${(this.nextId++).toString(36)}`;
  }

  /**
   * Hands a request to ZeroMQ only while connected; otherwise it waits in `held` until a connection comes, or until
   * the client gives up on it, and so it can never be delivered after the caller was told it failed.
   */
  private transmit(id: string, frames: readonly Frame[]): void {
    if (this.connection.disconnectedForMs() > 0) {
      this.held.add(id);
      return;
    }
    this.sendQueue.send(frames).catch((error: unknown) => {
      const pending = this.pending.get(id);
      if (!pending || pending.frames !== frames) return; // abandoned meanwhile
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
        // The connection went away under us (or the queue is full): hold it, and retry while connected.
        this.held.add(id);
        setTimeout(() => this.flushHeld(), SEND_TIMEOUT_MS).unref();
        return;
      }
      this.pending.delete(id);
      pending.fail(new RemoteError(toWireError(error, 'INTERNAL')));
    });
  }

  private flushHeld(): void {
    if (this.connection.disconnectedForMs() > 0) return;
    for (const id of [...this.held]) {
      this.held.delete(id);
      const pending = this.pending.get(id);
      if (pending) this.transmit(id, pending.frames);
    }
  }

  /**
   * Connected: held requests go. Reconnected: requests whose reply may have been lost go again (all are idempotent
   * but calls), and the next ping asks the agent to re-send the final replies of calls.
   */
  private connected(again: boolean): void {
    this.events.connected();
    this.cancelAbandoned();
    if (again) {
      this.reconnected = true;
      for (const [id, pending] of this.pending) if (!pending.isJob) this.held.add(id);
    }
    this.flushHeld();
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [header, ...payload] of this.socket) this.dispatch(header, payload);
    } catch (error) {
      if (!this.closed) this.failAll('INTERNAL', `the client socket failed: ${(error as Error).message}`);
    }
  }

  private dispatch(headerFrame: Buffer | undefined, payload: Buffer[]): void {
    this.events.heard();
    let reply: Reply;
    try {
      reply = validateReply(parseHeader(headerFrame), payload.length);
    } catch (error) {
      // A reply we cannot read cannot be matched to its request either; the heartbeat deadline still applies.
      process.emitWarning(
        `tslab-remote: ignored an unreadable message from ${this.endpoint}: ${(error as Error).message}`,
      );
      return;
    }
    if (reply.type === 'error' && reply.re === null) {
      process.emitWarning(`tslab-remote: the agent refused a message: ${reply.error.message}`);
      return;
    }
    if (reply.type === 'pong') {
      this.events.pong(reply.instance);
      return;
    }
    const pending = this.pending.get(reply.re!);
    if (!pending) return; // a late or repeated reply to a request that already ended
    if (FINAL_REPLIES.has(reply.type)) this.pending.delete(reply.re!);
    if (reply.type === 'error') {
      pending.fail(new RemoteError(reply.error));
      return;
    }
    try {
      pending.onReply(reply, payload);
    } catch (error) {
      // A result that cannot be rebuilt here, or a throwing onOutput: that request fails, the client goes on.
      this.pending.delete(reply.re);
      pending.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

export function localError(code: WireError['code'], message: string): WireError {
  return toWireError(new AgentError(code, message), code);
}

export function unexpected(reply: Reply): RemoteError {
  return new RemoteError(localError('BAD_MESSAGE', `unexpected reply ${reply.type} from the agent`));
}
