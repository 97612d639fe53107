// The many-agents vocabulary shared by the pool, the launchers (Slurm, SSH, endpoint files) and the kernel.

/** One agent a pool can connect to. */
export interface AgentEndpoint {
  /** Unique in the pool: the host name, or host-2 for a second agent on one host. */
  name: string;
  /** tcp://host:port (or ipc:// on this machine). */
  endpoint: string;
  /** For display. */
  host?: string;
  /** The agent's CURVE public key (Z85) when it serves with keys. */
  serverKey?: string;
}

/** A client key pair (Z85) that agents started for a session admit. */
export interface SessionCurve {
  publicKey: string;
  secretKey: string;
}

/** Agents started by a launcher; stop() ends them (idempotent) and frees the allocation. */
export interface LaunchedAgents {
  agents: AgentEndpoint[];
  /** The session's client key pair when the agents serve with keys. */
  clientCurve?: SessionCurve;
  /** Resolves when the launcher's process (srun, ssh) ends: its agents are gone. */
  ended: Promise<void>;
  stop(): Promise<void>;
  /** The command line that was run, for error messages and the pool listing. */
  command: string;
}
