// A 256 MiB Float64Array sent to a function on a real agent and returned (pickled both ways, out-of-band frames),
// against the same bytes echoed through a bare ZeroMQ ROUTER in another process over the same transport (tcp
// loopback). Target: the agent's round trip at 80% or more of the raw rate. Medians of BENCH_TRANSFERS runs.

import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as zmq from 'zeromq';

import { connect } from '../kernel-ext/client/agent-client';
import { startLocalAgent } from '../kernel-ext/client/local-agent';
import { startCurveAgent } from './curve-agent';
import { median, table } from './stats';

const RUNS = Number(process.env.BENCH_TRANSFERS ?? 5);
const BYTES = 256 * 1024 * 1024;

async function timeRuns(once: () => Promise<void>): Promise<number[]> {
  await once(); // warm: first writes to fresh memory cost more than the transfer
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    await once();
    samples.push(performance.now() - start);
  }
  return samples;
}

async function rawEcho(payload: Float64Array): Promise<number[]> {
  const server = spawn(process.execPath, [path.join(__dirname, 'echo-server.js')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const endpoint = await new Promise<string>((resolve) =>
    server.stdout.on('data', (chunk: Buffer) => {
      const match = /echo listening on (\S+)/.exec(chunk.toString());
      if (match) resolve(match[1]!);
    }),
  );
  const dealer = new zmq.Dealer({ linger: 0 });
  dealer.connect(endpoint);
  const samples = await timeRuns(async () => {
    await dealer.send([Buffer.from('{"v":1}'), payload]);
    const [, echoed] = await dealer.receive();
    if (echoed!.byteLength !== BYTES) throw new Error('echo lost bytes');
  });
  dealer.close();
  server.kill('SIGTERM');
  return samples;
}

async function agentRoundTrip(payload: Float64Array, secure: boolean): Promise<number[]> {
  const { agent, curve } = secure
    ? await startCurveAgent(['--workers', '1'])
    : { agent: await startLocalAgent({ args: ['--workers', '1'] }), curve: undefined };
  const client = await connect(agent.endpoint, { curve });
  const identity = (a: Float64Array): Float64Array => a;
  try {
    return await timeRuns(async () => {
      const back = await client.call<Float64Array>(identity, [payload]).result;
      if (back.length !== payload.length || back[back.length - 1] !== payload[payload.length - 1])
        throw new Error('the array came back changed');
    });
  } finally {
    await client.close();
    await agent.stop();
  }
}

async function main(): Promise<void> {
  const payload = new Float64Array(BYTES / 8).map((_, i) => i);
  const raw = await rawEcho(payload);
  const viaAgent = await agentRoundTrip(payload, false);
  const viaSecureAgent = await agentRoundTrip(payload, true);
  const rate = (ms: number): string => `${((2 * BYTES) / 1e9 / (ms / 1000)).toFixed(2)} GB/s`;
  console.log(`\n256 MiB Float64Array round trip (there and back), tcp loopback, median of ${RUNS}`);
  console.log(
    table([
      ['', 'median', 'rate'],
      ['raw ZeroMQ echo of the same bytes (floor)', median(raw), rate(median(raw))],
      ['agent: client.call(identity, [array])', median(viaAgent), rate(median(viaAgent))],
      ['the same, CURVE encryption on', median(viaSecureAgent), rate(median(viaSecureAgent))],
    ]),
  );
  console.log(`agent rate / raw rate: ${((median(raw) / median(viaAgent)) * 100).toFixed(0)}%   (target: 80% or more)`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
