// Size limits: a tree over maxBytes fails before any read, naming the largest files and directories with their
// sizes and suggesting an exclude; each file over largeFileBytes earns a warning; unreadable paths are all named.

import { expect } from 'chai';

import { rejectionOf } from '../../../support/rejection';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import { snapshot, SnapshotError } from '../../../../kernel-ext/client/snapshot';
import { nodeFs } from '../../../../kernel-ext/client/snapshot/snapshot-fs';
import { countingReads, makeTree, removeTrees } from './snapshot-tree';

const bytes = (n: number) => Buffer.alloc(n, 7);

// The error a snapshot rejects with.
const failure = (promise: Promise<unknown>): Promise<SnapshotError> => rejectionOf(promise, SnapshotError);

describe('kernel-ext snapshot: limits', () => {
  afterEach(removeTrees);

  it('fails over maxBytes, before reading anything, naming the largest files and directories and an exclude', async () => {
    const root = await makeTree({
      'src/index.ts': bytes(100),
      'data/raw/big1.bin': bytes(3000),
      'data/raw/big2.bin': bytes(2500),
      'data/small.bin': bytes(200),
      'assets/img1.png': bytes(900),
      'assets/img2.png': bytes(800),
      'assets/img3.png': bytes(700),
      'assets/icons/tiny.png': bytes(50),
    });
    const { hooks, reads } = countingReads(root);
    const error = await failure(snapshot(root, { maxBytes: 5000, fs: hooks }));
    expect(reads).to.deep.equal([]);
    expect(error.code).to.equal('SNAPSHOT_TOO_LARGE');
    const message = error.message;
    expect(message).to.include(root).and.include('8.3 kB').and.include('5.0 kB limit');
    const files = message.slice(message.indexOf('Largest files:'), message.indexOf('Largest directories:'));
    expect(files)
      .to.match(/3\.0 kB {2}data\/raw\/big1\.bin/)
      .and.match(/2\.5 kB {2}data\/raw\/big2\.bin/);
    expect(files).to.include('assets/img3.png').and.not.include('data/small.bin').and.not.include('src/index.ts');
    const dirs = message.slice(message.indexOf('Largest directories:'));
    expect(dirs)
      .to.match(/5\.7 kB {2}data\//)
      .and.match(/5\.5 kB {2}data\/raw\//)
      .and.match(/2\.5 kB {2}assets\//);
    // Excess 3.3 kB: data/raw/ (5.5 kB) is the narrowest single pattern that brings the tree under the limit.
    expect(message).to.include("exclude: ['/data/raw/']");
    expect(error.paths).to.deep.equal([
      'data/raw/big1.bin',
      'data/raw/big2.bin',
      'assets/img1.png',
      'assets/img2.png',
      'assets/img3.png',
    ]);
  });

  it('suggests a single file when that alone is enough', async () => {
    const root = await makeTree({ 'src/a.ts': bytes(400), 'src/model.onnx': bytes(2000), 'src/b.ts': bytes(400) });
    const error = await failure(snapshot(root, { maxBytes: 1000 }));
    expect(error.message).to.include("exclude: ['/src/model.onnx']");
  });

  it('passes at exactly maxBytes and reports the total', async () => {
    const root = await makeTree({ 'a.bin': bytes(600), 'b/c.bin': bytes(400) });
    expect((await snapshot(root, { maxBytes: 1000 })).bytes).to.equal(1000);
  });

  it('warns about each file over largeFileBytes, with its size, and still ships it', async () => {
    const root = await makeTree({ 'weights.bin': bytes(1500), 'data/table.csv': bytes(1200), 'small.ts': bytes(1000) });
    const result = await snapshot(root, { largeFileBytes: 1000 });
    expect(result.files).to.have.length(3);
    expect(result.warnings).to.have.length(2);
    expect(result.warnings[0]).to.include('weights.bin').and.include('1.5 kB');
    expect(result.warnings[1]).to.include('data/table.csv').and.include('1.2 kB');
  });

  it('names every file whose read is refused (EACCES through the fs hook)', async () => {
    const root = await makeTree({ 'ok.ts': 'x', 'locked/a.dat': 'x', 'b.bin': 'x' });
    const readFile = (file: string) => {
      if (file.endsWith('.dat') || file.endsWith('.bin')) {
        return Promise.reject(
          Object.assign(new Error(`EACCES: permission denied, open '${file}'`), { code: 'EACCES' }),
        );
      }
      return nodeFs.readFile(file);
    };
    const error = await failure(snapshot(root, { fs: { readFile } }));
    expect(error.code).to.equal('SNAPSHOT_UNREADABLE');
    expect(error.paths).to.deep.equal(['b.bin', 'locked/a.dat']);
    expect(error.message).to.include('b.bin').and.include('locked/a.dat').and.include('permission denied');
  });

  const asRoot = process.getuid?.() === 0;
  (asRoot ? it.skip : it)(
    `names unreadable files and directories on disk (chmod 000)${asRoot ? ' — skipped: running as root, which reads anything' : ''}`,
    async () => {
      const root = await makeTree({ 'ok.ts': 'x', 'secret.txt': 'x', 'private/x.ts': 'x' });
      await fs.chmod(path.join(root, 'secret.txt'), 0o000);
      await fs.chmod(path.join(root, 'private'), 0o000);
      try {
        const error = await failure(snapshot(root));
        expect(error.paths).to.deep.equal(['private/', 'secret.txt']);
        expect(error.message).to.include('private/').and.include('secret.txt');
      } finally {
        await fs.chmod(path.join(root, 'private'), 0o755);
      }
    },
  );
});
