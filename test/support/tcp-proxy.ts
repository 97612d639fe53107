// A loopback TCP proxy that a test can cut, black-hole or slow down, to inject network faults between a client and
// an agent.

import * as net from 'node:net';
import { Transform, TransformCallback } from 'node:stream';

export interface ProxyOptions {
  /** Limit agent → client traffic to this rate, like a slow link. */
  downstreamBytesPerSecond?: number;
  /** Limit client → agent traffic (uploads) to this rate. */
  upstreamBytesPerSecond?: number;
}

export class TcpProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private refusing = false;
  private swallowing = false;
  private partitioned = false;
  /** Agent → client bytes forwarded so far. */
  downstreamBytes = 0;
  /** Client → agent bytes received so far. */
  upstreamBytes = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    private readonly options: ProxyOptions,
  ) {
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(target: string, options: ProxyOptions = {}): Promise<{ proxy: TcpProxy; endpoint: string }> {
    const [, host, port] = /^tcp:\/\/([^:]+):(\d+)$/.exec(target) ?? [];
    const proxy = new TcpProxy(host ?? '127.0.0.1', Number(port), options);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return { proxy, endpoint: `tcp://127.0.0.1:${(proxy.server.address() as net.AddressInfo).port}` };
  }

  /** Drops every open connection and refuses new ones for `ms`: a network blip. */
  cut(ms: number): void {
    this.refusing = true;
    for (const socket of this.sockets) socket.destroy();
    setTimeout(() => (this.refusing = false), ms).unref();
  }

  /** Swallows agent → client traffic for `ms`, then cuts the connections: replies sent meanwhile are lost. */
  blackhole(ms: number): void {
    this.swallowing = true;
    setTimeout(() => {
      this.swallowing = false;
      this.cut(0);
    }, ms).unref();
  }

  /**
   * Stops forwarding both ways and never closes anything: to both ends the other host fell silent, with no FIN or
   * RST, as when a network partition or a frozen host cuts them apart.
   */
  partition(): void {
    this.partitioned = true;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    const toClient = new Direction(
      (n) => (this.downstreamBytes += n),
      this.options.downstreamBytesPerSecond,
      () => this.swallowing || this.partitioned,
    );
    upstream.pipe(toClient).pipe(client);
    client
      .pipe(
        new Direction(
          (n) => (this.upstreamBytes += n),
          this.options.upstreamBytesPerSecond,
          () => this.partitioned,
        ),
      )
      .pipe(upstream);
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.sockets.add(from);
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
    }
  }
}

/** One direction of the proxy: bytes counted, optionally swallowed or paced. */
class Direction extends Transform {
  constructor(
    private readonly count: (bytes: number) => void,
    private readonly bytesPerSecond: number | undefined,
    private readonly swallowing: () => boolean = () => false,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.swallowing()) return done();
    this.count(chunk.length);
    if (!this.bytesPerSecond) return done(null, chunk);
    setTimeout(() => done(null, chunk), (chunk.length / this.bytesPerSecond) * 1000);
  }
}
