// GPU hosts without a GPU: a fake nvidia-smi (test/fixtures/gpu) stands in for the real one, whose CSV output the
// agent parses for resource reports and for --gpus all; workers are pinned with CUDA_VISIBLE_DEVICES.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import { connect } from '../../kernel-ext/client/agent-client';
import { parseNvidiaSmi } from '../../remote-agent/resources';
import { startAgent } from '../support/agent-process';

const FIXTURES = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'gpu');
const FAKE_SMI = path.join(FIXTURES, 'nvidia-smi');
const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'remote-agent.js');

describe('remote-agent on GPU hosts (fake nvidia-smi)', function () {
  this.timeout(30_000);

  it("parses nvidia-smi's CSV, fields it cannot report included", () => {
    expect(parseNvidiaSmi('0, Tesla T4, 15360, 2, 0\n1, NVIDIA H100 PCIe, 81559, [N/A], [Not Supported]\n')).to.deep.equal([
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
      expect(status.resources.gpus.map((g) => g.name)).to.deep.equal(['NVIDIA A100-SXM4-80GB', 'NVIDIA A100-SXM4-80GB']);
      expect(status.resources.gpus[1]!.memoryUsedMb).to.equal(null);
      expect(status.resources.cpus).to.be.above(0);
      const seen = await Promise.all([0, 1].map((worker) => client.run({ source: '() => process.env.CUDA_VISIBLE_DEVICES', worker })));
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
    const result = spawnSync(process.execPath, [BIN, 'serve', '--bind', 'tcp://127.0.0.1:*', '--gpus', 'all', '--nvidia-smi', path.join(FIXTURES, 'nvidia-smi-no-driver')], { encoding: 'utf8' });
    expect(result.status).to.equal(2);
    expect(result.stderr).to.include("couldn't communicate with the NVIDIA driver").and.include('--workers N');
  });

  it('reports no GPUs, and no error, on a host without nvidia-smi', async () => {
    const agent = await startAgent({ args: ['--workers', '1', '--nvidia-smi', path.join(FIXTURES, 'absent-nvidia-smi')] });
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
});
