// GPU hosts without a GPU: a fake nvidia-smi (test/fixtures/gpu) stands in for the real one, whose CSV output the
// agent parses for resource reports and for --gpus all; workers are pinned with CUDA_VISIBLE_DEVICES.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { connect } from '../../kernel-ext/client/agent-client';
import { parseNvidiaSmi } from '../../remote-agent/resources';
import { startAgent } from '../support/agent-process';

const FIXTURES = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'gpu');
const FAKE_SMI = path.join(FIXTURES, 'nvidia-smi');
const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'remote-agent.js');

describe('remote-agent on GPU hosts (fake nvidia-smi)', function () {
  this.timeout(30_000);

  it("parses nvidia-smi's CSV, fields it cannot report included", () => {
    expect(
      parseNvidiaSmi('0, Tesla T4, 15360, 2, 0\n1, NVIDIA H100 PCIe, 81559, [N/A], [Not Supported]\n'),
    ).to.deep.equal([
      { index: 0, name: 'Tesla T4', memoryTotalMb: 15360, memoryUsedMb: 2, utilizationPercent: 0 },
      { index: 1, name: 'NVIDIA H100 PCIe', memoryTotalMb: 81559, memoryUsedMb: null, utilizationPercent: null },
    ]);
    expect(() => parseNvidiaSmi('garbage')).to.throw(/unexpected nvidia-smi line/);
  });

  it('--gpus all runs one worker per GPU, each pinned with CUDA_VISIBLE_DEVICES, and reports the GPUs', async () => {
    const agent = await startAgent({ args: ['--gpus', 'all', '--nvidia-smi', FAKE_SMI] });
    const client = await connect(agent.endpoint);
    try {
      const status = await client.status();
      expect(status.workers.map((w) => w.gpu)).to.deep.equal(['0', '1']);
      expect(status.resources.gpus.map((g) => g.name)).to.deep.equal([
        'NVIDIA A100-SXM4-80GB',
        'NVIDIA A100-SXM4-80GB',
      ]);
      expect(status.resources.gpus[1]!.memoryUsedMb).to.equal(null);
      expect(status.resources.cpus).to.be.above(0);
      const seen = await Promise.all(
        [0, 1].map((worker) => client.run({ source: '() => process.env.CUDA_VISIBLE_DEVICES', worker })),
      );
      expect(seen).to.deep.equal(['0', '1']);
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('--gpus 0+1 gives one worker both GPUs', async () => {
    const agent = await startAgent({ args: ['--gpus', '0+1', '--nvidia-smi', FAKE_SMI] });
    const client = await connect(agent.endpoint);
    try {
      expect(await client.run({ source: '() => process.env.CUDA_VISIBLE_DEVICES' })).to.equal('0,1');
      expect((await client.status()).workers).to.have.length(1);
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('refuses --gpus all when nvidia-smi cannot reach the driver, quoting it', () => {
    const result = spawnSync(
      process.execPath,
      [
        BIN,
        'serve',
        '--bind',
        'tcp://127.0.0.1:*',
        '--gpus',
        'all',
        '--nvidia-smi',
        path.join(FIXTURES, 'nvidia-smi-no-driver'),
      ],
      { encoding: 'utf8' },
    );
    expect(result.status).to.equal(2);
    expect(result.stderr).to.include("couldn't communicate with the NVIDIA driver").and.include('--workers N');
  });

  it('reports no GPUs, and no error, on a host without nvidia-smi', async () => {
    const agent = await startAgent({
      args: ['--workers', '1', '--nvidia-smi', path.join(FIXTURES, 'absent-nvidia-smi')],
    });
    const client = await connect(agent.endpoint);
    try {
      const { resources } = await client.status();
      expect(resources.gpus).to.deep.equal([]);
      expect(resources).not.to.have.property('gpuError');
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('shares one nvidia-smi run among a burst of status requests', async () => {
    // A slow nvidia-smi first on PATH that counts its runs.
    const bin = (await tmp.dir({ unsafeCleanup: true, prefix: 'smi-' })).path;
    const runs = path.join(bin, 'runs');
    await fs.writeFile(
      path.join(bin, 'nvidia-smi'),
      `#!/bin/sh\necho run >> '${runs}'\nsleep 0.3\nexec '${FAKE_SMI}' "$@"\n`,
      { mode: 0o755 },
    );
    const agent = await startAgent({
      args: ['--workers', '1'],
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
    });
    const client = await connect(agent.endpoint);
    try {
      const replies = await Promise.all(Array.from({ length: 100 }, () => client.status()));
      expect(replies.every((status) => status.resources.gpus.length === 2)).to.equal(true);
      const count = (await fs.readFile(runs, 'utf8')).split('\n').filter(Boolean).length;
      expect(count, 'nvidia-smi runs for 100 status requests').to.be.at.most(3);
    } finally {
      await client.close();
      await agent.stop();
    }
  });
});
