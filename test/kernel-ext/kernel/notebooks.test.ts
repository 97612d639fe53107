// Every notebook in notebooks/, executed through the kernel by nbclient (a real Jupyter client), on a copy of the
// folder: the quickstart's edit of its local package and the re-run that shows the new behaviour, errors with their
// mapped frames, an interrupt, large results. Also `tslab-remote run`, the headless batch mode (Node only).

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { KernelConnection } from '../../../kernel-ext/run/kernel-connection';
import { isAlive, waitFor } from '../../support/agent-process';
import {
  cellStartingWith,
  CLI,
  copyNotebooks,
  errorOf,
  ExecutedCell,
  ExecutedNotebook,
  joined,
  nbclient,
  NOTEBOOKS,
  resultOf,
  textOf,
  useJupyterWorkspace,
} from './jupyter-support';

// cluster.ipynb needs a Slurm cluster: cluster-notebook.test.ts runs it against one.
// detached-jobs.ipynb needs an agent that outlives its kernel: detached-notebook.test.ts runs it against one.
const CHECKED = [
  'quickstart.ipynb',
  'errors-and-interrupts.ipynb',
  'large-numeric-results.ipynb',
  'cluster.ipynb',
  'state-across-edits.ipynb',
  'detached-jobs.ipynb',
];

function tagged(cell: ExecutedCell): boolean {
  return (cell.metadata.tags ?? []).includes('raises-exception');
}

/** Every code cell ran; only cells tagged raises-exception failed. */
function expectCleanRun(notebook: ExecutedNotebook): void {
  for (const cell of notebook.cells.filter((c) => c.cell_type === 'code')) {
    expect(cell.execution_count, joined(cell.source)).to.be.a('number');
    const error = errorOf(cell);
    if (tagged(cell)) expect(error, `tagged cell ${joined(cell.source)} should fail`).to.not.equal(undefined);
    else expect(error, `${joined(cell.source)}: ${error?.ename}: ${error?.evalue}`).to.equal(undefined);
  }
}

function checkQuickstart(notebook: ExecutedNotebook, original: string, modelFile: string): void {
  const first = textOf(cellStartingWith(notebook, '%remote trainAt(3)', 0));
  expect(first).to.include('epoch 1: loss 0.7500\nepoch 2: loss 0.5625\nepoch 3: loss 0.4219\n');
  expect(first).to.match(/\{ rate: 0\.25, epochs: 3, loss: 0\.421875, host: '[^']+', calls: 1 \}/);
  // %remote NAME = EXPR: no output, the value is a typed notebook variable; module state survived (calls: 2).
  expect(
    cellStartingWith(notebook, '%remote report =').outputs?.filter((o) => o.output_type !== 'stream'),
  ).to.deep.equal([]);
  expect(textOf(cellStartingWith(notebook, '`loss'))).to.match(/^loss 0\.5625 after 2 epochs, call number 2 on /);
  // After the edit of src/model.ts: the new code runs (percent), and its module was loaded afresh (calls: 1).
  const rerun = textOf(cellStartingWith(notebook, '%remote trainAt(3)', 1));
  expect(rerun).to.include('epoch 1: loss 75.0%\nepoch 2: loss 56.3%\nepoch 3: loss 42.2%\n');
  expect(rerun).to.match(/calls: 1 \}/);
  expect(rerun).not.to.include('0.7500');
  expect(textOf(cellStartingWith(notebook, 'fs.writeFileSync(modelFile, original)'))).to.equal('true\n');
  expect(fs.readFileSync(modelFile, 'utf8')).to.equal(original);
  const cell = cellStartingWith(notebook, '%%remote');
  expect(textOf(cell)).to.match(/trained 2 models on \S+ \(pid \d+\)/);
  expect(joined(resultOf(cell)?.data?.['text/html'])).to.include('<th>rate</th><th>loss</th>');
  expect(textOf(cellStartingWith(notebook, '%remote_agent'))).to.match(
    /endpoint +ipc:\/\/\S+\/agent\.sock[\s\S]*workers +2/,
  );
}

