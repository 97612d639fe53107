// Code root discovery: the nearest directory, from the notebook's own up, that holds a package.json file.

import { expect } from 'chai';
import * as path from 'node:path';

import { findCodeRoot } from '../../../../kernel-ext/client/snapshot/code-root';
import { makeTree, removeTrees } from './snapshot-tree';

describe('kernel-ext code root', () => {
  afterEach(removeTrees);

  it('is the start directory itself when it holds a package.json', async () => {
    const root = await makeTree({ 'package.json': '{}', 'notebooks/a.ipynb': '{}' });
    expect(await findCodeRoot(root)).to.equal(root);
  });

  it('is the nearest ancestor holding a package.json', async () => {
    const root = await makeTree({
      'package.json': '{}',
      'packages/app/package.json': '{}',
      'packages/app/notebooks/deep/a.ipynb': '{}',
      'notebooks/b.ipynb': '{}',
    });
    expect(await findCodeRoot(path.join(root, 'packages/app/notebooks/deep'))).to.equal(
      path.join(root, 'packages/app'),
    );
    expect(await findCodeRoot(path.join(root, 'notebooks'))).to.equal(root);
  });

  it('ignores a directory named package.json', async () => {
    const root = await makeTree({ 'package.json': '{}', 'sub/package.json/x': 'x' });
    expect(await findCodeRoot(path.join(root, 'sub'))).to.equal(root);
  });

  it('fails naming the start directory when no ancestor holds a package.json', async () => {
    const root = await makeTree({ 'notebooks/a.ipynb': '{}' });
    const start = path.join(root, 'notebooks');
    try {
      await findCodeRoot(start);
      expect.fail('findCodeRoot should fail');
    } catch (error) {
      expect((error as Error).message)
        .to.include(start)
        .and.include('no package.json');
    }
  });
});
