// Figures for the agent, each beside its baseline from the same run.
//  1. Round trip of a trivial job on a cached snapshot vs a raw ZeroMQ DEALER/ROUTER echo (the floor), both over
//     tcp loopback to another process.
//  2. Switching to a snapshot that changed one file in a 2,000-file / 20 MB tree: upload of the edit, creation of
//     the new snapshot directory, purge and first job on it; beside it the client's re-hash of the tree and a cold
//     upload of the whole tree.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';
import * as zmq from 'zeromq';

import { connect } from '../kernel-ext/client/agent-client';
import { snapshot, StatCache } from '../kernel-ext/client/snapshot';
import { startLocalAgent } from '../kernel-ext/client/local-agent';
import { startCurveAgent } from './curve-agent';
import { median, percentile, table, timeMany } from './stats';
// Its temp directories are removed when the process exits, through process.exit() and after a failure too.
import '../test/support/temp-cleanup';

const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 1000);
const EDITS = Number(process.env.BENCH_EDITS ?? 7);

async function startEcho(): Promise<{ endpoint: string; stop(): void }> {
  const child = spawn(process.execPath, [path.join(__dirname, 'echo-server.js')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const endpoint = await new Promise<string>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      const match = /echo listening on (\S+)/.exec(chunk.toString());
      if (match) resolve(match[1]!);
    });
  });
  return { endpoint, stop: () => child.kill('SIGTERM') };
}

async function roundTrips(): Promise<void> {
  const echo = await startEcho();
  const dealer = new zmq.Dealer({ linger: 0 });
  dealer.connect(echo.endpoint);
  const message = Buffer.from(JSON.stringify({ v: 1, type: 'call', id: 'x', payload: 'tiny' }));
  const raw = await timeMany(ROUND_TRIPS, 200, async () => {
    await dealer.send(message);
    await dealer.receive();
  });
  dealer.close();
  echo.stop();

  const agent = await startLocalAgent({ args: ['--workers', '1'] });
  const client = await connect(agent.endpoint);
  const root = await makeTree(3, 1024);
  const local = await snapshot(root);
  await client.upload(local);
  const job = { source: '() => 1', snapshot: local.hash };
  const jobs = await timeMany(ROUND_TRIPS, 200, () => client.run(job));
  await client.close();
  await agent.stop();

  const secure = await startCurveAgent(['--workers', '1']);
  const secureClient = await connect(secure.agent.endpoint, { curve: secure.curve });
  await secureClient.upload(local);
  const secureJobs = await timeMany(ROUND_TRIPS, 200, () => secureClient.run(job));
  await secureClient.close();
  await secure.agent.stop();

  console.log(`\nRound trip, tcp loopback, ${ROUND_TRIPS} runs after warm-up`);
  console.log(
    table([
      ['', 'median', 'p99'],
      ['raw ZeroMQ DEALER/ROUTER echo (floor)', median(raw), percentile(raw, 99)],
      ['trivial job on a cached snapshot', median(jobs), percentile(jobs, 99)],
      ['the same job, CURVE encryption on', median(secureJobs), percentile(secureJobs, 99)],
    ]),
  );
  console.log(`cost of CURVE on a round trip (medians): ${(median(secureJobs) - median(jobs)).toFixed(3)} ms`);
  console.log(`ratio job / echo (medians): ${(median(jobs) / median(raw)).toFixed(2)}x   (target: within 2x)`);
}

/**
 * A tree of `count` JavaScript files of about `bytes` each, plus a package.json, dated an hour ago like a project
 * at rest (the stat cache re-reads files written within the last 2 s, see kernel-ext/client/snapshot/stat-cache.ts).
 */
async function makeTree(count: number, bytes: number): Promise<string> {
  const root = (await tmp.dir({ unsafeCleanup: true, prefix: 'bench-tree-' })).path;
  const files = [path.join(root, 'package.json')];
  await fs.writeFile(files[0]!, '{"name":"bench-tree"}\n');
  for (let i = 0; i < count; i++) {
    const dir = path.join(root, 'src', `pkg${i % 40}`);
    await fs.mkdir(dir, { recursive: true });
    const filler = randomBytes(Math.floor(bytes / 2)).toString('hex');
    files.push(path.join(dir, `m${i}.js`));
    await fs.writeFile(files.at(-1)!, `exports.id = ${i};\nexports.filler = '${filler}';\n`);
  }
  const anHourAgo = new Date(Date.now() - 3_600_000);
  for (const file of files) await fs.utimes(file, anHourAgo, anHourAgo);
  return root;
}

