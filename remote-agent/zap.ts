// The agent's gatekeeper: a ZAP handler (ZeroMQ RFC 27) on inproc://zeromq.zap.01 in the default context. libzmq
// asks it about every CURVE handshake; it admits only client public keys on the allow list and logs the rest.

import * as zmq from 'zeromq';

import { z85Encode } from '../common/z85';
import { rateLimitedLog } from './rate-limited-log';

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

export class ZapHandler {
  private readonly socket = new zmq.Router({ linger: 0 });
  private loop?: Promise<void>;
  /** Refusals are logged, but anyone who can reach the port can cause them: at most 10 lines a minute. */
  private readonly logRefusal: (line: string) => void;

  private constructor(
    private readonly allowed: ReadonlySet<string>,
    private readonly log: (line: string) => void,
  ) {
    this.logRefusal = rateLimitedLog(log, 'refused connections');
  }

  /** Binds the handler; the agent must bind its own socket (with `zapDomain` set) after this. */
  static async start(allowedClientKeys: Iterable<string>, log: (line: string) => void): Promise<ZapHandler> {
    const handler = new ZapHandler(new Set(allowedClientKeys), log);
    await handler.socket.bind(ZAP_ENDPOINT);
    handler.loop = handler.serve();
    return handler;
  }

  close(): Promise<void> {
    this.socket.close();
    return this.loop ?? Promise.resolve();
  }

  private async serve(): Promise<void> {
    try {
      for await (const frames of this.socket) await this.socket.send(this.answer(frames));
    } catch (error) {
      if (!this.socket.closed) this.log(`ZAP handler stopped: ${(error as Error).message}`);
    }
  }

  /** [routing, '', version, requestId, domain, address, identity, mechanism, ...credentials] → reply frames. */
  private answer(frames: Buffer[]): (Buffer | string)[] {
    const [routing, delimiter, version, requestId, , address, , mechanism, clientKey] = frames;
    const reply = (status: '200' | '400', text: string): (Buffer | string)[] => [
      routing!,
      delimiter ?? '',
      '1.0',
      requestId ?? '',
      status,
      text,
      '',
      '',
    ];
    if (version?.toString() !== '1.0') return reply('400', 'unsupported ZAP version');
    if (mechanism?.toString() !== 'CURVE' || clientKey?.length !== 32) {
      this.logRefusal(
        `refused a ${mechanism?.toString() || 'NULL'} connection from ${address?.toString()}: keys are required`,
      );
      return reply('400', 'CURVE keys required');
    }
    const key = z85Encode(clientKey);
    if (!this.allowed.has(key)) {
      this.logRefusal(`refused client key ${key} from ${address?.toString()}: not in --allow`);
      return reply('400', 'client key not allowed');
    }
    return reply('200', 'OK');
  }
}
