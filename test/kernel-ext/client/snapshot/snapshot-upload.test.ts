// Snapshots travelling to a real agent: only what it lacks, in batches with progress, one transfer per snapshot.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

import type { UploadProgress } from '../../../../kernel-ext/client/client-options';
import { snapshot, StatCache } from '../../../../kernel-ext/client/snapshot';
import { agentWithClient, makeTree } from '../../../support/agent-process';

describe('kernel-ext snapshot upload to a real agent', function () {
  this.timeout(30_000);
  const suite = agentWithClient();

  it('sends a large snapshot in batches, reporting progress up to the total', async () => {
    const files: Record<string, string> = { 'package.json': '{}', 'index.js': 'module.exports = () => "loaded";\n' };
    for (let i = 0; i < 6; i++) files[`data/part${i}.bin`] = randomBytes(100_000).toString('hex'); // 200 kB each
    const local = await snapshot(await makeTree(files));
    const progress: UploadProgress[] = [];
    const report = await suite.client.upload(local, { batchBytes: 450_000, onProgress: (p) => progress.push(p) });
    expect(report.filesSent).to.equal(8);
    expect(progress.length).to.be.at.least(3);
    const sent = progress.map((p) => p.sentBytes);
    expect(sent).to.deep.equal([...sent].sort((a, b) => a - b));
    expect(progress.at(-1)).to.deep.include({ sentBytes: local.bytes, totalBytes: local.bytes });
    expect(await suite.client.run({ source: '() => require("./index.js")()', snapshot: local.hash })).to.equal(
      'loaded',
    );
  });

  it('shares one transfer between concurrent uploads of a snapshot', async () => {
    const local = await snapshot(await makeTree({ 'a.js': 'exports.a = 1;\n', 'b.js': 'exports.b = 2;\n' }));
    const before = (await suite.client.status()).store.created;
    const reports = await Promise.all([
      suite.client.upload(local),
      suite.client.upload(local),
      suite.client.upload(local),
    ]);
    expect(reports[1]).to.equal(reports[0]);
    expect(reports[2]).to.equal(reports[0]);
    expect(reports[0].filesSent).to.equal(2);
    expect((await suite.client.status()).store.created - before).to.equal(1);
  });

  it('starts a transfer of its own for an upload asked for after the shared one was aborted', async () => {
    const local = await snapshot(
      await makeTree({ 'a.js': 'exports.a = "mine";\n', 'b.js': 'exports.b = "mine too";\n' }),
    );
    const abort = new AbortController();
    const interrupted = suite.client.upload(local, { signal: abort.signal });
    abort.abort(); // an interrupted cell; the user runs the cell again
    const again = suite.client.upload(local);
    expect(((await interrupted.catch((error: Error) => error)) as Error).name).to.equal('AbortError');
    expect((await again).filesSent).to.equal(2);
    expect(await suite.client.run({ source: '() => require("./a.js").a', snapshot: local.hash })).to.equal('mine');
  });

  it('after an edit sends only the edited file', async () => {
    const root = await makeTree(
      Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`src/m${i}.js`, `exports.v = ${i};\n`])),
    );
    const cache = new StatCache();
    await suite.client.upload(await snapshot(root, { statCache: cache }));
    await fs.writeFile(path.join(root, 'src', 'm7.js'), 'exports.v = "edited";\n');
    const edited = await snapshot(root, { statCache: cache });
    expect(await suite.client.upload(edited)).to.deep.include({ filesSent: 1 });
    expect(await suite.client.run({ source: '() => require("./src/m7.js").v', snapshot: edited.hash })).to.equal(
      'edited',
    );
  });
});
