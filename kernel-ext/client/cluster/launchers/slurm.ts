// Agents placed by Slurm, interactively: one `srun` with one task per node, each running `remote-agent serve` bound
// to every address of its node and advertised under the node's host name, admitting only this session's key. The
// allocation lives as long as srun: stop() (SIGTERM to srun, which ends its tasks) frees it.

import type { LaunchedAgents } from '../types';
import { LauncherProcess, remotePath, shellWord } from './agent-process';
import { sessionCurve } from './session-keys';

export interface SlurmOptions {
  nodes: number;
  /** GPUs per node; the agents then run one worker per GPU (`--gpus all`). */
  gpusPerNode?: number;
  partition?: string;
  /** Slurm's time limit, e.g. `1:00:00`. */
  time?: string;
  /** More srun options (after the launcher's own). */
  srunArgs?: string[];
  /** How to run remote-agent on the nodes (default: this package's remote-agent, by the path of this node). */
  agentCommand?: string;
  /** More `serve` flags, after the launcher's own (a later --bind wins). */
  agentArgs?: string[];
  /** Where each agent keeps its snapshots: BASE/agent-NODENAME (default ~/.cache/tslab-remote). */
  workdirBase?: string;
  /** The srun program (default `srun`) and its environment (default this process's). */
  srun?: string;
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the allocation and every agent (default 5 minutes: a queue may be busy). */
  startTimeoutMs?: number;
}

export async function launchSlurm(
  options: SlurmOptions,
  agentBin: string,
  signal?: AbortSignal,
): Promise<LaunchedAgents> {
  if (!Number.isInteger(options.nodes) || options.nodes < 1)
    throw new Error(`slurm launch: --nodes must be a positive integer, got ${options.nodes}`);
  const curve = sessionCurve();
  const agent = options.agentCommand ?? `${shellWord(process.execPath)} ${shellWord(agentBin)}`;
  const base = options.workdirBase ? remotePath(options.workdirBase) : '"${XDG_CACHE_HOME:-$HOME/.cache}/tslab-remote"';
  // --exit-with-parent: srun gives every task its stdin, so when this process ends without stopping the pool (a
  // crash, a kernel restart), the agents see EOF and end, and so do the job and its allocation.
  const own = `serve --exit-with-parent --bind ${shellWord('tcp://0.0.0.0:*')} ${shellWord(`--allow-key=${curve.publicKey}`)} --advertise "$(hostname)" --workdir ${base}/"agent-$SLURMD_NODENAME"`;
  const more = [...(options.gpusPerNode ? ['--gpus', 'all'] : []), ...(options.agentArgs ?? [])]
    .map(shellWord)
    .join(' ');
  // Each task says which node it is on, then becomes the agent (exec: srun's signals reach it directly).
  const script = `echo "remote-agent node $SLURMD_NODENAME"; exec ${agent} ${own} ${more}`;
  const args = [
    `--nodes=${options.nodes}`,
    '--ntasks-per-node=1',
    '--label',
    '--unbuffered',
    '--kill-on-bad-exit=0',
    // A failed node ends its own agent, not the whole job: the pool moves that node's work to the others.
    '--no-kill',
    ...(options.gpusPerNode ? [`--gpus-per-node=${options.gpusPerNode}`] : []),
    ...(options.partition ? [`--partition=${options.partition}`] : []),
    ...(options.time ? [`--time=${options.time}`] : []),
    ...(options.srunArgs ?? []),
    'bash',
    '-c',
    script,
  ];
  const srun = LauncherProcess.spawn(options.srun ?? 'srun', args, options.env);
  const agents = await srun.waitForAgents({
    count: options.nodes,
    keys: true,
    name: (label, announced) => announced.node ?? `task${label}`,
    timeoutMs: options.startTimeoutMs ?? 300_000,
    signal,
  });
  return { agents, clientCurve: curve, ended: srun.ended, stop: () => srun.stop(), command: srun.command };
}
