// The Slurm launcher against a real three-node Slurm cluster started on this host (munged, slurmctld, three
// slurmd): one agent per node through srun, with a session key pair; a map over them that survives a node put
// DOWN mid-map (Slurm kills that node's agent: every result still arrives once, in order); the allocation freed on
// close; a refused allocation and a missing srun said plainly, with the command.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as tmp from 'tmp-promise';

import { launchAgents } from '../../../../kernel-ext/client/cluster/launch-agents';
import { AgentPool } from '../../../../kernel-ext/client/cluster/pool';
import { rejectionOf } from '../../../support/rejection';
import { waitFor } from '../../../support/agent-process';
import { SlurmCluster, slurmMissing, startSlurmCluster } from '../../../support/slurm-cluster';

describe('kernel-ext cluster: agents launched by Slurm', function () {
  this.timeout(90_000);
  let cluster: SlurmCluster;
  let workdirs: string;

  before(async function () {
    const missing = slurmMissing();
    if (missing) {
      if (process.env.CI === 'true') throw new Error(`the Slurm launcher tests need Slurm: ${missing}`);
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    cluster = await startSlurmCluster(3);
    workdirs = (await tmp.dir({ unsafeCleanup: true, prefix: 'slurm-agents-' })).path;
  });

  after(async () => {
    await cluster?.stop();
  });

  const launch = (nodes: number, more: object = {}): Promise<AgentPool> =>
    launchAgents({
      slurm: {
        nodes,
        env: cluster.env,
        workdirBase: workdirs,
        // Every node of the test cluster is this host: agents listen on loopback only, on ports of their own.
        agentArgs: ['--bind', 'tcp://127.0.0.1:*', '--advertise', '127.0.0.1', '--workers', '2'],
        startTimeoutMs: 60_000,
        ...more,
      },
    });

  it('starts one agent per node and maps over them; a node put DOWN mid-map loses nothing', async () => {
    const pool = await launch(3);
    try {
      expect(pool.agents().map((a) => [a.name, a.workers, a.state])).to.deep.equal([
        ['node1', 2, 'up'],
        ['node2', 2, 'up'],
        ['node3', 2, 'up'],
      ]);
      expect(cluster.run('squeue', ['-h', '-o', '%D %T'])).to.match(/^3 RUNNING$/m);
      const items = Array.from({ length: 24 }, (_, i) => i);
      const run = pool.map(async (item: number) => {
        await new Promise((resolve) => setTimeout(resolve, 250));
        return item * 7;
      }, items);
      const seen: number[] = [];
      let downed = false;
      for await (const result of run) {
        seen.push(result.index);
        if (!downed && result.agent === 'node2') {
          downed = true;
          cluster.run('scontrol', ['update', 'NodeName=node2', 'State=DOWN', 'Reason=tslab-remote-test']);
        }
      }
      expect(downed).to.equal(true);
      expect([...seen].sort((a, b) => a - b)).to.deep.equal(items);
      expect(await run).to.deep.equal(items.map((i) => i * 7));
      expect(pool.agents().find((a) => a.name === 'node2')!.state).to.equal('lost');
    } finally {
      await pool.close();
      try {
        cluster.run('scontrol', ['update', 'NodeName=node2', 'State=RESUME']);
      } catch {
        // node2 was not DOWN (the map never reached it): nothing to resume
      }
    }
    await waitFor(() => cluster.run('squeue', ['-h']).trim() === '', 20_000, 'the allocation to end with the pool');
  });

  it('frees the allocation when the process that launched it exits without closing the pool', async () => {
    const script = `
      const { launchAgents } = require(${JSON.stringify(require.resolve('../../../../kernel-ext/client/cluster/launch-agents'))});
      launchAgents({ slurm: { nodes: 2, env: process.env, workdirBase: ${JSON.stringify(workdirs)},
        agentArgs: ['--bind', 'tcp://127.0.0.1:*', '--advertise', '127.0.0.1'] } })
        .then((pool) => { console.log(pool.agents().length); process.exit(0); }, (e) => { console.error(e); process.exit(1); });`;
    const launched = spawnSync(process.execPath, ['-e', script], {
      env: cluster.env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(launched.stdout.trim(), launched.stderr).to.equal('2');
    await waitFor(() => cluster.run('squeue', ['-h']).trim() === '', 20_000, 'the allocation to end with its launcher');
  });

  it('says so, with the command, when the allocation is refused', async () => {
    const error = await rejectionOf(launch(9), Error);
    expect(error.message).to.contain('could not start agents');
    expect(error.message).to.match(/the command: srun --nodes=9 /);
    expect(error.message).to.match(/its stderr:\n.*Unable to allocate resources/);
    expect(cluster.run('squeue', ['-h']).trim()).to.equal('');
  });

  it('says so when there is no srun', async () => {
    const error = await rejectionOf(launch(1, { srun: 'srun-not-installed' }), Error);
    expect(error.message).to.match(/could not start agents: spawn srun-not-installed ENOENT/);
  });
});
