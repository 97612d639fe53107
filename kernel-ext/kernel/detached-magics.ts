// Detached jobs in the notebook: `%remote --detach` starts one (remote.ts calls startDetached), `%remote_jobs` lists
// this key's jobs on the current agent and the pool's, `%remote_attach` replays a job's output, follows it and shows
// its result (an interrupt stops watching, not the job), `%remote_cancel` cancels it. A job lives on its agent, so it
// outlives the kernel; a private agent does not, and is refused.

import type { CallOptions } from '../client/client-options';
import type { DetachedJobInfo } from '../../protocol/job-messages';
import { RemoteError } from '../../protocol/errors';
import type { Agent } from './agents';
import { cellFailure } from './cell-errors';
import { showIn } from './display-relay';
import { CellFailure, CellIO } from './io';
import { CellInterrupt, keyboardInterrupt } from './interrupt';
import type { JobsMagic } from './jobs-magic';
import { ElapsedDisplay } from './live-display';
import { elapsed, jobTable } from '../client/job-table';

/** What the magics need of the remote runner. */
export interface DetachedHost {
  /** The agents a job may be on: --agent's, else the current one and the pool's. */
  jobAgents(spec: string | undefined, io: CellIO, cell: CellInterrupt): Promise<Agent[]>;
  root(): Promise<string | null>;
}

/**
 * A private agent ends with the kernel, and so do the agents `%remote_cluster slurm`/`ssh` started (`launchedBy`: the
 * command): their jobs would end with it. Says what to do instead, before anything is sent.
 */
export function refuseEphemeral(agent: Agent, launchedBy?: string): void {
  if (agent.private) {
    throw new CellFailure({
      ename: 'UsageError',
      evalue: 'a detached job must outlive this kernel, and the private agent ends with it',
      traceback: [
        'UsageError: a detached job must outlive this kernel, and the private agent ends with it: start an agent that',
        'stays, `npx remote-agent serve` in a terminal (or under systemd, tmux, Slurm), then `%remote_agent tcp://127.0.0.1:5555`',
        '(or set TSLAB_REMOTE_AGENT for the kernel) and run this cell again.',
      ],
    });
  }
  if (launchedBy !== undefined) {
    const evalue = `a detached job must outlive this kernel, and ${agent.name} ends with it: %remote_cluster started it (${launchedBy})`;
    throw new CellFailure({
      ename: 'UsageError',
      evalue,
      traceback: [
        `UsageError: ${evalue}.`,
        'Start agents that stay in a batch job of your own (`remote-agent serve --endpoint-file DIR` under sbatch, or',
        'in tmux on the host), add them with `%remote_cluster attach DIR` or `%remote_agent add NAME ENDPOINT`, and run',
        'this cell again with --on NAME.',
      ],
    });
  }
}

/** `%remote --detach`: sends the call as a detached job and says how to follow it. */
export async function startDetached(
  agent: Agent,
  entry: () => unknown,
  options: CallOptions,
  name: string | undefined,
  io: CellIO,
  cell: CellInterrupt,
): Promise<void> {
  cell.consequence = 'the detached job may have started anyway: %remote_jobs lists it';
  const job = await cell.during(
    `starting the detached job on ${agent.name}`,
    agent.client.detach(entry, [], { ...options, signal: undefined, name }),
  );
  const ref = job.name;
  io.stream(
    'stdout',
    `detached job ${job.id}${job.name !== job.id ? ` (${job.name})` : ''} ${job.state} on ${agent.name}. It runs on if this notebook closes or ` +
      `its kernel restarts.\n  %remote_attach ${ref} [VAR]  follows it and takes its result\n  %remote_jobs  lists your jobs;  %remote_cancel ${ref}  stops it\n`,
  );
}

export async function runJobsMagic(
  host: DetachedHost,
  magic: JobsMagic,
  io: CellIO,
  cell: CellInterrupt,
): Promise<unknown> {
  cell.consequence =
    magic.kind === 'cancel' ? 'the cancel may or may not have reached the agent: %remote_jobs tells' : 'the jobs go on';
  try {
    const agents = await host.jobAgents(magic.agent, io, cell);
    if (magic.kind === 'jobs') return listJobs(agents, io, cell);
    const [agent, job] = await findJob(agents, magic.job, cell);
    if (magic.kind === 'cancel') {
      const after = await cell.during(`cancelling job ${job.id}`, agent.client.cancelDetached(job.id));
      io.stream(
        'stdout',
        after.endedAt === null
          ? `cancelling job ${job.id} (${job.name}) on ${agent.name}\n`
          : `job ${job.id} (${job.name}) had already ended: ${after.state}\n`,
      );
      return undefined;
    }
    return await follow(host, agent, job, io, cell);
  } catch (error) {
    throw cellFailure(error, { cell });
  }
}

async function listJobs(agents: Agent[], io: CellIO, cell: CellInterrupt): Promise<void> {
  const jobs: { agent: string; job: DetachedJobInfo }[] = [];
  for (const agent of agents) {
    for (const job of await cell.during(`listing the jobs on ${agent.name}`, agent.client.detachedJobs()))
      jobs.push({ agent: agent.name, job });
  }
  if (jobs.length === 0)
    io.stream(
      'stdout',
      `no detached jobs of yours on ${agents.map((a) => a.name).join(', ')}; start one with %remote --detach EXPR\n`,
    );
  else io.stream('stdout', jobTable(jobs));
}

/** The job on the first agent that has it (by id, or the newest of a name). */
async function findJob(agents: Agent[], ref: string, cell: CellInterrupt): Promise<[Agent, DetachedJobInfo]> {
  let found: [Agent, DetachedJobInfo] | undefined;
  for (const agent of agents) {
    for (const job of await cell.during(`looking for job ${ref} on ${agent.name}`, agent.client.detachedJobs())) {
      if (job.id !== ref && job.name !== ref) continue;
      if (!found || job.id === ref || job.createdAt > found[1].createdAt) found = [agent, job];
    }
  }
  if (found) return found;
  throw new CellFailure({
    ename: 'UsageError',
    evalue: `no detached job ${ref} of yours on ${agents.map((a) => a.name).join(', ')}`,
    traceback: [
      `UsageError: no detached job ${ref} of yours on ${agents.map((a) => a.name).join(', ')}: %remote_jobs lists them (jobs are kept 7 days after they end)`,
    ],
  });
}

/** Replays and follows the job's output; resolves with its result. An interrupt stops watching only. */
async function follow(
  host: DetachedHost,
  agent: Agent,
  job: DetachedJobInfo,
  io: CellIO,
  cell: CellInterrupt,
): Promise<unknown> {
  const ended = job.endedAt !== null;
  io.stream(
    'stdout',
    `job ${job.id} (${job.name}) on ${agent.name}: ${job.state}${ended ? '' : `, ${elapsed(job)} so far`}; its output:\n`,
  );
  const elapsedDisplay = ended ? undefined : new ElapsedDisplay(io, agent.name, job.startedAt ?? job.createdAt);
  const codeRoot = (await host.root()) ?? undefined;
  try {
    return await agent.client.attach(job.id, {
      codeRoot,
      signal: cell.signal,
      onOutput: (stream, text) => io.stream(stream, text),
      onDisplay: showIn(io),
    });
  } catch (error) {
    if (error instanceof RemoteError && error.code === 'CANCELLED' && cell.signal.aborted) {
      throw keyboardInterrupt(
        `stopped watching job ${job.id} (${job.name}); it goes on on ${agent.name}: %remote_attach ${job.name} to follow it again`,
      );
    }
    throw error;
  } finally {
    elapsedDisplay?.stop();
  }
}
