// The floor for the round-trip benchmark: a bare ZeroMQ ROUTER in its own process that echoes every message.

import * as zmq from 'zeromq';

async function main(): Promise<void> {
  const router = new zmq.Router({ linger: 0 });
  await router.bind(process.argv[2] ?? 'tcp://127.0.0.1:*');
  process.stdout.write(`echo listening on ${router.lastEndpoint}\n`);
  process.once('SIGTERM', () => router.close());
  try {
    for await (const frames of router) await router.send(frames);
  } catch {
    // closed by SIGTERM
  }
}

void main();