async function snapshotSwitch(): Promise<void> {
  const agent = await startLocalAgent({ args: ['--workers', '1'] });
  const client = await connect(agent.endpoint);
  const root = await makeTree(2000, 10_000);
  const edited = path.join(root, 'src', 'pkg7', 'm7.js');
  const job = (hash: string) => client.run({ source: '() => require("./src/pkg7/m7.js").id', snapshot: hash });

  const cache = new StatCache();
  let started = performance.now();
  const first = await snapshot(root, { statCache: cache });
  const hashCold = performance.now() - started;
  started = performance.now();
  const report = await client.upload(first);
  const uploadCold = performance.now() - started;
  await job(first.hash);

  const rehash: number[] = [];
  const upload: number[] = [];
  const firstJob: number[] = [];
  for (let edit = 1; edit <= EDITS; edit++) {
    await fs.writeFile(edited, `exports.id = ${7000 + edit};\n`);
    let t = performance.now();
    const next = await snapshot(root, { statCache: cache });
    rehash.push(performance.now() - t);
    t = performance.now();
    const sent = await client.upload(next);
    upload.push(performance.now() - t);
    if (sent.filesSent !== 1) throw new Error(`expected one file to travel, ${sent.filesSent} did`);
    t = performance.now();
    const id = await job(next.hash);
    firstJob.push(performance.now() - t);
    if (id !== 7000 + edit) throw new Error(`the new snapshot's code did not run: got ${String(id)}`);
  }
  await client.close();
  await agent.stop();

  const switches = upload.map((u, i) => u + firstJob[i]!);
  const editToRunnable = switches.map((s, i) => s + rehash[i]!);
  console.log(
    `\nSnapshot switch, 2,000 files / ${(report.bytesSent / 1e6).toFixed(1)} MB tree, one file edited, ${EDITS} edits`,
  );
  console.log(
    table([
      ['', 'median'],
      ['cold: client hash of the tree', hashCold],
      ['cold: upload of every file + snapshot creation', uploadCold],
      ['edit: client re-check with the stat cache', median(rehash)],
      ['edit: upload of the one file + new snapshot directory', median(upload)],
      ['edit: first job on the new snapshot (purge + load)', median(firstJob)],
      ['edit: switch on the agent (upload + first job)', median(switches)],
      ['edit: whole time, edit to job result', median(editToRunnable)],
    ]),
  );
  console.log(
    `one-file switch: ${((median(switches) / uploadCold) * 100).toFixed(1)}% of a cold upload   (targets: switch under 100 ms; edit to runnable under 100 ms)`,
  );
}

/**
 * A TypeScript project of 200 modules and a 100 MB cache module, all imported by one index: the first call compiles
 * them all; an edit of one leaf reloads that module and the index that imports it, and keeps the rest, the cache
 * included. Beside it, in the same run, the same edits with every module dropped first (the worker's reload hook,
 * what `%remote_reload` does and what every edit did before modules were kept).
 */
async function typeScriptSwitch(): Promise<void> {
  const agent = await startLocalAgent({ args: ['--workers', '1'] });
  const client = await connect(agent.endpoint);
  const root = (await tmp.dir({ unsafeCleanup: true, prefix: 'bench-ts-' })).path;
  const count = 200;
  await fs.mkdir(path.join(root, 'src'));
  await fs.writeFile(path.join(root, 'package.json'), '{"name":"bench-ts"}\n');
  const imports = Array.from({ length: count }, (_, i) => `import { value as v${i} } from './m${i}';`).join('\n');
  const sum = Array.from({ length: count }, (_, i) => `v${i}`).join(' + ');
  await fs.writeFile(
    path.join(root, 'src', 'index.ts'),
    `${imports}\nimport { cache } from './cache';\nexport const total = (): number => ${sum};\nexport { cache };\n`,
  );
  await fs.writeFile(
    path.join(root, 'src', 'cache.ts'),
    'export const cache = { token: Math.random(), data: new Float64Array(12_500_000).fill(1) };\n',
  );
  const write = (i: number, value: number) =>
    fs.writeFile(path.join(root, 'src', `m${i}.ts`), `export const value: number = ${value};\n`);
  for (let i = 0; i < count; i++) await write(i, 1);
  const cache = new StatCache();
  const job = (hash: string) =>
    client.run<[number, number]>({
      source: '() => { const m = require("./src/index"); return [m.total(), m.cache.token]; }',
      snapshot: hash,
    });
  const dropAll = () => client.run({ source: "() => { globalThis[Symbol.for('tslab-remote.reload')](); }" });

  const first = await snapshot(root, { statCache: cache });
  await client.upload(first);
  let t = performance.now();
  const [total] = await job(first.hash);
  if (total !== count) throw new Error('unexpected total');
  const cold = performance.now() - t;
  /** One edit to its result; `keptToken`: the cache module's token, which must not change. */
  const measure = async (edit: number, purge: boolean, keptToken?: number): Promise<number> => {
    await write(7, edit);
    if (purge) await dropAll();
    t = performance.now();
    const next = await snapshot(root, { statCache: cache });
    await client.upload(next);
    const [sum, seen] = await job(next.hash);
    if (sum !== count - 1 + edit) throw new Error('the edit did not take effect');
    if (keptToken !== undefined && seen !== keptToken)
      throw new Error('the 100 MB cache module was reloaded although unchanged');
    return performance.now() - t;
  };
  const purged: number[] = [];
  for (let edit = 1; edit <= EDITS; edit++) purged.push(await measure(1 + edit, true));
  const [, loaded] = await job((await snapshot(root, { statCache: cache })).hash);
  const kept: number[] = [];
  for (let edit = 1; edit <= EDITS; edit++) kept.push(await measure(1 + EDITS + edit, false, loaded));
  await client.close();
  await agent.stop();
  console.log(`\nTypeScript project: ${count + 2} .ts modules loaded by one call, one of them a 100 MB cache`);
  console.log(
    table([
      ['', 'median'],
      ['first call: compile every file (and load the compiler)', cold],
      ['edit one leaf, every module dropped first (as before)', median(purged)],
      ['edit one leaf: it and its importer reload, 200 kept', median(kept)],
    ]),
  );
  console.log(
    `edit-to-result with modules kept: ${((median(kept) / median(purged)) * 100).toFixed(0)}% of a full reload; the 100 MB cache module stayed loaded`,
  );
}

async function main(): Promise<void> {
  console.log(`tslab-remote bench: node ${process.version}, zeromq ${zmq.version}`);
  await roundTrips();
  await snapshotSwitch();
  await typeScriptSwitch();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