function checkErrors(notebook: ExecutedNotebook): void {
  const typeError = errorOf(cellStartingWith(notebook, "%remote train('fast')"))!;
  expect(typeError.ename).to.equal('TSError');
  expect(typeError.traceback).to.deep.equal([
    "1:15 - Argument of type 'string' is not assignable to parameter of type 'number'.",
  ]);

  const trainCell = cellStartingWith(notebook, '%remote train(5)');
  const remote = errorOf(trainCell)!;
  expect(remote.ename).to.equal('RangeError');
  expect(remote.evalue).to.equal('learning rate must be in (0, 1), got 5');
  expect(remote.traceback![1]).to.match(/^ +at (Object\.)?train \(src\/model\.ts:14:38\)$/);
  expect(remote.traceback![2]).to.equal(`    at In [${trainCell.execution_count}]:1:9`);

  const definition = cellStartingWith(notebook, 'function checkedRate');
  const call = cellStartingWith(notebook, '%remote train(checkedRate(2))');
  const frames = errorOf(call)!.traceback!;
  expect(frames[0]).to.equal('RangeError: rate 2 is too high for this model');
  expect(frames[1]).to.match(
    new RegExp(`^ +at (Object\\.)?checkedRate \\(In \\[${definition.execution_count}\\]:3:11\\)$`),
  );
  expect(frames[2]).to.equal(`    at In [${call.execution_count}]:1:15`);

  const pickle = errorOf(cellStartingWith(notebook, '%remote server.listening'))!;
  expect(pickle.ename).to.equal('PickleError');
  expect(pickle.evalue).to.match(/^the cell → captured server.*net\.Server cannot be pickled/);

  const missing = errorOf(cellStartingWith(notebook, "%remote require('no-such-package"))!;
  expect(missing.ename).to.equal('RemoteError[MODULE_NOT_INSTALLED]');
  expect(missing.evalue).to.include("Cannot find package 'no-such-package-for-tslab-remote'");

  const interrupted = errorOf(cellStartingWith(notebook, '%remote spin()'))!;
  expect(interrupted.ename).to.equal('KeyboardInterrupt');
  expect(interrupted.evalue).to.match(/cancelled; worker \d+ stopped it and kept its state/);
  // The next call works, on the same worker, with the module state from before the interrupt.
  expect(textOf(cellStartingWith(notebook, '%remote callCount()'))).to.equal('1\n');
  const timeout = errorOf(cellStartingWith(notebook, '%remote --timeout 1 spin()'))!;
  expect(timeout.ename).to.equal('RemoteError[TIMEOUT]');
  expect(textOf(cellStartingWith(notebook, '%remote `still here'))).to.equal('still here after 1 trainings\n');
}

/** The count of calls the agent's copy of quickstart/src/model.ts holds, from each `%remote` cell, in order. */
function checkStateAcrossEdits(notebook: ExecutedNotebook): void {
  const call = '%remote (train(0.5, 1), callCount())';
  const counts = [0, 1, 2, 3, 4, 5].map((nth) =>
    joined(resultOf(cellStartingWith(notebook, call, nth))?.data?.['text/plain']),
  );
  // two calls; an unrelated write and a notebook save: kept; an edit: reloaded, then counts on; %remote_reload: afresh
  expect(counts).to.deep.equal(['1', '2', '3', '1', '2', '1']);
  const stderrOf = (nth: number): string =>
    (cellStartingWith(notebook, call, nth).outputs ?? [])
      .filter((o) => o.output_type === 'stream' && o.name === 'stderr')
      .map((o) => joined(o.text))
      .join('');
  expect(stderrOf(2), 'nothing loaded changed: nothing said').to.equal('');
  expect(stderrOf(3)).to.match(/^tslab-remote: reloaded src\/model\.ts; \d+ kept\n$/);
  expect(textOf(cellStartingWith(notebook, '%remote_reload'))).to.match(
    /^dropped 1 module\(s\): src\/model\.ts; the next call loads them afresh on local\n$/,
  );
  expect(textOf(cellStartingWith(notebook, 'fs.writeFileSync(modelFile, original)'))).to.equal('true\n');
}

