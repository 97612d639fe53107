// The kernel's overhead for a remote call: time from execute_request to execute_reply, through the kernel over the
// Jupyter protocol, for `%remote f()` on a cached snapshot vs the same `f()` as a plain local cell. Both pay tslab's
// type check of the cell; the remote one adds the snapshot re-check (stat cache), pickling, the round trip to a
// private agent and the result's unpickling. Target, on the quickstart's code root: the remote cell
// within 5 ms of the local one (medians of one run, rounds interleaved so drift hits both alike).
//
//   node dist/bench/kernel.js [--rounds N]

import * as path from 'node:path';

import { KernelConnection } from '../kernel-ext/run/kernel-connection';
import { median, percentile, table } from './stats';

const NOTEBOOKS = path.resolve(__dirname, '..', '..', 'notebooks');
const TARGET_MS = 5;

async function timed(kernel: KernelConnection, code: string): Promise<number> {
  const start = process.hrtime.bigint();
  const result = await kernel.execute(code, { stopOnError: true, timeoutMs: 60_000 });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 'ok') throw new Error(`${code} failed: ${JSON.stringify(result.error ?? result.status)}`);
  return ms;
}

async function main(): Promise<void> {
  const flag = process.argv.indexOf('--rounds');
  const rounds = flag >= 0 ? Number(process.argv[flag + 1]) : 40;
  const kernel = await KernelConnection.start(NOTEBOOKS);
  try {
    for (const setup of [
      '%remote_root quickstart',
      "import { train, callCount } from './quickstart/src/model'",
      'function f() { return callCount() + 1 }',
    ]) {
      await timed(kernel, setup);
    }
    // Warm: the private agent starts, the snapshot uploads once, the worker loads the module.
    for (let i = 0; i < 5; i++) {
      await timed(kernel, 'f()');
      await timed(kernel, '%remote f()');
    }
    const local: number[] = [];
    const remote: number[] = [];
    for (let i = 0; i < rounds; i++) {
      local.push(await timed(kernel, 'f()'));
      remote.push(await timed(kernel, '%remote f()'));
    }
    const difference = median(remote) - median(local);
    console.log(`kernel: execute_request → execute_reply through the kernel, ${rounds} rounds each, interleaved`);
    console.log(
      table([
        ['cell', 'median', 'p90', 'min'],
        ['f()  (local, tslab)', median(local), percentile(local, 90), Math.min(...local)],
        ['%remote f()  (cached snapshot, private agent)', median(remote), percentile(remote, 90), Math.min(...remote)],
      ]),
    );
    console.log(
      `remote - local: ${difference.toFixed(2)} ms (target: within ${TARGET_MS} ms) ${difference <= TARGET_MS ? 'MET' : 'NOT MET'}`,
    );
  } finally {
    await kernel.shutdown();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
