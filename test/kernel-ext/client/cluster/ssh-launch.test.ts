// The SSH launcher against a real sshd on loopback addresses 127.0.0.2 and 127.0.0.3: agents started over ssh
// with a session key pair (they admit this client only), a pool over them, and their end with the pool. A host
// that refuses us says so with the command, and stops the agents that did start.

import { expect } from 'chai';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as tmp from 'tmp-promise';

import { BIN } from '../../../../common/package-info';
import { launchAgents } from '../../../../kernel-ext/client/cluster/launch-agents';
import { connect } from '../../../../kernel-ext/client/agent-client';
import { rejectionOf } from '../../../support/rejection';
import { isAlive, waitFor } from '../../../support/agent-process';
import { Sshd, sshdMissing, startSshd } from '../../../support/sshd';

const HOSTS = ['127.0.0.2', '127.0.0.3'];

describe('kernel-ext cluster: agents launched over ssh', function () {
  this.timeout(60_000);
  let sshd: Sshd;
  let workdirs: string;

  before(async function () {
    const missing = sshdMissing();
    if (missing) {
      if (process.env.CI === 'true') throw new Error(`the ssh launcher tests need sshd: ${missing}`);
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    sshd = await startSshd(HOSTS);
    workdirs = (await tmp.dir({ unsafeCleanup: true, prefix: 'ssh-agents-' })).path;
  });

  after(async () => {
    await sshd?.stop();
  });

  it('starts one agent per host, admits only the session key, maps over them, and stops them with the pool', async () => {
    const pool = await launchAgents({
      ssh: {
        hosts: HOSTS,
        bindToHost: true,
        sshArgs: sshd.sshArgs,
        agentCommand: `${process.execPath} ${BIN.remoteAgent}`,
        workdirBase: workdirs,
      },
    });
    let pids: number[] = [];
    try {
      const listing = pool.agents();
      expect(listing.map((a) => [a.name, a.host, a.state])).to.deep.equal([
        ['127.0.0.2', '127.0.0.2', 'up'],
        ['127.0.0.3', '127.0.0.3', 'up'],
      ]);
      const results = await pool.map((n: number) => ({ n: n * n, pid: process.ppid }), [1, 2, 3, 4, 5, 6]);
      expect(results.map((r) => r.n)).to.deep.equal([1, 4, 9, 16, 25, 36]);
      pids = [...new Set(results.map((r) => r.pid))];
      expect(pids, 'one agent process per host').to.have.length(2);
      // A client without the session key is refused.
      const stranger = await rejectionOf(connect(listing[0]!.endpoint, { connectTimeoutMs: 2_000 }), Error);
      expect(stranger.message).to.match(/handshake|no agent answered/);
    } finally {
      await pool.close();
    }
    await waitFor(() => pids.every((pid) => !isAlive(pid)), 10_000, 'the agents to end with their ssh');
  });

  it('binds each agent to its host with bindToHost (user@host too), each in a workdir of its own under workdirBase', async () => {
    const pool = await launchAgents({
      ssh: {
        hosts: [`${os.userInfo().username}@${HOSTS[0]}`, HOSTS[1]!],
        bindToHost: true,
        sshArgs: sshd.sshArgs,
        agentCommand: `${process.execPath} ${BIN.remoteAgent}`,
        workdirBase: workdirs,
      },
    });
    try {
      expect(pool.agents().map((a) => a.endpoint.replace(/:\d+$/, ''))).to.deep.equal([
        'tcp://127.0.0.2',
        'tcp://127.0.0.3',
      ]);
      expect((await pool.all(() => 7)).map((row) => row.value)).to.deep.equal([7, 7]);
      expect(HOSTS.map((host) => fs.existsSync(`${workdirs}/agent-${host}/agent.lock`))).to.deep.equal([true, true]);
    } finally {
      await pool.close();
    }
  });

  it('advertises the address an ssh config alias stands for, which the kernel can reach, under the alias as its name', async () => {
    const config = `${workdirs}/ssh_config`;
    fs.writeFileSync(config, `Host gpu-alias\n  HostName ${HOSTS[1]}\n`);
    const sshArgs = sshd.sshArgs.map((arg, i) => (sshd.sshArgs[i - 1] === '-F' ? config : arg));
    const pool = await launchAgents({
      ssh: {
        hosts: ['gpu-alias'],
        bindToHost: true,
        sshArgs,
        agentCommand: `${process.execPath} ${BIN.remoteAgent}`,
        workdirBase: workdirs,
      },
    });
    try {
      expect(pool.agents().map((a) => [a.name, a.endpoint.replace(/:\d+$/, ''), a.state])).to.deep.equal([
        ['gpu-alias', `tcp://${HOSTS[1]}`, 'up'],
      ]);
      expect((await pool.all(() => 'via alias')).map((row) => row.value)).to.deep.equal(['via alias']);
    } finally {
      await pool.close();
    }
  });

  it('says which host failed and why, with the command, and leaves no agent running', async () => {
    const base = `${workdirs}/failing-launch`;
    const error = await rejectionOf(
      launchAgents({
        ssh: {
          hosts: [HOSTS[0]!, '127.0.0.4'],
          bindToHost: true,
          sshArgs: [...sshd.sshArgs, '-o', 'ConnectTimeout=5'],
          agentCommand: `${process.execPath} ${BIN.remoteAgent}`,
          startTimeoutMs: 20_000,
          workdirBase: base,
        },
      }),
      Error,
    );
    expect(error.message).to.contain('ssh launch failed on 1 of 2 host(s)');
    expect(error.message).to.contain('127.0.0.4: could not start agents');
    expect(error.message).to.match(/the command: ssh .* 127\.0\.0\.4 /);
    expect(error.message).to.match(/Connection refused|its stderr/);
    const running = (): string => spawnSync('pgrep', ['-f', base], { encoding: 'utf8' }).stdout.trim();
    await waitFor(() => running() === '', 10_000, 'no agent of the failed launch to be left running');
  });
});
