// The stat cache: re-checking an unchanged tree reads no file at all (not even .gitignore files); a changed file is
// re-read, and only it; stamps taken too soon after a write are not trusted; edits to .gitignore take effect.

import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import { snapshot, StatCache } from '../../../../kernel-ext/client/snapshot';
import { age, countingReads, makeTree, pathsOf, removeTrees, type Tree, writeTree } from './snapshot-tree';

// 60 files in nested directories, with .gitignore files at two levels.
function sampleTree(): Tree {
  const tree: Tree = { 'package.json': '{}', '.gitignore': '*.log\n', 'src/.gitignore': 'gen/\n', 'src/gen/x.ts': 'x' };
  for (let i = 0; i < 60; i++) tree[`src/m${i % 6}/file${i}.ts`] = `export const v${i} = ${i};\n`;
  return tree;
}

describe('kernel-ext snapshot: stat cache', () => {
  afterEach(removeTrees);

  it('re-checks an unchanged tree without reading any file', async () => {
    const root = await makeTree(sampleTree());
    await age(root);
    const statCache = new StatCache();
    const { hooks, reads } = countingReads(root);
    const first = await snapshot(root, { statCache, fs: hooks });
    expect(reads).to.include('src/m0/file0.ts').and.include('.gitignore').and.include('src/.gitignore');
    expect(first.files).to.have.length(63);
    reads.length = 0;
    const second = await snapshot(root, { statCache, fs: hooks });
    expect(reads).to.deep.equal([]);
    expect(second.files).to.deep.equal(first.files);
    expect(second.hash).to.equal(first.hash);
  });

  it('re-reads a changed file, and only it, and updates its entry', async () => {
    const root = await makeTree(sampleTree());
    await age(root);
    const statCache = new StatCache();
    const { hooks, reads } = countingReads(root);
    const first = await snapshot(root, { statCache, fs: hooks });
    await writeTree(root, { 'src/m3/file9.ts': 'export const v9 = 99;\n' });
    reads.length = 0;
    const second = await snapshot(root, { statCache, fs: hooks });
    expect(reads).to.deep.equal(['src/m3/file9.ts']);
    expect(second.hash).to.not.equal(first.hash);
    expect(second).to.deep.include({ hash: (await snapshot(root)).hash });
  });

  it('notices a same-size rewrite whose mtime was put back, when the first stamp was racy (fresh write)', async () => {
    const root = await makeTree({ 'a.ts': 'const a = 1;\n' });
    const file = path.join(root, 'a.ts');
    // A whole-millisecond mtime, so that setting it again gives the very same stamp.
    const mtime = new Date(Date.now() - 100);
    await fs.utimes(file, mtime, mtime);
    const statCache = new StatCache();
    const { hooks, reads } = countingReads(root);
    const first = await snapshot(root, { statCache, fs: hooks });
    const stamp = await fs.stat(file);
    await fs.writeFile(file, 'const a = 2;\n');
    await fs.utimes(file, mtime, mtime);
    const restamped = await fs.stat(file);
    expect([restamped.size, restamped.mtimeMs, restamped.ino]).to.deep.equal([stamp.size, stamp.mtimeMs, stamp.ino]);
    reads.length = 0;
    const second = await snapshot(root, { statCache, fs: hooks });
    expect(reads).to.deep.equal(['a.ts']);
    expect(second.hash).to.not.equal(first.hash);
  });

  it('re-reads a file replaced by another of the same size and mtime (new inode)', async () => {
    const root = await makeTree({ 'a.ts': 'const a = 1;\n', 'b.ts': 'x' });
    await age(root);
    const statCache = new StatCache();
    const { hooks, reads } = countingReads(root);
    await snapshot(root, { statCache, fs: hooks });
    const file = path.join(root, 'a.ts');
    const { mtime } = await fs.stat(file);
    await fs.writeFile(`${file}.new`, 'const a = 2;\n');
    await fs.utimes(`${file}.new`, mtime, mtime);
    await fs.rename(`${file}.new`, file);
    reads.length = 0;
    await snapshot(root, { statCache, fs: hooks });
    expect(reads).to.deep.equal(['a.ts']);
  });

  it('applies an edited .gitignore and forgets deleted files', async () => {
    const root = await makeTree(sampleTree());
    await age(root);
    const statCache = new StatCache();
    const first = await snapshot(root, { statCache });
    await writeTree(root, { '.gitignore': '*.log\nsrc/m1/\n' });
    await fs.rm(path.join(root, 'src/m2/file2.ts'));
    const second = await snapshot(root, { statCache });
    expect(pathsOf(second).filter((p) => p.startsWith('src/m1/'))).to.deep.equal([]);
    expect(pathsOf(second)).to.not.include('src/m2/file2.ts');
    expect(second.files).to.have.length(first.files.length - 10 - 1);
    expect(statCache.hashes.size(second.root)).to.equal(second.files.length);
  });
});
