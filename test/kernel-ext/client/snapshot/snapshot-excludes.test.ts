// Which files a snapshot ships: .gitignore files at every level as git reads them (nesting, negation, anchored and
// directory-only patterns), the default excludes, and the user's excludes, which can also re-include.

import { expect } from 'chai';
import * as path from 'node:path';

import { snapshot } from '../../../../kernel-ext/client/snapshot';
import { nodeFs } from '../../../../kernel-ext/client/snapshot/snapshot-fs';
import { makeTree, pathsOf, removeTrees } from './snapshot-tree';
import { writeTree } from '../../../support/agent-process';

describe('kernel-ext snapshot: excludes', () => {
  afterEach(removeTrees);

  it('never ships secrets by default: private keys, .env files, credentials; a user pattern can re-include one', async () => {
    const root = await makeTree({
      'src/model.ts': 'export {};',
      'keys/kernel.key': 'secret',
      'keys/kernel.pub': 'public',
      'certs/server.pem': 'secret',
      '.ssh/id_ed25519': 'secret',
      'deploy/id_rsa': 'secret',
      '.aws/credentials': 'secret',
      '.env': 'TOKEN=secret',
      '.env.local': 'TOKEN=secret',
      '.env.example': 'TOKEN=',
      '.npmrc': '//registry/:_authToken=secret',
    });
    expect(pathsOf(await snapshot(root))).to.deep.equal(['keys/kernel.pub', 'src/model.ts']);
    expect(pathsOf(await snapshot(root, { exclude: ['!.env.example'] }))).to.deep.equal([
      '.env.example',
      'keys/kernel.pub',
      'src/model.ts',
    ]);
  });

  it('applies nested .gitignore files with negation, anchored and directory-only patterns', async () => {
    const root = await makeTree({
      '.gitignore': '*.log\n!keep.log\ntmp/\n# a comment\n',
      'a.log': 'x',
      'keep.log': 'x',
      'tmp/scratch.txt': 'x',
      'other/tmp': 'a file named tmp: the dir-only pattern does not match it',
      'other/tmp-not/x.txt': 'x',
      'only-here.txt': 'x',
      'sub/.gitignore': '/only-here.txt\n!special.log\n',
      'sub/b.log': 'x',
      'sub/keep.log': 'x',
      'sub/special.log': 'x',
      'sub/only-here.txt': 'x',
      'sub/tmp/deep.txt': 'x',
      'sub/deeper/only-here.txt': 'x',
      'sub/deeper/c.log': 'x',
    });
    const result = await snapshot(root);
    expect(pathsOf(result)).to.deep.equal([
      '.gitignore',
      'keep.log',
      'only-here.txt',
      'other/tmp',
      'other/tmp-not/x.txt',
      'sub/.gitignore',
      'sub/deeper/only-here.txt',
      'sub/keep.log',
      'sub/special.log',
    ]);
  });

  it('does not descend into an excluded directory', async () => {
    const root = await makeTree({
      '.gitignore': 'tmp/\n',
      'tmp/a/b/c.txt': 'x',
      'node_modules/pkg/index.js': 'x',
      'src/index.ts': 'x',
    });
    const listed: string[] = [];
    const readdir = (dir: string) => {
      listed.push(path.relative(root, dir) || '.');
      return nodeFs.readdir(dir);
    };
    await snapshot(root, { fs: { readdir } });
    expect(listed.sort()).to.deep.equal(['.', 'src']);
  });

  it('leaves out installed packages, version control, build output and the agent workdir at any depth', async () => {
    const root = await makeTree({
      'package.json': '{}',
      'package-lock.json': '{}',
      'src/index.ts': 'x',
      'node_modules/left-pad/index.js': 'x',
      'packages/a/node_modules/x/index.js': 'x',
      '.git/config': 'x',
      'packages/a/.git': 'gitdir: ../../.git/modules/a',
      'dist/index.js': 'x',
      'packages/a/dist/index.js': 'x',
      'build/out.js': 'x',
      'out/x.js': 'x',
      'coverage/lcov.info': 'x',
      '.cache/x': 'x',
      '.next/x': 'x',
      '.turbo/x': 'x',
      '.tslab-remote/snapshots/x': 'x',
      'src/dist': 'a file named dist is a source file',
    });
    expect(pathsOf(await snapshot(root))).to.deep.equal([
      'package-lock.json',
      'package.json',
      'src/dist',
      'src/index.ts',
    ]);
  });

  it('applies user excludes in gitignore syntax, which can re-include defaults and gitignored files', async () => {
    const root = await makeTree({
      '.gitignore': '*.log\n',
      'src/index.ts': 'x',
      'src/data.csv': 'x',
      'data/big.bin': 'x',
      'lib/data/kept.txt': 'x',
      'dist/index.js': 'x',
      'important.log': 'x',
      'other.log': 'x',
      '.git/config': 'x',
    });
    const result = await snapshot(root, { exclude: ['*.csv', '/data/', '!dist/', '!important.log', '!.git/'] });
    expect(pathsOf(result)).to.deep.equal([
      '.gitignore',
      'dist/index.js',
      'important.log',
      'lib/data/kept.txt',
      'src/index.ts',
    ]);
  });

  it('leaves out notebooks and their checkpoints, so saving a notebook ships nothing; a user pattern re-includes them', async () => {
    const root = await makeTree({
      'package.json': '{}',
      'analysis.ipynb': '{}',
      'notebooks/deep/b.ipynb': '{}',
      '.ipynb_checkpoints/analysis-checkpoint.ipynb': '{}',
      'src/model.ts': 'x',
    });
    const before = await snapshot(root);
    expect(pathsOf(before)).to.deep.equal(['package.json', 'src/model.ts']);
    await writeTree(root, {
      'analysis.ipynb': '{"saved": true}',
      '.ipynb_checkpoints/analysis-checkpoint.ipynb': '{"saved": true}',
    });
    expect((await snapshot(root)).hash, 'a saved notebook changes no snapshot').to.equal(before.hash);
    expect(pathsOf(await snapshot(root, { exclude: ['!analysis.ipynb'] }))).to.deep.equal([
      'analysis.ipynb',
      'package.json',
      'src/model.ts',
    ]);
  });

  it('matches case-sensitively, as git does on Linux', async () => {
    const root = await makeTree({ '.gitignore': 'secret.txt\n', 'secret.txt': 'x', 'Secret.txt': 'x' });
    expect(pathsOf(await snapshot(root))).to.deep.equal(['.gitignore', 'Secret.txt']);
  });
});
