// Test helpers: real agent processes on free loopback ports (with the cancel grace shortened so tests stay fast),
// file trees in temp directories, and process checks.

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as tmp from 'tmp-promise';

import { AgentClient, connect } from '../../kernel-ext/client/agent-client';
import { LocalAgent, LocalAgentOptions, startLocalAgent } from '../../kernel-ext/client/local-agent';

export type AgentProcess = LocalAgent;

/**
 * An agent on a free loopback TCP port, not startLocalAgent's private unix socket: fault tests put a TCP proxy in
 * front of it (test/support/tcp-proxy.ts). options.args may bind elsewhere (a later --bind wins).
 */
export function startAgent(options: LocalAgentOptions = {}): Promise<AgentProcess> {
  return startLocalAgent({
    ...options,
    args: ['--bind', 'tcp://127.0.0.1:*', '--cancel-grace-ms', '500', ...(options.args ?? [])],
  });
}

/**
 * For a describe block: one agent (startAgent with `args`) and a client connected to it, started before the block's
 * tests and stopped after them. The fields are set once the block's `before` hook has run.
 */
export function agentWithClient(args = ['--workers', '1']): { agent: AgentProcess; client: AgentClient } {
  const suite = {} as { agent: AgentProcess; client: AgentClient };
  before(async () => {
    suite.agent = await startAgent({ args });
    suite.client = await connect(suite.agent.endpoint);
  });
  after(async () => {
    await suite.client?.close();
    await suite.agent?.stop();
  });
  return suite;
}

/** Writes a tree of files under a new temp directory and returns its path. */
export async function makeTree(files: Record<string, string>): Promise<string> {
  const root = (await tmp.dir({ unsafeCleanup: true, prefix: 'tree-' })).path;
  await writeTree(root, files);
  return root;
}

export async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [relative, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(root, relative)), { recursive: true });
    await fs.writeFile(path.join(root, relative), text);
  }
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Waits until `count` of the agent's workers run a job, as the agent's status reports: a call has left the queue. */
export function untilBusy(client: AgentClient, count = 1, timeoutMs = 10_000): Promise<void> {
  return waitFor(
    async () => (await client.status()).workers.filter((worker) => worker.state === 'busy').length >= count,
    timeoutMs,
    `${count} worker(s) running a job`,
  );
}
