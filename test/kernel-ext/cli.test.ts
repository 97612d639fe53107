// The `tslab-remote` command line: where `install` puts the kernelspec, usage errors and the documented exit statuses.
// How `run` stops a cell: test/kernel-ext/run/run-stops.test.ts.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { CLI, jupyterAvailability, PYTHON } from './kernel/jupyter-support';

function cli(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('tslab-remote command line', function () {
  this.timeout(60_000);

  it('installs for the user into JUPYTER_DATA_DIR, asking jupyter_core when the python has it, else by default', async function () {
    const dir = await tmp.dir({ unsafeCleanup: true });
    try {
      const fallback = cli(['install', '--user', '--python', path.join(dir.path, 'no-python')], {
        JUPYTER_DATA_DIR: path.join(dir.path, 'a'),
      });
      expect(fallback.code, fallback.stderr).to.equal(0);
      const spec = JSON.parse(
        fs.readFileSync(path.join(dir.path, 'a', 'kernels', 'tslab-remote', 'kernel.json'), 'utf8'),
      );
      expect(spec).to.deep.include({
        display_name: 'TypeScript (remote)',
        language: 'typescript',
        interrupt_mode: 'signal',
      });
      expect(spec.argv).to.deep.equal([process.execPath, CLI, 'kernel', '--config-path', '{connection_file}']);
      if (jupyterAvailability().ok) {
        const asked = cli(['install', '--user', '--python', PYTHON], { JUPYTER_DATA_DIR: path.join(dir.path, 'b') });
        expect(asked.code, asked.stderr).to.equal(0);
        expect(asked.stdout).to.include(path.join(dir.path, 'b', 'kernels', 'tslab-remote'));
      }
    } finally {
      await dir.cleanup();
    }
  });

  it('says what is wrong with its arguments', () => {
    expect(cli(['install', '--user', '--prefix', '/tmp/x'])).to.include({ code: 2 });
    expect(cli(['install', '--user', '--prefix', '/tmp/x']).stderr).to.include(
      '--user and --prefix exclude each other',
    );
    expect(cli(['kernel']).stderr).to.include('kernel needs --config-path');
    expect(cli(['run']).stderr).to.include('run needs one NOTEBOOK.ipynb');
    expect(cli(['run', '/nonexistent/x.ipynb'])).to.include({
      code: 1,
      stderr: 'tslab-remote: run: /nonexistent/x.ipynb does not exist\n',
    });
    expect(cli(['run', 'x.ipynb', '--bogus']).code).to.equal(2);
    const notNotebook = path.join(os.tmpdir(), `not-a-notebook-${process.pid}.ipynb`);
    fs.writeFileSync(notNotebook, '{"cells": 3}');
    try {
      const refused = cli(['run', notNotebook]);
      expect(refused).to.include({ code: 1, stderr: `tslab-remote: ${notNotebook} is not a notebook in nbformat 4\n` });
      fs.writeFileSync(notNotebook, '{"cells": [{"cell_type": "code"}], "nbformat": 4}');
      expect(cli(['run', notNotebook])).to.include({
        code: 1,
        stderr: `tslab-remote: ${notNotebook}: cell 1 is not a notebook cell (it needs cell_type and source)\n`,
      });
    } finally {
      fs.rmSync(notNotebook, { force: true });
    }
    expect(cli(['frobnicate']).stderr).to.include('unknown command frobnicate');
    const help = cli(['--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.include('tslab-remote install').and.include('tslab-remote run NOTEBOOK.ipynb');
  });

  it('documents the exit statuses of run in --help', () => {
    const help = cli(['--help']).stdout.replace(/\s+/g, ' ');
    expect(help).to.include(
      'Exit status: 0 every cell ran; 1 a cell failed, or the run did; 2 usage error; 124 a cell ran past --timeout; 130 Ctrl-C (SIGINT)',
    );
  });
});
