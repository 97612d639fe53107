// A real three-node Slurm cluster on this one host, for launcher tests and benchmarks: Debian's munged, slurmctld
// and one slurmd per node (Debian builds Slurm with MULTIPLE_SLURMD), each on its own free port, every file in a
// temp directory, run in the foreground by hand (no systemd) and stopped by the test. Commands reach it through
// the environment it returns (SLURM_CONF).

import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const DAEMONS = { munged: '/usr/sbin/munged', slurmctld: '/usr/sbin/slurmctld', slurmd: '/usr/sbin/slurmd' };

export interface SlurmCluster {
  /** node1..nodeN */
  nodes: string[];
  /** This process's environment plus SLURM_CONF: pass it to srun, scontrol, sinfo. */
  env: NodeJS.ProcessEnv;
  dir: string;
  /** Runs a Slurm command against this cluster; throws with its stderr when it fails. */
  run(command: string, args: string[]): string;
  stop(): Promise<void>;
}

/** Why a Slurm cluster cannot run here, or null when it can. */
export function slurmMissing(): string | null {
  for (const [name, file] of Object.entries(DAEMONS))
    if (!fs.existsSync(file)) return `${name} is not installed (Debian packages slurm-wlm and munge)`;
  if (spawnSync('srun', ['--version']).error) return 'srun is not installed (Debian package slurm-client)';
  if (process.getuid?.() !== 0)
    return 'the test cluster runs slurmd as root (it starts jobs as other users): run the tests as root';
  return null;
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return server;
    }),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export async function startSlurmCluster(nodeCount = 3): Promise<SlurmCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slurm-'));
  const nodes = Array.from({ length: nodeCount }, (_, i) => `node${i + 1}`);
  const [ctldPort, ...nodePorts] = await freePorts(nodeCount + 1);
  const host = os.hostname();
  const children: ChildProcess[] = [];
  const file = (name: string): string => path.join(dir, name);
  fs.mkdirSync(file('state'));
  for (const node of nodes) fs.mkdirSync(file(`spool-${node}`));
  fs.writeFileSync(file('munge.key'), crypto.randomBytes(1024), { mode: 0o400 });
  fs.writeFileSync(
    file('slurm.conf'),
    [
      'ClusterName=tslabtest',
      `SlurmctldHost=${host}(127.0.0.1)`,
      `SlurmctldPort=${ctldPort}`,
      'AuthType=auth/munge',
      'CredType=cred/munge',
      `AuthInfo=socket=${file('munge.sock')}`,
      'SlurmUser=root',
      'SlurmdUser=root',
      `StateSaveLocation=${file('state')}`,
      `SlurmdSpoolDir=${dir}/spool-%n`,
      `SlurmctldPidFile=${file('slurmctld.pid')}`,
      `SlurmdPidFile=${dir}/slurmd-%n.pid`,
      `SlurmctldLogFile=${file('slurmctld.log')}`,
      `SlurmdLogFile=${dir}/slurmd-%n.log`,
      'ProctrackType=proctrack/linuxproc',
      'TaskPlugin=task/none',
      'MpiDefault=none',
      'SchedulerType=sched/builtin',
      'SelectType=select/cons_tres',
      'SelectTypeParameters=CR_CPU',
      'ReturnToService=2',
      // An allocation no node set can satisfy is refused at once, as most sites configure it, not queued forever.
      'EnforcePartLimits=ALL',
      'SlurmdParameters=config_overrides',
      'JobCompType=jobcomp/none',
      'AccountingStorageType=accounting_storage/none',
      'MessageTimeout=5',
      'SlurmdTimeout=10',
      'KillWait=2',
      'InactiveLimit=0',
      ...nodes.map(
        (node, i) =>
          `NodeName=${node} NodeHostname=${host} NodeAddr=127.0.0.1 Port=${nodePorts[i]} CPUs=2 RealMemory=1000 State=UNKNOWN`,
      ),
      `PartitionName=debug Nodes=${nodes.join(',')} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES`,
      '',
    ].join('\n'),
  );
  const env = { ...process.env, SLURM_CONF: file('slurm.conf') };
  const start = (command: string, args: string[], log: string): void => {
    const out = fs.openSync(file(log), 'a');
    const child = spawn(command, args, { env, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    children.push(child);
  };
  const cluster: SlurmCluster = {
    nodes,
    env,
    dir,
    run(command, args) {
      const done = spawnSync(command, args, { env, encoding: 'utf8', timeout: 30_000 });
      if (done.status !== 0)
        throw new Error(`${command} ${args.join(' ')} failed: ${done.stderr || done.error?.message}`);
      return done.stdout;
    },
    async stop() {
      await Promise.all(
        children.reverse().map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('close', () => resolve());
              child.kill('SIGTERM');
              setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
            }),
        ),
      );
      killStragglers(dir);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    start(
      DAEMONS.munged,
      [
        '-F',
        '-f',
        `--key-file=${file('munge.key')}`,
        `--socket=${file('munge.sock')}`,
        `--pid-file=${file('munged.pid')}`,
        `--seed-file=${file('munged.seed')}`,
        `--log-file=${file('munged.log')}`,
      ],
      'munged.out',
    );
    await waitUntil(() => fs.existsSync(file('munge.sock')), 'munged to listen', file('munged.out'));
    start(DAEMONS.slurmctld, ['-D', '-i', '-f', file('slurm.conf')], 'slurmctld.out');
    for (const node of nodes) start(DAEMONS.slurmd, ['-D', '-N', node, '-f', file('slurm.conf')], `slurmd-${node}.out`);
    await waitUntil(
      () => {
        const states = spawnSync('sinfo', ['-h', '-N', '-o', '%N %t'], { env, encoding: 'utf8' }).stdout ?? '';
        return nodes.every((node) => new RegExp(`^${node} (idle|mix|alloc)`, 'm').test(states));
      },
      'every node to be idle',
      file('slurmctld.log'),
    );
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

async function waitUntil(ready: () => boolean, what: string, log: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) {
      const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-2_000) : '(no log)';
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; ${log}:\n${tail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Step daemons (slurmstepd) outlive a stopped slurmd, re-parented to init; they are ours when they hold a file in
 * the cluster's directory (their node's log). Killed, so a test leaves no process behind.
 */
function killStragglers(dir: string): void {
  for (const pid of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let ours = false;
    try {
      ours = fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(dir);
        } catch {
          return false;
        }
      });
    } catch {
      continue; // gone, or not ours to read
    }
    if (ours && Number(pid) !== process.pid) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
