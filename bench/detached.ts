// Figures for detached jobs, each beside the same work as an ordinary call in the same run:
//  1. Starting: a detached call's reply (the job written to disk and queued) vs an ordinary call's whole round trip.
//  2. A job that prints 32 MB in 64 KiB writes: as a call streaming to its client, vs detached (its output written to
//     disk, the newest 8 MB kept) and then attached (the kept output replayed, then the result).
//  3. Fetching a 64 MB Float64Array result: from a finished detached job (read from disk) vs an ordinary call.

import { connect } from '../kernel-ext/client/agent-client';
import { startLocalAgent } from '../kernel-ext/client/local-agent';
import { median, table, timeMany } from './stats';

const STARTS = Number(process.env.BENCH_DETACHED_STARTS ?? 200);
const RUNS = Number(process.env.BENCH_DETACHED_RUNS ?? 5);

async function main(): Promise<void> {
  const agent = await startLocalAgent({
    args: ['--workers', '1', '--max-detached-jobs', String(STARTS * 3), '--max-jobs-per-client', String(STARTS * 3)],
  });
  const client = await connect(agent.endpoint);
  try {
    const call = await timeMany(STARTS, 20, () => client.call(() => 1, []).result);
    const detach = await timeMany(STARTS, 20, () => client.detach(() => 1, []));

    const print = (): string => {
      const chunk = 'x'.repeat(64 * 1024 - 1) + '\n';
      for (let i = 0; i < 512; i++) process.stdout.write(chunk);
      return 'printed';
    };
    let streamed = 0;
    const printCall = await timeMany(
      RUNS,
      1,
      () => client.call(print, [], { onOutput: (_s, text) => (streamed += text.length) }).result,
    );
    const printDetached = await timeMany(RUNS, 1, async () => {
      const job = await client.detach(print, []);
      await client.attach(job.id, { onOutput: () => undefined });
    });
    const finished = await client.detach(print, []);
    await client.attach(finished.id);
    const replay = await timeMany(RUNS, 1, () => client.attach(finished.id, { onOutput: () => undefined }));

    const big = (): Float64Array => new Float64Array(8 * 1024 * 1024).fill(1.5);
    const resultCall = await timeMany(RUNS, 1, () => client.call(big, []).result);
    const done = await client.detach(big, []);
    await client.attach(done.id);
    const resultDetached = await timeMany(RUNS, 1, () => client.attach(done.id));

    console.log(`detached jobs: medians (${STARTS} starts, ${RUNS} runs of the others), one worker, loopback`);
    console.log(
      table([
        ['what', 'ordinary call', 'detached', 'ratio'],
        [
          'start (detached: reply; call: whole trivial call)',
          median(call),
          median(detach),
          ratio(median(detach), median(call)),
        ],
        [
          'job printing 32 MB (detached: run + attach)',
          median(printCall),
          median(printDetached),
          ratio(median(printDetached), median(printCall)),
        ],
        ['replay of the kept 8 MB of a finished job', '', median(replay), ''],
        [
          '64 MB Float64Array result',
          median(resultCall),
          median(resultDetached),
          ratio(median(resultDetached), median(resultCall)),
        ],
      ]),
    );
    if (streamed === 0) throw new Error('the call streamed no output');
  } finally {
    await client.close();
    await agent.stop();
  }
}

function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
