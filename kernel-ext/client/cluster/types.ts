/** One agent a pool can connect to. */
export interface AgentEndpoint {
  name: string; // unique in the pool, e.g. the host name, or host-2 for a second agent on one host
  endpoint: string; // tcp://host:port
  host?: string; // for display
  serverKey?: string; // the agent's CURVE public key (Z85) when it serves with keys
}

/** Agents started by a launcher; stop() ends them (idempotent) and frees the allocation. */
export interface LaunchedAgents {
  agents: AgentEndpoint[];
  /** The session's client key pair (Z85) when the agents serve with keys. */
  clientCurve?: { publicKey: string; secretKey: string };
  /** Resolves when the launcher's process (srun/ssh) ends: the agents are gone. */
  ended: Promise<void>;
  stop(): Promise<void>;
  /** The command line that was run, for error messages and the pool listing. */
  command: string;
}
