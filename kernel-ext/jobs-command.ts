// `tslab-remote jobs`: detached jobs from a terminal, with the same key as the notebook's kernel.
//   tslab-remote jobs [--agent ENDPOINT] [--key DIR]              list them
//   tslab-remote jobs [--agent ENDPOINT] [--key DIR] attach JOB   replay its output, follow it, print its result
//   tslab-remote jobs [--agent ENDPOINT] [--key DIR] cancel JOB   cancel it
// ENDPOINT defaults to TSLAB_REMOTE_AGENT, DIR to TSLAB_REMOTE_KEYS (kernel.key, kernel.pub and agent.pub).

import * as path from 'node:path';
import * as util from 'node:util';

import { readKeyFile, readKeyPair } from '../common/key-files';
import { parseFlags, UsageError } from '../common/cli';
import { RemoteError } from '../protocol/errors';
import { AgentClient, connect } from './client/agent-client';
import type { ClientCurve } from './client/client-options';
import { jobTable } from './client/job-table';

export const JOBS_USAGE = 'tslab-remote jobs [--agent ENDPOINT] [--key DIR] [attach JOB | cancel JOB]';

export async function jobsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags({
    args,
    options: { agent: { type: 'string' }, key: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const endpoint = values.agent ?? process.env.TSLAB_REMOTE_AGENT;
  if (!endpoint) throw new UsageError('jobs needs --agent ENDPOINT (or TSLAB_REMOTE_AGENT): the agent the jobs run on');
  const [action, job, ...extra] = positionals;
  if (action !== undefined && !['attach', 'cancel'].includes(action))
    throw new UsageError(`unknown jobs action ${action}: ${JOBS_USAGE}`);
  if (action !== undefined && (job === undefined || extra.length > 0))
    throw new UsageError(`jobs ${action} takes one job id or name: ${JOBS_USAGE}`);
  const keys = values.key ?? process.env.TSLAB_REMOTE_KEYS;
  let client: AgentClient | undefined;
  try {
    client = await connect(endpoint, {
      clientName: `tslab-remote jobs pid ${process.pid}`,
      ...(keys ? { curve: curveFrom(path.resolve(keys)) } : {}),
    });
    if (action === 'attach') return await attach(client, job!);
    if (action === 'cancel') {
      const after = await client.cancelDetached(job!);
      process.stdout.write(
        after.endedAt === null
          ? `cancelling job ${after.id} (${after.name})\n`
          : `job ${after.id} (${after.name}) had already ended: ${after.state}\n`,
      );
      return 0;
    }
    const jobs = await client.detachedJobs();
    process.stdout.write(
      jobs.length === 0
        ? `no detached jobs of yours on ${endpoint}\n`
        : jobTable(jobs.map((info) => ({ agent: endpoint, job: info }))),
    );
    return 0;
  } catch (error) {
    if (!(error instanceof RemoteError)) throw error;
    process.stderr.write(`tslab-remote: ${error.code}: ${error.message}\n`);
    return 1;
  } finally {
    await client?.close();
  }
}

/** Prints the job's output as it comes and its result; Ctrl-C stops watching (the job goes on). */
async function attach(client: AgentClient, job: string): Promise<number> {
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.once('SIGINT', onSigint);
  try {
    const value = await client.attach(job, {
      codeRoot: process.cwd(),
      signal: stop.signal,
      onJob: (info) => process.stderr.write(`job ${info.id} (${info.name}): ${info.state}\n`),
      onOutput: (stream, text) => void (stream === 'stdout' ? process.stdout : process.stderr).write(text),
    });
    process.stdout.write(`${util.inspect(value, { depth: 6, colors: process.stdout.isTTY })}\n`);
    return 0;
  } catch (error) {
    if (error instanceof RemoteError && error.code === 'CANCELLED' && stop.signal.aborted) {
      process.stderr.write(`tslab-remote: ${error.message}\n`);
      return 130;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function curveFrom(dir: string): ClientCurve {
  return { serverKey: readKeyFile(path.join(dir, 'agent.pub')), ...readKeyPair(dir, 'kernel') };
}
