// Slurm, batch: a user's own sbatch script starts one agent per node with `remote-agent serve --endpoint-file DIR
// --allow-key KEY` on a real three-node Slurm cluster started on this host; the kernel attaches what they wrote
// (launchAgents({ endpointDir })) with the session key pair and maps over them. Cancelling the job ends the agents,
// which remove their files. Each node's agent binds its own loopback address (127.0.0.2..4), as on distinct hosts.

import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { PACKAGE_ROOT } from '../../../../common/package-info';
import { launchAgents } from '../../../../kernel-ext/client/cluster/launch-agents';
import { sessionCurve } from '../../../../kernel-ext/client/cluster/launchers/session-keys';
import { waitFor } from '../../../support/agent-process';
import { SlurmCluster, slurmMissing, startSlurmCluster } from '../../../support/slurm-cluster';

const AGENT_BIN = path.join(PACKAGE_ROOT, 'bin', 'remote-agent.js');

describe('kernel-ext cluster: agents of an sbatch job attached by their endpoint files', function () {
  this.timeout(90_000);
  let cluster: SlurmCluster;
  let dir: string;

  before(async function () {
    const missing = slurmMissing();
    if (missing) {
      if (process.env.CI === 'true') throw new Error(`the sbatch attach test needs Slurm: ${missing}`);
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    cluster = await startSlurmCluster(3);
    dir = (await tmp.dir({ unsafeCleanup: true, prefix: 'sbatch-attach-' })).path;
  });

  after(async () => {
    await cluster?.stop();
  });

  const jsonFiles = (endpoints: string): string[] =>
    fs.existsSync(endpoints)
      ? fs
          .readdirSync(endpoints)
          .filter((n) => n.endsWith('.json'))
          .sort()
      : [];

  it('attaches the three agents a batch job started, maps over them, and their files go when the job is cancelled', async () => {
    const curve = sessionCurve();
    const endpoints = path.join(dir, 'endpoints');
    const script = path.join(dir, 'agents.sbatch');
    // What a user writes: one task per node; node K's agent listens on 127.0.0.(K+1), standing in for its host.
    fs.writeFileSync(
      script,
      [
        '#!/bin/bash',
        '#SBATCH --job-name=tslab-agents',
        '#SBATCH --nodes=3',
        '#SBATCH --ntasks-per-node=1',
        `#SBATCH --output=${path.join(dir, 'job.out')}`,
        // Z85 has no single quote, but has $ & < > ( ): quoted once here, passed on in the environment.
        `export KERNEL_KEY='${curve.publicKey}'`,
        `srun bash -c 'addr=127.0.0.$(( \${SLURMD_NODENAME#node} + 1 )); exec ${process.execPath} ${AGENT_BIN} serve \\`,
        `  --bind "tcp://$addr:*" --advertise $addr --workers 2 --allow-key="$KERNEL_KEY" \\`,
        `  --endpoint-file ${endpoints} --workdir ${dir}/agent-$SLURMD_NODENAME'`,
        '',
      ].join('\n'),
    );
    const jobId = /Submitted batch job (\d+)/.exec(cluster.run('sbatch', [script]))?.[1];
    expect(jobId, 'sbatch printed a job id').to.be.a('string');
    try {
      await waitFor(() => jsonFiles(endpoints).length === 3, 60_000, `three endpoint files in ${endpoints}`).catch(
        (error: Error) => {
          const out = path.join(dir, 'job.out');
          throw new Error(
            `${error.message}; the job's output:\n${fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '(none)'}`,
          );
        },
      );
      expect(jsonFiles(endpoints)).to.deep.equal(['127.0.0.2.json', '127.0.0.3.json', '127.0.0.4.json']);
      const record = JSON.parse(fs.readFileSync(path.join(endpoints, '127.0.0.3.json'), 'utf8')) as Record<
        string,
        unknown
      >;
      expect(record).to.include({ name: '127.0.0.3', host: '127.0.0.3', workers: 2 });
      expect(record.endpoint).to.match(/^tcp:\/\/127\.0\.0\.3:\d+$/);
      expect(record.serverKey).to.be.a('string').with.length(40);
      expect(record.gpus).to.deep.equal([]);

      const pool = await launchAgents({ endpointDir: endpoints, clientCurve: curve });
      try {
        expect(pool.agents().map((a) => [a.name, a.workers, a.state])).to.deep.equal([
          ['127.0.0.2', 2, 'up'],
          ['127.0.0.3', 2, 'up'],
          ['127.0.0.4', 2, 'up'],
        ]);
        const where = await pool.all(() => process.env.SLURMD_NODENAME);
        expect(where.map((r) => [r.agent, r.value])).to.deep.equal([
          ['127.0.0.2', 'node1'],
          ['127.0.0.3', 'node2'],
          ['127.0.0.4', 'node3'],
        ]);
        const items = Array.from({ length: 12 }, (_, i) => i);
        const run = pool.map(async (item: number) => {
          await new Promise((resolve) => setTimeout(resolve, 50));
          return `${item}@${process.env.SLURMD_NODENAME}`;
        }, items);
        const results = await run;
        expect(results.map((r) => Number(r.split('@')[0]))).to.deep.equal(items);
        expect(new Set(results.map((r) => r.split('@')[1])).size, 'items ran on every node').to.equal(3);
      } finally {
        await pool.close();
      }
    } finally {
      cluster.run('scancel', [jobId!]);
      await waitFor(() => cluster.run('squeue', ['-h']).trim() === '', 30_000, `job ${jobId} to leave the queue`);
    }
    // The agents removed their own files as they ended.
    await waitFor(() => jsonFiles(endpoints).length === 0, 10_000, `the endpoint files in ${endpoints} to be removed`);
  });

  it('says how to start agents when the directory has no endpoint file yet', async () => {
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    const error = await launchAgents({ endpointDir: empty }).then(
      () => null,
      (e: Error) => e,
    );
    expect(error?.message)
      .to.contain(`no agent has written to ${empty} yet`)
      .and.contain(`remote-agent serve --endpoint-file ${empty}`);
  });
});
