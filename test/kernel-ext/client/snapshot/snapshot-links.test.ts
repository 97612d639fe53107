// Symbolic links: a link to a file inside the root ships as a copy of the target under the link's path; links out
// of the root, to directories (cycles) and to nothing are skipped with a warning.

import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import JSZip from 'jszip';

import { fileHash } from '../../../../protocol/manifest';
import { snapshot, zipFiles } from '../../../../kernel-ext/client/snapshot';
import { makeTree, pathsOf, removeTrees } from './snapshot-tree';

describe('kernel-ext snapshot: symbolic links', function () {
  this.timeout(10_000);
  afterEach(removeTrees);

  it('ships a link to a file inside the root as a copy of the target, under the link path', async () => {
    const root = await makeTree({ 'src/real.ts': 'export const real = 1;\n' });
    await fs.mkdir(path.join(root, 'lib'));
    await fs.symlink('../src/real.ts', path.join(root, 'lib/alias.ts'));
    const result = await snapshot(root);
    expect(pathsOf(result)).to.deep.equal(['lib/alias.ts', 'src/real.ts']);
    const bytes = Buffer.from('export const real = 1;\n');
    expect(result.files[0]).to.deep.equal({
      path: 'lib/alias.ts',
      size: bytes.length,
      hash: fileHash('lib/alias.ts', bytes),
    });
    const zip = await JSZip.loadAsync(await zipFiles(result, result.files));
    expect(await zip.file('lib/alias.ts')!.async('string')).to.equal('export const real = 1;\n');
  });

  it('skips links that point outside the root, with a warning naming them', async () => {
    const outside = await makeTree({ 'secret.txt': 'not yours', 'dir/x.txt': 'x' });
    const root = await makeTree({ 'index.ts': 'x' });
    await fs.symlink(path.join(outside, 'secret.txt'), path.join(root, 'secret.txt'));
    await fs.symlink(path.join(outside, 'dir'), path.join(root, 'dir'));
    await fs.symlink('../' + path.basename(root) + '-sibling', path.join(root, 'sneaky'));
    const result = await snapshot(root);
    expect(pathsOf(result)).to.deep.equal(['index.ts']);
    expect(result.warnings.join('\n'))
      .to.include('secret.txt: it points outside the code root')
      .and.include('dir: it points outside');
    expect(result.warnings.join('\n')).to.include('sneaky: its target does not exist');
  });

  it('skips links to directories inside the root, so a cycle cannot hang the walk', async () => {
    const root = await makeTree({ 'a/file.ts': 'x' });
    await fs.symlink('..', path.join(root, 'a/loop'));
    await fs.symlink('.', path.join(root, 'self'));
    await fs.symlink('a', path.join(root, 'a-again'));
    const result = await snapshot(root);
    expect(pathsOf(result)).to.deep.equal(['a/file.ts']);
    expect(result.warnings.filter((w) => w.includes('points to a directory'))).to.have.length(3);
  });

  it('follows a chain of links only as far as it stays inside the root', async () => {
    const outside = await makeTree({ 'target.txt': 'outside' });
    const root = await makeTree({ 'inside.txt': 'inside' });
    await fs.symlink(path.join(outside, 'target.txt'), path.join(root, 'hop'));
    await fs.symlink('hop', path.join(root, 'chain'));
    await fs.symlink('inside.txt', path.join(root, 'ok'));
    await fs.symlink('ok', path.join(root, 'ok-chain'));
    expect(pathsOf(await snapshot(root))).to.deep.equal(['inside.txt', 'ok', 'ok-chain']);
  });

  it('is not fooled by a root reached through a link', async () => {
    const real = await makeTree({ 'x.ts': 'x' });
    const holder = await makeTree({});
    await fs.symlink(real, path.join(holder, 'root-link'));
    await fs.symlink('x.ts', path.join(real, 'y.ts'));
    expect(pathsOf(await snapshot(path.join(holder, 'root-link')))).to.deep.equal(['x.ts', 'y.ts']);
  });
});
