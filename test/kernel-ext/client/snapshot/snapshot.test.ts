// Snapshot identity: the hash depends on paths and bytes only (never mtimes, creation or walk order, or where the
// tree lies), one changed byte changes it; the zip of a snapshot carries exactly the manifest's bytes.

import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import JSZip from 'jszip';

import { fileHash } from '../../../../protocol/manifest';
import { snapshot, snapshotDirectory, zipFiles } from '../../../../kernel-ext/client/snapshot';
import { makeTree, pathsOf, removeTrees, writeTree } from './snapshot-tree';

const TREE = {
  'package.json': '{"name":"demo"}',
  'package-lock.json': '{"lockfileVersion":3}',
  'src/index.ts': 'export const answer: number = 42;\n',
  'src/util/strings.ts': 'export const shout = (s: string) => s.toUpperCase();\n',
  'README.md': '# demo\n',
};

describe('kernel-ext snapshot: hashing', () => {
  afterEach(removeTrees);

  it('gives the same hash for the same tree written in another order, elsewhere, with other mtimes', async () => {
    const first = await makeTree(TREE);
    const reversed = Object.fromEntries(Object.entries(TREE).reverse());
    const second = await makeTree(reversed, { prefix: 'other-place-' });
    const old = new Date('2001-02-03T04:05:06Z');
    await fs.utimes(path.join(second, 'src/index.ts'), old, old);

    const a = await snapshot(first);
    const b = await snapshot(second);
    expect(a.root).to.not.equal(b.root);
    expect(b.files).to.deep.equal(a.files);
    expect(b.hash).to.equal(a.hash);
  });

  it('ships .ts sources as they are, package.json and the lock file, under POSIX paths, sorted', async () => {
    const root = await makeTree(TREE);
    const result = await snapshot(root);
    expect(pathsOf(result)).to.deep.equal([
      'README.md',
      'package-lock.json',
      'package.json',
      'src/index.ts',
      'src/util/strings.ts',
    ]);
    const entry = result.files.find((file) => file.path === 'src/util/strings.ts')!;
    const bytes = Buffer.from(TREE['src/util/strings.ts']);
    expect(entry).to.deep.equal({
      path: 'src/util/strings.ts',
      size: bytes.length,
      hash: fileHash('src/util/strings.ts', bytes),
    });
    expect(result.bytes).to.equal(Object.values(TREE).reduce((sum, text) => sum + Buffer.byteLength(text), 0));
  });

  it('changes the hash, and only that file entry, when one byte changes', async () => {
    const root = await makeTree(TREE);
    const before = await snapshot(root);
    await writeTree(root, { 'src/index.ts': TREE['src/index.ts'].replace('42', '43') });
    const after = await snapshot(root);
    expect(after.hash).to.not.equal(before.hash);
    const changed = after.files.filter((file, i) => file.hash !== before.files[i]!.hash).map((file) => file.path);
    expect(changed).to.deep.equal(['src/index.ts']);
  });

  it('changes the hash when a file is renamed with the same bytes (the path is part of its identity)', async () => {
    const root = await makeTree(TREE);
    const before = await snapshot(root);
    await fs.rename(path.join(root, 'README.md'), path.join(root, 'README.txt'));
    expect((await snapshot(root)).hash).to.not.equal(before.hash);
  });

  it('keeps snapshotDirectory as a wrapper returning the same manifest', async () => {
    const root = await makeTree(TREE);
    const full = await snapshot(root);
    expect(await snapshotDirectory(root)).to.deep.equal({ root: full.root, hash: full.hash, files: full.files });
  });

  it('zips exactly the requested files with their bytes, in manifest order', async () => {
    const root = await makeTree(TREE);
    const result = await snapshot(root);
    const wanted = result.files.filter((file) => file.path.startsWith('src/'));
    const zip = await JSZip.loadAsync(await zipFiles(result, wanted));
    const names = Object.values(zip.files)
      .filter((entry) => !entry.dir)
      .map((entry) => entry.name);
    expect(names).to.deep.equal(['src/index.ts', 'src/util/strings.ts']);
    for (const file of wanted) {
      const bytes = await zip.file(file.path)!.async('nodebuffer');
      expect(fileHash(file.path, bytes)).to.equal(file.hash);
    }
  });

  it('refuses to zip a file whose size changed since the snapshot', async () => {
    const root = await makeTree(TREE);
    const result = await snapshot(root);
    await writeTree(root, { 'README.md': '# a longer readme now\n' });
    try {
      await zipFiles(result, result.files);
      expect.fail('zipFiles should reject');
    } catch (error) {
      expect((error as Error).message)
        .to.include('README.md')
        .and.include('changed since the snapshot');
    }
  });

  it('says which root is missing or not a directory', async () => {
    const root = await makeTree(TREE);
    const missing = path.join(root, 'nope');
    let message = '';
    await snapshot(missing).catch((error: Error) => (message = error.message));
    expect(message).to.include(missing);
    await snapshot(path.join(root, 'README.md')).catch((error: Error) => (message = error.message));
    expect(message).to.include('README.md').and.include('not a directory');
  });
});
