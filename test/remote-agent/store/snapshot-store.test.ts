// The snapshot store on a real file system: check and upload (only what it lacks, once under races), and reopening a workdir.

import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import { fileHash } from '../../../protocol/manifest';
import { Tree, bytes, listing, snapshotOf, treeA, useStoreWorkdir, writeAsRoot, zipOf } from './store-harness';

describe('remote-agent/store', () => {
  const fixture = useStoreWorkdir();

  describe('check and upload', () => {
    it('check reports exactly the hashes it lacks', async () => {
      const store = await fixture.open();
      const a = snapshotOf(treeA);
      const first = await store.check(a.snapshot, a.files);
      expect(first.ready).to.equal(false);
      expect([...first.missing].sort()).to.deep.equal(a.files.map((f) => f.hash).sort());

      await store.upload(a.snapshot, a.files, await zipOf(treeA));
      const treeB = { ...treeA, 'src/new.ts': Buffer.from('new'), 'README.md': Buffer.from('# b') };
      const b = snapshotOf(treeB);
      const second = await store.check(b.snapshot, b.files);
      expect(second.ready).to.equal(false);
      expect([...second.missing].sort()).to.deep.equal(
        [fileHash('src/new.ts', treeB['src/new.ts']), fileHash('README.md', treeB['README.md'])].sort(),
      );
      expect(store.has(b.snapshot)).to.equal(false);
    });

    it('upload creates the snapshot directory with the files; check then answers ready', async () => {
      const store = await fixture.open();
      const a = snapshotOf(treeA);
      expect(await store.upload(a.snapshot, a.files, await zipOf(treeA))).to.deep.equal({ ready: true, missing: [] });
      expect(await store.check(a.snapshot, a.files)).to.deep.equal({ ready: true, missing: [] });
      expect(store.has(a.snapshot)).to.equal(true);
      const dir = store.dirOf(a.snapshot);
      expect(dir).to.equal(path.join(fixture.workdir, 'snapshots', a.snapshot));
      for (const [p, content] of Object.entries(treeA)) {
        expect(await fs.readFile(path.join(dir, p))).to.deep.equal(content);
        expect((await fs.stat(path.join(dir, p))).mode & 0o777).to.equal(0o444);
      }
      expect(await listing(dir)).to.deep.equal(['package.json', 'src/', 'src/index.ts', 'src/lib/', 'src/lib/util.ts']);
      expect(store.stats()).to.deep.include({ snapshots: 1, blobs: 3, created: 1, evicted: 0 });
      expect(store.stats().bytes).to.equal(Object.values(treeA).reduce((n, b) => n + b.length, 0));
      expect(await fs.readdir(path.join(fixture.workdir, 'tmp'))).to.deep.equal([]);
    });

    it('concurrent uploads and checks of one snapshot create one directory', async () => {
      const store = await fixture.open();
      const a = snapshotOf(treeA);
      const archive = await zipOf(treeA);
      const results = await Promise.all(Array.from({ length: 5 }, () => store.upload(a.snapshot, a.files, archive)));
      expect(results.every((r) => r.ready)).to.equal(true);
      expect(store.stats().created).to.equal(1);

      // Every blob present: five concurrent checks of a new manifest share one creation.
      const subset = { 'package.json': treeA['package.json']!, 'src/index.ts': treeA['src/index.ts']! };
      const s = snapshotOf(subset);
      const checks = await Promise.all(Array.from({ length: 5 }, () => store.check(s.snapshot, s.files)));
      expect(checks.every((r) => r.ready && r.missing.length === 0)).to.equal(true);
      expect(store.stats().created).to.equal(2);
      expect(await fs.readdir(path.join(fixture.workdir, 'snapshots'))).to.have.members([a.snapshot, s.snapshot]);
      expect(await fs.readdir(path.join(fixture.workdir, 'tmp'))).to.deep.equal([]);
    });

    it('a second snapshot sharing files needs only the changed file and shares the rest on disk', async () => {
      const store = await fixture.open();
      const a = snapshotOf(treeA);
      await store.upload(a.snapshot, a.files, await zipOf(treeA));
      const treeB = { ...treeA, 'src/index.ts': Buffer.from('export const x = 2;\n') };
      const b = snapshotOf(treeB);
      const status = await store.check(b.snapshot, b.files);
      expect(status).to.deep.equal({ ready: false, missing: [fileHash('src/index.ts', treeB['src/index.ts'])] });
      await store.upload(b.snapshot, b.files, await zipOf({ 'src/index.ts': treeB['src/index.ts'] }));
      const dirA = store.dirOf(a.snapshot);
      const dirB = store.dirOf(b.snapshot);
      expect(await fs.readFile(path.join(dirB, 'src/index.ts'), 'utf8')).to.equal('export const x = 2;\n');
      expect(await fs.readFile(path.join(dirA, 'src/index.ts'), 'utf8')).to.equal('export const x = 1;\n');
      const inoA = (await fs.stat(path.join(dirA, 'src/lib/util.ts'))).ino;
      expect((await fs.stat(path.join(dirB, 'src/lib/util.ts'))).ino).to.equal(inoA);
      expect(store.stats()).to.deep.include({ snapshots: 2, blobs: 4, created: 2 });
    });

    it('uploads again a blob a job rewrote through its snapshot (root ignores 0444), so new snapshots get true bytes', async () => {
      const store = await fixture.open();
      const a = snapshotOf(treeA);
      await store.upload(a.snapshot, a.files, await zipOf(treeA));
      const dirA = store.dirOf(a.snapshot);
      await writeAsRoot(path.join(dirA, 'package.json'), '{"name":"tampered"}'); // another size
      await writeAsRoot(path.join(dirA, 'src/index.ts'), 'export const x = 9;\n'); // the same size
      const treeB = { ...treeA, 'README.md': Buffer.from('# b') };
      const b = snapshotOf(treeB);
      const rewritten = ['package.json', 'src/index.ts'].map((p) => fileHash(p, treeA[p]!));
      const status = await store.check(b.snapshot, b.files);
      expect(status.missing).to.have.members([...rewritten, fileHash('README.md', treeB['README.md'])]);
      expect(fixture.logs).to.include(
        `store: blob ${rewritten[0]!.slice(0, 12)} of package.json was modified after upload (a job wrote into its snapshot?); ` +
          'it will be uploaded again',
      );
      expect(store.stats()).to.deep.include({ blobs: 1, bytes: treeA['src/lib/util.ts']!.length });
      const resent = {
        'package.json': treeA['package.json']!,
        'src/index.ts': treeA['src/index.ts']!,
        'README.md': treeB['README.md'],
      };
      expect(await store.upload(b.snapshot, b.files, await zipOf(resent))).to.deep.equal({ ready: true, missing: [] });
      for (const [p, content] of Object.entries(treeB))
        expect(await fs.readFile(path.join(store.dirOf(b.snapshot), p))).to.deep.equal(content);
    });

    it('checks 2,000 held blobs for writes by their stat, reading none of them', async () => {
      const store = await fixture.open();
      const tree: Tree = Object.fromEntries(
        Array.from({ length: 2000 }, (_, i) => [`src/f${i}.ts`, Buffer.from(`export const v = ${i};\n`)]),
      );
      const a = snapshotOf(tree);
      await store.upload(a.snapshot, a.files, await zipOf(tree));
      const b = snapshotOf({ ...tree, 'new.ts': Buffer.from('1') });
      const promises = require('node:fs').promises as {
        readFile: (...args: unknown[]) => unknown;
        open: (...args: unknown[]) => unknown;
      };
      const [readFile, openFile] = [promises.readFile, promises.open];
      let reads = 0;
      promises.readFile = (...args) => (reads++, readFile(...args));
      promises.open = (...args) => (reads++, openFile(...args));
      try {
        expect((await store.check(b.snapshot, b.files)).missing).to.have.length(1);
      } finally {
        [promises.readFile, promises.open] = [readFile, openFile];
      }
      expect(reads).to.equal(0); // its cost is in bench/ (the edit-to-result figure)
    });

    it('takes an upload in batches: a partial one stores its files and lists what is still missing', async () => {
      const store = await fixture.open();
      const a = snapshotOf(treeA);
      const rest = a.files.filter((f) => f.path !== 'package.json');
      const first = await store.upload(a.snapshot, a.files, await zipOf({ 'package.json': treeA['package.json']! }));
      expect(first.ready).to.equal(false);
      expect(first.missing).to.have.members(rest.map((f) => f.hash));
      expect(store.has(a.snapshot)).to.equal(false);
      expect(await fs.readdir(path.join(fixture.workdir, 'snapshots'))).to.deep.equal([]);
      const restTree = Object.fromEntries(rest.map((f) => [f.path, treeA[f.path]!]));
      expect(await store.upload(a.snapshot, a.files, await zipOf(restTree))).to.deep.equal({
        ready: true,
        missing: [],
      });
      expect(store.has(a.snapshot)).to.equal(true);
    });
  });

  describe('reopening', () => {
    it('finds existing snapshots and blobs, keeps their LRU order and clears tmp/', async () => {
      const first = await fixture.open();
      const tOld = { 'old.bin': bytes(1000, 1) };
      const tNew = { 'new.bin': bytes(1000, 2) };
      const sOld = snapshotOf(tOld);
      const sNew = snapshotOf(tNew);
      await first.upload(sNew.snapshot, sNew.files, await zipOf(tNew)); // created first ...
      fixture.later();
      await first.upload(sOld.snapshot, sOld.files, await zipOf(tOld));
      fixture.later();
      await first.touch(sNew.snapshot); // ... but used last
      await fs.writeFile(path.join(fixture.workdir, 'tmp', 'leftover'), 'half-written');

      const within = await fixture.open();
      expect(within.stats()).to.deep.equal({ snapshots: 2, blobs: 2, bytes: 2000, created: 0, evicted: 0 });
      await fs.writeFile(path.join(fixture.workdir, 'tmp', 'leftover'), 'half-written');
      // Over the (lowered) budget at once: the snapshot created last but used first goes, by the directory mtimes
      // the first store kept.
      const second = await fixture.open({ diskBudgetBytes: 1500 });
      expect(await fs.readdir(path.join(fixture.workdir, 'tmp'))).to.deep.equal([]);
      expect(second.has(sOld.snapshot)).to.equal(false);
      expect(second.has(sNew.snapshot)).to.equal(true);
      expect(await second.check(sNew.snapshot, sNew.files)).to.deep.equal({ ready: true, missing: [] });
      expect(second.stats()).to.deep.include({ snapshots: 1, blobs: 1, created: 0, evicted: 1 });
    });
  });
});
