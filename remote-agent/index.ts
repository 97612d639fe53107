// `tslab-remote/agent`: the agent embedded in a program of one's own (a service that manages its GPU host, a test).
// It needs no tslab. `remote-agent serve` is this plus flags, logging and signal handling.
//
//   const { startAgent } = require('tslab-remote/agent');
//   const agent = await startAgent({ bind: 'tcp://127.0.0.1:5555', workdir: '/var/cache/agent', workers: 2, nodePaths: [] });
//   ...
//   await agent.stop();

import { Agent, AgentOptions } from './server';
import { isLoopback } from './loopback';

export { Agent, DEFAULT_AGENT_LIMITS, DEFAULT_CLIENT_TIMEOUT_MS, DEFAULT_RESULT_TTL_MS } from './server';
export type { AgentCurve, AgentOptions } from './server';
export { writeKeyPair, readKeyPair, readKeyFile } from '../common/key-files';
export type { KeyPair } from '../common/key-files';

export interface StartAgentOptions extends AgentOptions {
  /** Serve a non-loopback endpoint without keys: anyone who can reach it can run code on this host. */
  insecure?: boolean;
}

/** Starts an agent, refusing (as `serve` does) a non-loopback endpoint without CURVE keys unless `insecure`. */
export async function startAgent(options: StartAgentOptions): Promise<Agent> {
  const { insecure, ...agentOptions } = options;
  if (!agentOptions.curve && !insecure && !isLoopback(agentOptions.bind)) {
    throw new Error(
      `refusing to serve ${agentOptions.bind} without keys: anyone who can reach it could run code here. ` +
        'Pass curve (a key pair and the allowed client keys), bind to loopback, or set insecure: true on a network you trust.',
    );
  }
  return Agent.start(agentOptions);
}
