// `node dist/bench/snapshot.js`: the client's snapshot costs on a generated 2,000-file / 20 MB tree (random
// content), each beside its baseline from the same run, medians of 5:
//   cold snapshot (walk + hash, no stat cache) + zipFiles of everything   vs   `zip -qr` of the same tree
//   warm re-check of the unchanged tree with a stat cache                 (target: under 20 ms)
//   edit one file, then re-check with the stat cache
// Every run reads from the page cache (the tree was just written): these are CPU and syscall costs, not disk.

import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { snapshot, StatCache, zipFiles } from '../kernel-ext/client/snapshot';
import { median, table, timeMany } from './stats';
// Its temp directories are removed when the process exits, through process.exit() and after a failure too.
import '../test/support/temp-cleanup';

const FILES = Number(process.env.BENCH_FILES ?? 2000);
const TOTAL_BYTES = Number(process.env.BENCH_BYTES ?? 20_000_000);
const RUNS = 5;

// FILES files of random sizes (mean TOTAL_BYTES / FILES) in a two-level directory tree, mtimes an hour back.
async function makeTree(root: string): Promise<string[]> {
  const mean = TOTAL_BYTES / FILES;
  const written: string[] = [];
  await fs.writeFile(path.join(root, 'package.json'), '{"name":"bench-tree"}');
  await fs.writeFile(path.join(root, '.gitignore'), '*.log\n');
  for (let i = 0; i < FILES - 2; i++) {
    const relative = `src/pkg${i % 20}/mod${Math.floor(i / 20) % 10}/file${i}.ts`;
    await fs.mkdir(path.join(root, path.dirname(relative)), { recursive: true });
    await fs.writeFile(path.join(root, relative), randomBytes(Math.round(mean * (0.5 + ((i * 7919) % 1000) / 1000))));
    written.push(relative);
  }
  const past = new Date(Date.now() - 3_600_000);
  for (const entry of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    await fs.utimes(path.join(entry.parentPath, entry.name), past, past);
  }
  return written;
}

// Whether `zip` is on the PATH (it is not installed everywhere).
function haveZip(): boolean {
  return spawnSync('which', ['zip']).status === 0;
}

async function main(): Promise<void> {
  const dir = await tmp.dir({ unsafeCleanup: true, prefix: 'bench-snapshot-' });
  const root = path.join(dir.path, 'tree');
  await fs.mkdir(root);
  const written = await makeTree(root);
  const out = path.join(dir.path, 'out.zip');

  let cold = { bytes: 0, files: 0, zipBytes: 0 };
  const coldRuns = await timeMany(RUNS, 1, async () => {
    const result = await snapshot(root);
    const archive = await zipFiles(result, result.files);
    cold = { bytes: result.bytes, files: result.files.length, zipBytes: archive.length };
  });
  const hashRuns = await timeMany(RUNS, 1, () => snapshot(root));

  const zipRow = (flags: string[]) => async () => {
    await fs.rm(out, { force: true });
    execFileSync('zip', [...flags, out, '.'], { cwd: root });
  };
  const zipRuns = haveZip() ? await timeMany(RUNS, 1, zipRow(['-qr'])) : undefined;
  const storeRuns = haveZip() ? await timeMany(RUNS, 1, zipRow(['-0qr'])) : undefined;

  const statCache = new StatCache();
  const primed = await snapshot(root, { statCache });
  let reads = 0;
  const counting = { readFile: (file: string) => (reads++, fs.readFile(file)) };
  const warmRuns = await timeMany(RUNS, 1, () => snapshot(root, { statCache, fs: counting }));
  const warmReads = reads;

  let edit = 0;
  const editHashes = new Set<string>();
  reads = 0;
  const editRuns: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const victim = path.join(root, written[(edit++ * 397) % written.length]!);
    await fs.writeFile(victim, randomBytes((await fs.stat(victim)).size));
    const start = process.hrtime.bigint();
    const result = await snapshot(root, { statCache, fs: counting });
    editRuns.push(Number(process.hrtime.bigint() - start) / 1e6);
    editHashes.add(result.hash);
  }
  editHashes.delete(primed.hash);

  const rows: (string | number)[][] = [['', 'median', 'min', 'max']];
  const row = (label: string, samples: number[]) =>
    rows.push([label, median(samples), Math.min(...samples), Math.max(...samples)]);
  row('cold: snapshot (walk + hash) + zipFiles, all files', coldRuns);
  row('  of which snapshot (walk + hash)', hashRuns);
  if (zipRuns && storeRuns) {
    row('zip -qr of the same tree (baseline)', zipRuns);
    row('zip -0qr (stored, like zipFiles)', storeRuns);
  } else {
    rows.push(['zip -qr: skipped, zip is not installed', '-', '-', '-']);
  }
  row('warm re-check, unchanged tree, stat cache', warmRuns);
  row('edit one file, then re-check, stat cache', editRuns);

  console.log(
    `\nSnapshot of ${cold.files} files, ${(cold.bytes / 1e6).toFixed(1)} MB (zip ${(cold.zipBytes / 1e6).toFixed(1)} MB), medians of ${RUNS}, node ${process.version}`,
  );
  console.log(table(rows));
  if (zipRuns) console.log(`cold / zip -qr = ${(median(coldRuns) / median(zipRuns)).toFixed(2)}x (target <= 1.5x)`);
  console.log(
    `warm re-check = ${median(warmRuns).toFixed(1)} ms (target < 20 ms), files read: ${warmReads} over ${RUNS + 1} re-checks`,
  );
  console.log(
    `edit re-checks read ${reads} file(s) over ${RUNS} edits (a file written < 2 s before a check is read again on the ` +
      `next one, see stat-cache.ts: 1+2+...+${RUNS} here); ${editHashes.size} distinct new snapshot hashes`,
  );
  await dir.cleanup();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
