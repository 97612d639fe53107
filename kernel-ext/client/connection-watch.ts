// What the client's socket says about its connection, from ZeroMQ's socket events: whether a handshake has
// completed, since when it has been disconnected, and when it has reconnected. A closed connection or a failed TCP
// keepalive is a disconnect; a result that takes minutes to arrive over a slow link is not. A refused CURVE key
// shows only here, never as a reply.

import type * as zmq from 'zeromq';

export interface ConnectionEvents {
  /** The handshake failed before any succeeded: wrong keys, or keys on one side only. */
  onAuthFailure(message: string): void;
  /** A handshake completed: held requests can go; `again` after a disconnect, when lost replies can be asked for. */
  onConnect(again: boolean): void;
}

export class ConnectionWatch {
  private connected = false;
  private everConnected = false;
  private disconnectedAt = Date.now();

  constructor(
    private readonly socket: zmq.Dealer,
    private readonly endpoint: string,
    private readonly events: ConnectionEvents,
    /** Whether this client uses CURVE keys: only then is a failed handshake likely a key problem. */
    private readonly usesKeys: boolean,
  ) {
    void this.watch();
  }

  /** How long the socket has been without a connection to the agent; 0 while connected. */
  disconnectedForMs(): number {
    return this.connected ? 0 : Date.now() - this.disconnectedAt;
  }

  private async watch(): Promise<void> {
    try {
      for await (const event of this.socket.events) this.handle(event);
    } catch (error) {
      if (!this.socket.closed) process.emitWarning(`tslab-remote: socket events stopped: ${(error as Error).message}`);
    }
  }

  private handshakeFailure(reason: string): string {
    return this.usesKeys
      ? `the secure handshake with ${this.endpoint} failed (${reason}): check that you hold the agent's current ` +
          'public key, and that the agent serves with --keys'
      : `the handshake with ${this.endpoint} failed (${reason}): it is not a tslab-remote agent, or the agent ` +
          'serves with --keys and this client has none (pass the agent key and a key pair)';
  }

  private handle(event: zmq.Event): void {
    switch (event.type) {
      case 'handshake': {
        const again = this.everConnected;
        this.connected = true;
        this.everConnected = true;
        this.events.onConnect(again);
        return;
      }
      case 'disconnect':
        if (this.connected) this.disconnectedAt = Date.now();
        this.connected = false;
        return;
      case 'handshake:error:auth':
        this.events.onAuthFailure(
          `the agent at ${this.endpoint} refused this kernel's key: ask its owner to add your public key with --allow`,
        );
        return;
      case 'handshake:error:protocol':
      case 'handshake:error:other':
        // Once a handshake has succeeded the keys are right: later errors are network trouble, which reconnection
        // and the disconnect deadline handle.
        if (!this.everConnected) this.events.onAuthFailure(this.handshakeFailure(event.error.message));
        return;
      default:
        return;
    }
  }
}
