// notebooks/cluster.ipynb through nbclient against a real three-node Slurm cluster started on this host
// (test/support/slurm-cluster.ts): %remote_cluster slurm places one agent per node, --all shows a row per node,
// agents.map spreads the sweep over them with a progress line, and %remote_cluster down frees the allocation; a
// kernel shut down without `down` frees it too, and a refused allocation is said plainly.

import { expect } from 'chai';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { waitFor } from '../../support/agent-process';
import { SlurmCluster, slurmMissing, startSlurmCluster } from '../../support/slurm-cluster';
import {
  cellStartingWith,
  copyNotebooks,
  errorOf,
  installKernelspec,
  JupyterEnv,
  joined,
  messagesOf,
  nbclient,
  requireJupyter,
  resultOf,
  RequestResult,
  session,
  textOf,
} from './jupyter-support';

describe('notebooks/cluster.ipynb on a local three-node Slurm cluster', function () {
  this.timeout(300_000);
  let cluster: SlurmCluster | undefined;
  let jupyter: JupyterEnv | undefined;
  let work: { dir: string; cleanup(): Promise<void> } | undefined;

  before(async function () {
    requireJupyter(this);
    const missing = slurmMissing();
    if (missing) {
      if (process.env.CI === 'true') throw new Error(`the cluster notebook needs Slurm: ${missing}`);
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    cluster = await startSlurmCluster(3);
    // The agents' snapshots go to a temp directory (the launcher's default is ~/.cache/tslab-remote).
    const cache = (await tmp.dir({ unsafeCleanup: true, prefix: 'cluster-notebook-cache-' })).path;
    jupyter = await installKernelspec({ SLURM_CONF: cluster.env.SLURM_CONF, XDG_CACHE_HOME: cache });
    work = await copyNotebooks();
  });

  after(async () => {
    await cluster?.stop();
    await jupyter?.cleanup();
    await work?.cleanup();
  });

  it('places agents with %remote_cluster slurm, runs --all and agents.map over them, and frees the allocation', async () => {
    const { notebook, code, stderr } = await nbclient(jupyter!, path.join(work!.dir, 'cluster.ipynb'), {
      timeoutSeconds: 180,
    });
    const errors = notebook.cells.filter((c) => errorOf(c)).map((c) => `${joined(c.source)}\n${textOf(c)}`);
    expect(errors, stderr).to.deep.equal([]);
    expect(code, stderr).to.equal(0);

    const placed = textOf(cellStartingWith(notebook, '%remote_cluster slurm'));
    expect(placed).to.include('started 3 agent(s) with: srun --nodes=3');
    expect(placed).to.match(/^node1 +\S+ +tcp:\/\/127\.0\.0\.1:\d+ +2 +0 +0 +0 +up$/m);

    const all = joined(resultOf(cellStartingWith(notebook, '%remote --all'))!.data!['text/plain']);
    const rows = all
      .split('\n')
      .slice(1)
      .map((line) => line.split(/ {2,}/));
    expect(rows.map((r) => [r[0], r[2]])).to.deep.equal([
      ['node1', 'node1'],
      ['node2', 'node2'],
      ['node3', 'node3'],
    ]);

    const mapCell = cellStartingWith(notebook, 'const reports');
    const table = joined(resultOf(mapCell)!.data!['text/plain']);
    const rates = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6];
    // In input order, each loss (1 - rate)^2 as train computes it.
    for (const rate of rates)
      expect(table).to.include(`{ rate: ${rate}, loss: ${Number(((1 - rate) * (1 - rate)).toFixed(4))} }`);
    expect(table.indexOf('rate: 0.05,')).to.be.lessThan(table.indexOf('rate: 0.6,'));
    // The progress line (display data, updated in place: nbclient keeps its last state) and the agents' output.
    const progress = (mapCell.outputs ?? [])
      .filter((o) => o.output_type === 'display_data')
      .map((o) => joined(o.data?.['text/plain']));
    expect(progress).to.have.length(1);
    expect(progress[0]).to.match(
      /^map: 12\/12 done, 0 running, 0 failed in \d+\.\d s \| node1 \d+ done \| node2 \d+ done \| node3 \d+ done$/,
    );
    expect(textOf(mapCell)).to.match(/^\[node\d#[01]\] epoch 2: loss /m);

    expect(joined(resultOf(cellStartingWith(notebook, 'async function whereEachRan'))!.data!['text/plain'])).to.equal(
      '6',
    );
    expect(textOf(cellStartingWith(notebook, '%remote_cluster down'))).to.equal(
      'stopped the pool: node1, node2, node3\n',
    );
    // The allocation is gone: no job left in the queue.
    expect(cluster!.run('squeue', ['-h']).trim()).to.equal('');
  });

  it('frees the allocation when the kernel shuts down without %remote_cluster down; a refused allocation says why', async () => {
    const place = (nodes: number): string =>
      `%remote_cluster slurm --nodes ${nodes} --agent-args "--bind tcp://127.0.0.1:* --advertise 127.0.0.1 --workers 1"`;
    const [[placed, all, refused, detached]] = (await session(jupyter!, work!.dir, [
      [
        { code: place(2) },
        { code: '%remote --all process.env.SLURMD_NODENAME' },
        { code: `${place(9)}`, stop_on_error: false },
        { code: '%remote --detach 1', stop_on_error: false },
      ],
    ])) as [RequestResult[]];
    expect(placed!.reply!.status).to.equal('ok');
    expect(joined(messagesOf(all!, 'execute_result')[0]!.content.data['text/plain'])).to.match(/^node1 .* node1 /m);
    // Nine nodes of three: Slurm refuses, the cell says so with the command, and the pool keeps its two agents.
    const error = messagesOf(refused!, 'error')[0]!.content;
    expect(error.evalue).to.include('srun');
    expect(error.evalue).to.include('--nodes=9');
    // Its agents end with the kernel: a detached job there is refused, saying what to start instead.
    const refusal = messagesOf(detached!, 'error')[0]!.content;
    expect(refusal.ename).to.equal('UsageError');
    expect(refusal.evalue).to.match(/ends with it: %remote_cluster started it \(.*srun/);
    expect(refusal.traceback.join('\n')).to.include('%remote_cluster attach DIR');
    // The session shut the kernel down: its allocation ends with it.
    await waitFor(() => cluster!.run('squeue', ['-h']).trim() === '', 20_000, 'the allocation to end with the kernel');
  });

  it('keeps the allocation through Jupyter interrupts (SIGINT to the kernel’s process group, twice in a row)', async () => {
    const place =
      '%remote_cluster slurm --nodes 2 --agent-args "--bind tcp://127.0.0.1:* --advertise 127.0.0.1 --workers 1"';
    const steps = await session(jupyter!, work!.dir, [
      // spin() says so, then loops while awaiting, so its output leaves the worker: interrupts come once it runs.
      [
        { code: place },
        {
          code: "async function spin(): Promise<number> {\n  console.log('spinning')\n  for (;;) await new Promise((r) => setTimeout(r, 20))\n}",
        },
      ],
      { send: [{ code: '%remote --all spin()' }], interrupt_on_output: 'spinning', interrupt_after: [0.3, 0.6] },
      [{ code: '%remote --all process.env.SLURMD_NODENAME' }],
    ]);
    expect(messagesOf(steps[1]![0]!, 'error')[0]!.content.ename).to.equal('KeyboardInterrupt');
    const rows = joined(messagesOf(steps[2]![0]!, 'execute_result')[0]!.content.data['text/plain'])
      .split('\n')
      .slice(1);
    expect(rows.map((r) => r.split(/ {2,}/)[2])).to.deep.equal(['node1', 'node2']);
    await waitFor(() => cluster!.run('squeue', ['-h']).trim() === '', 20_000, 'the allocation to end with the kernel');
  });
});
