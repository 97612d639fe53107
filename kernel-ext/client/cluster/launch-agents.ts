// launchAgents: a pool from agents that run already (endpoints) or that a launcher starts (Slurm, SSH, the endpoint
// files of a batch job). The pool owns what a launcher started and stops it when it closes.

import { AgentPool, PoolOptions } from './pool';
import type { AgentEndpoint, LaunchedAgents, SessionCurve } from './types';

export type LaunchSpec = { endpoints: AgentEndpoint[]; clientCurve?: SessionCurve };

export interface LaunchOptions extends Pick<PoolOptions, 'connect'> {
  signal?: AbortSignal;
}

export async function launchAgents(spec: LaunchSpec, options: LaunchOptions = {}): Promise<AgentPool> {
  if ('endpoints' in spec) return AgentPool.connect(spec.endpoints, { clientCurve: spec.clientCurve, connect: options.connect });
  throw new Error(`launchAgents: unknown launch spec ${JSON.stringify(Object.keys(spec))}`);
}

/** A pool over launched agents; if connecting fails, the agents are stopped before the error is thrown. */
export async function poolOf(launched: LaunchedAgents, options: LaunchOptions = {}): Promise<AgentPool> {
  try {
    return await AgentPool.connect(launched.agents, { clientCurve: launched.clientCurve, connect: options.connect, launched });
  } catch (error) {
    await launched.stop();
    throw error;
  }
}
