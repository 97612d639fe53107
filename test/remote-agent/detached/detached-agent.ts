// The detached job tests' agent: one per test in a workdir of its own (so a restart keeps its jobs), the clients the
// test opened closed after it, and what the tests ask of a job.

import * as tmp from 'tmp-promise';

import { AgentClient, connect } from '../../../kernel-ext/client/agent-client';
import type { ConnectOptions } from '../../../kernel-ext/client/client-options';
import type { DetachedJobInfo } from '../../../protocol/job-messages';
import { AgentProcess, startAgent, waitFor } from '../../support/agent-process';

export interface DetachedAgent {
  readonly workdir: string;
  /** The agent the test started last. */
  readonly agent: AgentProcess | undefined;
  /** Starts an agent (one worker) on the test's workdir; a second start after a stop is a restart. */
  start(args?: string[]): Promise<AgentProcess>;
  /** A client of the current agent, closed after the test. */
  client(options?: ConnectOptions): Promise<AgentClient>;
  /** Closes the clients opened so far (before a restart). */
  closeClients(): Promise<void>;
}

/** For a describe block: a DetachedAgent per test, stopped (if still running) after it. */
export function useDetachedAgent(): DetachedAgent {
  const clients: AgentClient[] = [];
  const state = { workdir: '', agent: undefined as AgentProcess | undefined };
  beforeEach(async () => {
    state.workdir = (await tmp.dir({ unsafeCleanup: true, prefix: 'detached-' })).path;
  });
  const closeClients = async (): Promise<void> => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  };
  afterEach(async () => {
    await closeClients();
    const agent = state.agent;
    if (agent && agent.process.exitCode === null && agent.process.signalCode === null) await agent.stop();
    state.agent = undefined;
  });
  return {
    get workdir() {
      return state.workdir;
    },
    get agent() {
      return state.agent;
    },
    start: async (args = []) => {
      state.agent = await startAgent({ workdir: state.workdir, args: ['--workers', '1', ...args] });
      return state.agent;
    },
    client: async (options) => {
      const c = await connect(state.agent!.endpoint, options);
      clients.push(c);
      return c;
    },
    closeClients,
  };
}

export async function jobOf(client: AgentClient, id: string): Promise<DetachedJobInfo | undefined> {
  return (await client.detachedJobs()).find((job) => job.id === id);
}

export async function untilState(
  client: AgentClient,
  id: string,
  state: DetachedJobInfo['state'],
  timeoutMs = 15_000,
): Promise<DetachedJobInfo> {
  await waitFor(async () => (await jobOf(client, id))?.state === state, timeoutMs, `job ${id} ${state}`);
  return (await jobOf(client, id))!;
}

/** Prints `lines` numbered lines, one every `everyMs`, then returns their count times ten. */
export function counter(lines: number, everyMs: number): Promise<number> {
  return new Promise((resolve) => {
    let printed = 0;
    const timer = setInterval(() => {
      console.log(`line ${++printed}`);
      if (printed === lines) {
        clearInterval(timer);
        resolve(printed * 10);
      }
    }, everyMs);
  });
}
