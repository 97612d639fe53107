// `npm run quickstart`: `tslab-remote run notebooks/quickstart.ipynb [ARGS...]` on a copy of the notebook and its
// local package in a temporary directory. The notebook edits `quickstart/src/model.ts` and puts it back in a later
// cell; an interrupted run must not leave the checkout edited.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { constants } from 'node:os';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

const NOTEBOOKS = path.resolve(__dirname, '..', '..', 'notebooks');
const osSignals = constants.signals;
const CLI = path.resolve(__dirname, '..', '..', 'bin', 'tslab-remote.js');

async function main(): Promise<number> {
  const work = await tmp.dir({ unsafeCleanup: true, prefix: 'tslab-remote-quickstart-' });
  try {
    await fs.cp(path.join(NOTEBOOKS, 'quickstart.ipynb'), path.join(work.path, 'quickstart.ipynb'));
    await fs.cp(path.join(NOTEBOOKS, 'quickstart'), path.join(work.path, 'quickstart'), { recursive: true });
    const child = spawn(
      process.execPath,
      [CLI, 'run', path.join(work.path, 'quickstart.ipynb'), ...process.argv.slice(2)],
      {
        stdio: 'inherit',
      },
    );
    // Ctrl-C reaches the child too (same process group) and ends the run; other signals are passed on. Either
    // way we wait for it, then clean up.
    process.on('SIGINT', () => undefined);
    for (const signal of ['SIGTERM', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
    return await new Promise<number>((resolve) =>
      child.on('exit', (status, signal) => resolve(status ?? 128 + (signal ? osSignals[signal] : 0))),
    );
  } finally {
    await work.cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(1);
  },
);
