// A loopback TCP proxy that a test can cut, to inject network faults between a client and an agent.

import * as net from 'node:net';

export class TcpProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private refusing = false;

  private constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(target: string): Promise<{ proxy: TcpProxy; endpoint: string }> {
    const port = Number(/:(\d+)$/.exec(target)?.[1]);
    const proxy = new TcpProxy(port);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return { proxy, endpoint: `tcp://127.0.0.1:${(proxy.server.address() as net.AddressInfo).port}` };
  }

  /** Drops every open connection and refuses new ones for `ms`: a network blip. */
  cut(ms: number): void {
    this.refusing = true;
    for (const socket of this.sockets) socket.destroy();
    setTimeout(() => (this.refusing = false), ms).unref();
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
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      this.sockets.add(from);
      from.pipe(to);
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
    }
  }
}
