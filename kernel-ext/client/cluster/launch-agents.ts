// launchAgents: a pool from agents that run already (endpoints) or that a launcher starts (Slurm, SSH, the endpoint
// files of a batch job). The pool owns what a launcher started and stops it when it closes.

import { BIN } from '../../../common/package-info';
import { readEndpointDir } from './launchers/endpoint-dir';
import { launchSlurm, SlurmOptions } from './launchers/slurm';
import { launchSsh, SshOptions } from './launchers/ssh';
import { AgentPool, PoolOptions } from './pool';
import type { AgentEndpoint, LaunchedAgents, SessionCurve } from './types';

export type LaunchSpec =
  | { endpoints: AgentEndpoint[]; clientCurve?: SessionCurve }
  | { slurm: SlurmOptions }
  | { ssh: SshOptions }
  /** Agents that a batch job started with `serve --endpoint-file DIR`; they admit the key pair given here. */
  | { endpointDir: string; clientCurve?: SessionCurve };

export interface LaunchOptions extends Pick<PoolOptions, 'connect'> {
  signal?: AbortSignal;
}

export async function launchAgents(spec: LaunchSpec, options: LaunchOptions = {}): Promise<AgentPool> {
  if ('endpoints' in spec)
    return AgentPool.connect(spec.endpoints, { clientCurve: spec.clientCurve, connect: options.connect });
  if ('endpointDir' in spec)
    return AgentPool.connect(readEndpointDir(spec.endpointDir), {
      clientCurve: spec.clientCurve,
      connect: options.connect,
    });
  if ('slurm' in spec) return poolOf(await launchSlurm(spec.slurm, BIN.remoteAgent, options.signal), options);
  if ('ssh' in spec) return poolOf(await launchSsh(spec.ssh, options.signal), options);
  throw new Error(`launchAgents: unknown launch spec ${JSON.stringify(Object.keys(spec))}`);
}

/** A pool over launched agents; if connecting fails, the agents are stopped before the error is thrown. */
export async function poolOf(launched: LaunchedAgents, options: LaunchOptions = {}): Promise<AgentPool> {
  try {
    return await AgentPool.connect(launched.agents, {
      clientCurve: launched.clientCurve,
      connect: options.connect,
      launched,
    });
  } catch (error) {
    await launched.stop();
    throw error;
  }
}