function checkLargeResults(notebook: ExecutedNotebook): void {
  expect(
    cellStartingWith(notebook, '%remote samples =').outputs?.filter((o) => o.output_type !== 'stream'),
  ).to.deep.equal([]);
  const samples = resultOf(cellStartingWith(notebook, 'samples'))!;
  expect(joined(samples.data!['text/plain'])).to.match(/^Float64Array\(10000000\) \[/);
  const summary = joined(samples.data!['text/html']);
  expect(summary).to.include('<th>length</th><td>10,000,000</td>').and.include('<th>bytes</th><td>76.3 MiB</td>');
  expect(Number(joined(resultOf(cellStartingWith(notebook, 'const mean'))!.data!['text/plain']))).to.be.closeTo(
    0.5,
    0.01,
  );
  const histogram = joined(resultOf(cellStartingWith(notebook, '%remote histogram'))!.data!['text/html']);
  expect(histogram).to.include('<th>bin</th><th>count</th>');
  const counts = [...histogram.matchAll(/<td>(\d+)<\/td>/g)].map((m) => Number(m[1]));
  expect(counts.reduce((a, b) => a + b, 0)).to.equal(10_000_000);
  expect(joined(resultOf(cellStartingWith(notebook, '%remote ({ x:'))!.data!['text/html'])).to.include(
    '<th>x</th><th>y</th>',
  );
  const long = cellStartingWith(notebook, '%%remote');
  const displays = (long.outputs ?? [])
    .filter((o) => o.output_type === 'display_data')
    .map((o) => joined(o.data?.['text/plain']));
  // The running line, emptied where it was first shown, and the final time below all of the cell's output.
  expect(displays).to.have.length(2);
  expect(displays[0]).to.equal('');
  expect(displays[1]).to.match(/^ran on local in [4-9]\.\d s$/);
  expect(textOf(long)).to.match(/\d+ rounds of 100,000 samples in 4 s/);
}

describe('notebooks, executed through the kernel by nbclient', function () {
  this.timeout(600_000);
  const workspace = useJupyterWorkspace();

  it('has a test for every notebook in notebooks/', () => {
    expect(
      fs
        .readdirSync(NOTEBOOKS)
        .filter((f) => f.endsWith('.ipynb'))
        .sort(),
    ).to.deep.equal([...CHECKED].sort());
  });

  it('quickstart: a local package, a closure, %remote, an edit of the package and a re-run with the new behaviour', async () => {
    const modelFile = path.join(workspace.work.dir, 'quickstart', 'src', 'model.ts');
    const original = fs.readFileSync(modelFile, 'utf8');
    const { notebook, code, stderr } = await nbclient(
      workspace.jupyter,
      path.join(workspace.work.dir, 'quickstart.ipynb'),
    );
    expect(code, stderr).to.equal(0);
    expectCleanRun(notebook);
    checkQuickstart(notebook, original, modelFile);
  });

  it('errors-and-interrupts: type errors, mapped remote frames, unpicklable values, missing packages, interrupt, timeout', async () => {
    const { notebook, code, stderr } = await nbclient(
      workspace.jupyter,
      path.join(workspace.work.dir, 'errors-and-interrupts.ipynb'),
    );
    expect(code, stderr).to.equal(0);
    expectCleanRun(notebook);
    checkErrors(notebook);
  });

  it('large-numeric-results: ten million samples back as a Float64Array, summaries, tables, elapsed time', async () => {
    const { notebook, code, stderr } = await nbclient(
      workspace.jupyter,
      path.join(workspace.work.dir, 'large-numeric-results.ipynb'),
    );
    expect(code, stderr).to.equal(0);
    expectCleanRun(notebook);
    checkLargeResults(notebook);
  });

  it('state-across-edits: module state kept across an unrelated write and a notebook save, reset by an edit and by %remote_reload', async () => {
    const { notebook, code, stderr } = await nbclient(
      workspace.jupyter,
      path.join(workspace.work.dir, 'state-across-edits.ipynb'),
    );
    expect(code, stderr).to.equal(0);
    expectCleanRun(notebook);
    checkStateAcrossEdits(notebook);
  });

  it('stops at the first untagged failure (nbclient with stop_on_error), and goes on with allow_errors', async () => {
    const file = path.join(workspace.work.dir, 'failing.ipynb');
    const cells = ['1 + 1', '%remote_root quickstart', '%remote (() => { throw new TypeError("nope") })()', '"after"'];
    fs.writeFileSync(
      file,
      JSON.stringify({
        cells: cells.map((source) => ({ cell_type: 'code', source, metadata: {}, outputs: [], execution_count: null })),
        metadata: {},
        nbformat: 4,
        nbformat_minor: 5,
      }),
    );
    const stopped = await nbclient(workspace.jupyter, file);
    expect(stopped.code).to.equal(1);
    expect(stopped.stderr).to.include('TypeError: nope');
    expect(stopped.notebook.cells[3]!.execution_count ?? null).to.equal(null);
    const allowed = await nbclient(workspace.jupyter, file, { allowErrors: true });
    expect(allowed.code).to.equal(0);
    expect(errorOf(allowed.notebook.cells[2]!)?.ename).to.equal('TypeError');
    expect(textOf(allowed.notebook.cells[3]!)).to.equal('after\n');
  });
});

describe('tslab-remote run (headless, over the Jupyter protocol from Node)', function () {
  this.timeout(300_000);

  it('executes the quickstart, prints each cell’s outputs and writes the executed notebook', async () => {
    const work = await copyNotebooks();
    try {
      const modelFile = path.join(work.dir, 'quickstart', 'src', 'model.ts');
      const original = fs.readFileSync(modelFile, 'utf8');
      const out = path.join(work.dir, 'out.ipynb');
      const env = { ...process.env };
      delete env.TSLAB_REMOTE_AGENT;
      const child = spawn(process.execPath, [CLI, 'run', path.join(work.dir, 'quickstart.ipynb'), '--output', out], {
        env,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code, stderr).to.equal(0);
      expect(stdout).to.include('In [4]: %remote trainAt(3)\n');
      expect(stdout).to.include('epoch 1: loss 75.0%');
      expect(stdout).to.match(/Out\[8\]: \{ rate: 0\.25, epochs: 3, loss: 0\.421875, host: '[^']+', calls: 1 \}/);
      expect(stdout).to.match(/quickstart\.ipynb: all cells ran in [\d.]+ s; wrote /);
      // News, not a warning: on stdout (a notebook shows stderr pink).
      expect(stdout).to.include('starting a private agent on this machine');
      expect(stderr).not.to.include('starting a private agent');
      const notebook = JSON.parse(fs.readFileSync(out, 'utf8')) as ExecutedNotebook;
      expectCleanRun(notebook);
      checkQuickstart(notebook, original, modelFile);
    } finally {
      await work.cleanup();
    }
  });

  it('ends the private agent even when the kernel is killed (SIGKILL)', async () => {
    const kernel = await KernelConnection.start(NOTEBOOKS);
    let agentPid = 0;
    try {
      const info = await kernel.execute('%remote_agent --local', { stopOnError: true, timeoutMs: 60_000 });
      expect(info.status).to.equal('ok');
      const shown = await kernel.execute('%remote_agent', { stopOnError: true, timeoutMs: 60_000 });
      agentPid = Number(
        /agent pid (\d+)/.exec(shown.outputs.map((o) => (o.output_type === 'stream' ? o.text : '')).join(''))?.[1],
      );
      expect(agentPid).to.be.greaterThan(0);
      expect(isAlive(agentPid)).to.equal(true);
      process.kill(kernel.pid!, 'SIGKILL');
      await waitFor(
        () => !isAlive(agentPid),
        15_000,
        `the private agent (pid ${agentPid}) to end after its kernel was killed`,
      );
    } finally {
      await kernel.shutdown();
      if (agentPid && isAlive(agentPid)) process.kill(agentPid, 'SIGKILL');
    }
  });

  it('answers every request of a long fast run (tslab’s unawaited zeromq sends lost replies here)', async () => {
    const kernel = await KernelConnection.start(NOTEBOOKS);
    try {
      await kernel.execute('let n = 0\nfunction f() { console.log("tick"); return ++n }', {
        stopOnError: true,
        timeoutMs: 60_000,
      });
      for (let i = 1; i <= 400; i++) {
        const result = await kernel.execute('f()', { stopOnError: true, timeoutMs: 20_000 });
        expect(result.status, `request ${i}`).to.equal('ok');
        const value = result.outputs.find((o) => o.output_type === 'execute_result');
        expect(
          value && value.output_type === 'execute_result' ? value.data['text/plain'] : undefined,
          `request ${i}`,
        ).to.equal(String(i));
      }
    } finally {
      await kernel.shutdown();
    }
  });

  it('exits 1 and names the cell when a cell fails', async () => {
    const work = await copyNotebooks();
    try {
      const file = path.join(work.dir, 'bad.ipynb');
      fs.writeFileSync(
        file,
        JSON.stringify({
          cells: [
            { cell_type: 'code', source: 'const x: number = "text"', metadata: {}, outputs: [], execution_count: null },
          ],
          metadata: {},
          nbformat: 4,
          nbformat_minor: 5,
        }),
      );
      const child = spawn(process.execPath, [CLI, 'run', file]);
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).to.equal(1);
      expect(stderr).to.include("1:7 - Type 'string' is not assignable to type 'number'.");
      expect(stderr).to.match(/bad\.ipynb: cell 1 failed \(TSError: /);
    } finally {
      await work.cleanup();
    }
  });
});
