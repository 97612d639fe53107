// `npm run demo`: the quickstart through the client library alone, without the kernel. It starts a private agent on
// this machine (or uses TSLAB_REMOTE_AGENT / --agent ENDPOINT), ships the quickstart project's local
// TypeScript package, trains, edits the package and trains again with no restart, then shows a remote error
// mapped to the TypeScript line and a cancelled endless job.

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { connect } from '../kernel-ext/client/agent-client';
import { LocalAgent, startLocalAgent } from '../kernel-ext/client/local-agent';
import { snapshotDirectory } from '../kernel-ext/client/snapshot';
import { RemoteError } from '../protocol/errors';

const PROJECT = path.resolve(__dirname, '..', '..', 'notebooks', 'quickstart');
const TRAIN = '(rate) => { const m = require("./src/model"); return { ...m.train(rate), calls: m.callCount() }; }';

function step(title: string): void {
  console.log(`\n== ${title}`);
}

async function main(): Promise<void> {
  const flag = process.argv.indexOf('--agent');
  const configured = flag >= 0 ? process.argv[flag + 1] : process.env.TSLAB_REMOTE_AGENT;
  let local: LocalAgent | undefined;
  if (!configured) local = await startLocalAgent();
  const endpoint = configured ?? local!.endpoint;
  const client = await connect(endpoint);
  const show = (stream: string, text: string): void => {
    for (const line of text.split('\n').filter(Boolean)) console.log(`  [remote ${stream}] ${line}`);
  };
  try {
    step(`connected to ${endpoint}${local ? ' (a private agent on this machine)' : ''}`);
    console.log(
      `  agent ${client.agent.version} on ${client.agent.hostname}, node ${client.agent.node}, ${client.agent.workers} workers`,
    );

    // Work on a copy, so the edit below leaves the repository as it was.
    const root = (await tmp.dir({ unsafeCleanup: true, prefix: 'quickstart-' })).path;
    await fs.cp(PROJECT, root, { recursive: true });

    step('ship the local package and train remotely');
    let snapshot = await snapshotDirectory(root);
    let sent = await client.upload(snapshot);
    console.log(`  snapshot ${snapshot.hash.slice(0, 12)}: ${sent.filesSent} files sent (${sent.bytesSent} bytes)`);
    let started = performance.now();
    console.log('  result:', await client.run({ source: TRAIN, args: [0.1], snapshot: snapshot.hash, onOutput: show }));
    console.log(`  took ${(performance.now() - started).toFixed(1)} ms`);

    step('run again: module state survives between calls (calls: 2)');
    console.log('  result:', await client.run({ source: TRAIN, args: [0.2], snapshot: snapshot.hash, onOutput: show }));

    step('edit src/model.ts locally (report the loss in percent) and run again: no redeploy, no restart');
    const model = path.join(root, 'src', 'model.ts');
    const text = await fs.readFile(model, 'utf8');
    await fs.writeFile(model, text.replace('loss ${loss.toFixed(4)}', 'loss ${(loss * 100).toFixed(1)}%'));
    snapshot = await snapshotDirectory(root);
    started = performance.now();
    sent = await client.upload(snapshot);
    console.log(`  snapshot ${snapshot.hash.slice(0, 12)}: ${sent.filesSent} file sent (${sent.bytesSent} bytes)`);
    console.log('  result:', await client.run({ source: TRAIN, args: [0.1], snapshot: snapshot.hash, onOutput: show }));
    console.log(
      `  upload + run took ${(performance.now() - started).toFixed(1)} ms; calls restarted at 1 because model.ts changed`,
    );

    step('a remote error points at the TypeScript line');
    try {
      await client.run({ source: TRAIN, args: [5], snapshot: snapshot.hash });
    } catch (error) {
      const remote = error as RemoteError;
      console.log(`  ${remote.code}: ${remote.remoteName}: ${remote.message}`);
      console.log(
        `  ${remote.remoteStack
          ?.split('\n')
          .find((line) => line.includes('src/model.ts'))
          ?.trim()}`,
      );
    }

    step('cancel an endless loop; the worker survives');
    const endless = client.start({ source: '() => { for (;;) {} }' });
    setTimeout(() => void endless.cancel(), 300);
    try {
      await endless.result;
    } catch (error) {
      console.log(`  ${(error as RemoteError).code}: ${(error as Error).message}`);
    }
    console.log('  next call:', await client.run({ source: TRAIN, args: [0.5], snapshot: snapshot.hash }));
  } finally {
    await client.close();
    if (local) console.log(`\nlocal agent stopped (exit code ${await local.stop()})`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
