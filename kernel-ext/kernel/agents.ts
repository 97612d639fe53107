// The kernel's agents: connected with %remote_agent, from TSLAB_REMOTE_AGENT, or a private one on loopback started
// on first use (and again when it died). Each remembers the snapshots it is known to hold.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { AgentClient, connect } from '../client/agent-client';
import type { ClientCurve } from '../client/client-options';
import { LocalAgent, startLocalAgent } from '../client/local-agent';
import { readKeyFile, readKeyPair } from '../../common/key-files';
import { userPath } from './code-root';
import { formatBytes } from './display';
import type { CellIO } from './io';
import { CellFailure } from './io';
import type { CellInterrupt } from './interrupt';

export const ENV_AGENT = 'TSLAB_REMOTE_AGENT';
export const ENV_KEYS = 'TSLAB_REMOTE_KEYS';

export interface Agent {
  name: string;
  endpoint: string;
  client: AgentClient;
  /** Snapshots the agent told us it holds (it may evict one: a SNAPSHOT_MISSING call uploads again). */
  ready: Set<string>;
  private?: LocalAgent;
}

/** What %remote_agent asks for. */
export interface AgentSpec {
  endpoint?: string;
  key?: string;
  name?: string;
  local: boolean;
}

export class AgentRegistry {
  private readonly agents = new Map<string, Agent>();
  private current?: Agent;

  constructor(private readonly notebookDir: string) {}

  /** What an interrupted %remote_agent leaves behind. */
  consequence(): string {
    return this.current ? `the current agent is still ${this.current.name}` : 'no agent is connected';
  }

  /** %remote_agent: without an endpoint describes the current agent; with one (or --local) connects and makes it current. */
  async magic(spec: AgentSpec, io: CellIO, cell: CellInterrupt): Promise<void> {
    if (!spec.endpoint && !spec.local) {
      const agent = this.current;
      if (!agent) {
        io.stream(
          'stdout',
          `no agent yet: the first %remote ${process.env[ENV_AGENT] ? `connects to ${process.env[ENV_AGENT]} (${ENV_AGENT})` : 'starts a private agent on this machine'}\n`,
        );
        return;
      }
      await this.describe(agent, io, cell);
      return;
    }
    const agent = spec.local
      ? await this.startLocal(spec.name ?? 'local', io, cell)
      : await this.connectTo(spec.endpoint!, spec.key, spec.name, cell);
    this.current = agent;
    const info = agent.client.agent;
    io.stream(
      'stdout',
      `connected to ${agent.name === agent.endpoint ? agent.endpoint : `${agent.name} (${agent.endpoint})`}: ${info.name} ${info.version} on ${info.hostname}, node ${info.node}, ${info.workers} workers\n`,
    );
  }

  /** The agent a call goes to: --agent NAME_OR_ENDPOINT, else the current one, else TSLAB_REMOTE_AGENT, else private. */
  async agentFor(spec: string | undefined, io: CellIO, cell: CellInterrupt): Promise<Agent> {
    if (spec) {
      const named = this.agents.get(spec) ?? [...this.agents.values()].find((a) => a.endpoint === spec);
      if (named && isAlive(named)) return named;
      if (named?.private) return this.startLocal(named.name, io, cell); // it died: a new one, not an error on every call
      if (spec === 'local') return this.startLocal('local', io, cell);
      if (!/^(tcp|ipc|inproc):\/\//.test(spec)) {
        throw new CellFailure({
          ename: 'UsageError',
          evalue: `no agent named ${spec}: connect it first with %remote_agent ENDPOINT --name ${spec}, or pass an endpoint such as tcp://host:5555`,
          traceback: [],
        });
      }
      return this.connectTo(spec, process.env[ENV_KEYS], undefined, cell);
    }
    if (this.current && !isAlive(this.current)) {
      // The private agent died (killed, out of memory): a new one, rather than an error on every call.
      io.stream(
        'stderr',
        `tslab-remote: the private agent had stopped (${describeExit(this.current.private!)}); starting a new one\n`,
      );
      await closeAgent(this.current);
      this.agents.delete(this.current.name);
      this.current = undefined;
    }
    if (this.current) return this.current;
    const configured = process.env[ENV_AGENT];
    this.current = configured
      ? await this.connectTo(configured, process.env[ENV_KEYS], undefined, cell)
      : await this.startLocal('local', io, cell);
    return this.current;
  }

  /** Whether a call without --agent has an agent besides the pool's: a current one, or TSLAB_REMOTE_AGENT. */
  hasDefault(): boolean {
    return this.current !== undefined || Boolean(process.env[ENV_AGENT]);
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map(closeAgent));
    this.agents.clear();
    this.current = undefined;
  }

  private async describe(agent: Agent, io: CellIO, cell: CellInterrupt): Promise<void> {
    const status = await cell.during(`asking ${agent.name} for its status`, agent.client.status());
    const info = status.agent;
    const lines = [
      `agent      ${agent.name}${agent.private ? ' (private, on this machine; ends with this kernel)' : ''}`,
      `endpoint   ${agent.endpoint}`,
      `host       ${info.hostname} (agent pid ${info.pid}), ${info.name} ${info.version}, protocol ${info.protocol}`,
      `node       ${info.node}`,
      `workers    ${status.workers.length}: ${status.workers.map((w) => `#${w.index} ${w.state}${w.restarts ? ` (${w.restarts} restarts)` : ''}`).join(', ')}`,
      `snapshots  ${status.store.snapshots} held, ${status.store.blobs} files, ${formatBytes(status.store.bytes)} (${status.store.evicted} evicted)`,
    ];
    const r = status.resources;
    if (r) {
      lines.push(`cpu        ${r.cpus} × ${r.cpuModel}, load ${r.loadAverage.map((l) => l.toFixed(2)).join(' ')}`);
      lines.push(
        `memory     ${formatBytes(r.memoryFreeMb * 1024 * 1024)} free of ${formatBytes(r.memoryTotalMb * 1024 * 1024)}`,
      );
      const gpus = r.gpus.map(
        (g) =>
          `#${g.index} ${g.name}${g.memoryTotalMb !== null ? `, ${g.memoryUsedMb ?? '?'} of ${g.memoryTotalMb} MB used` : ''}${g.utilizationPercent !== null ? `, ${g.utilizationPercent}% busy` : ''}`,
      );
      lines.push(
        `gpus       ${gpus.length > 0 ? gpus.join('\n           ') : r.gpuError ? `unreadable: ${r.gpuError}` : 'none'}`,
      );
    }
    for (const worker of status.workers)
      if (worker.gpu !== undefined) lines.push(`           worker #${worker.index} on GPU ${worker.gpu}`);
    if (this.agents.size > 1)
      lines.push(
        `others     ${[...this.agents.values()]
          .filter((a) => a !== agent)
          .map((a) => a.name)
          .join(', ')}`,
      );
    io.stream('stdout', `${lines.join('\n')}\n`);
  }

  private async startLocal(name: string, io: CellIO, cell: CellInterrupt): Promise<Agent> {
    const existing = this.agents.get(name);
    if (existing && isAlive(existing)) return existing;
    if (existing) {
      await closeAgent(existing);
      this.agents.delete(name);
    }
    io.stream('stdout', 'tslab-remote: starting a private agent on this machine (it ends with this kernel)\n'); // news, not a warning
    // A process group of its own (Jupyter's interrupt signals the kernel's whole group, and must reach the kernel
    // only, which cancels the call through the protocol); it ends with the kernel, even a killed one.
    // The signals make the agent and the client given up on by an interrupt go away, not linger half-made.
    const starting = startLocalAgent({ detached: true, ephemeral: true, startTimeoutMs: 20_000, signal: cell.signal });
    const agentProcess = await cell.during('starting the private agent', starting);
    try {
      const connecting = connect(agentProcess.endpoint, {
        clientName: `tslab-remote kernel pid ${process.pid}`,
        signal: cell.signal,
      });
      const client = await cell.during('connecting to the private agent', connecting);
      const agent: Agent = { name, endpoint: agentProcess.endpoint, client, ready: new Set(), private: agentProcess };
      this.agents.set(name, agent);
      if (existing && this.current === existing) this.current = agent;
      return agent;
    } catch (error) {
      await agentProcess.stop();
      throw error;
    }
  }

  private async connectTo(
    endpoint: string,
    key: string | undefined,
    name: string | undefined,
    cell: CellInterrupt,
  ): Promise<Agent> {
    const agentName = name ?? endpoint;
    const existing = this.agents.get(agentName);
    if (existing && existing.endpoint === endpoint) return existing;
    const curve = key ? readCurve(userPath(this.notebookDir, key)) : undefined;
    const connecting = connect(endpoint, {
      clientName: `tslab-remote kernel pid ${process.pid}`,
      ...(curve ? { curve } : {}),
      signal: cell.signal,
    });
    const client = await cell.during(`connecting to ${endpoint}`, connecting);
    if (existing) await closeAgent(existing);
    const agent: Agent = { name: agentName, endpoint, client, ready: new Set() };
    this.agents.set(agentName, agent);
    return agent;
  }
}

export function readCurve(keyPath: string): ClientCurve {
  // DIR with kernel.key, kernel.pub and agent.pub; or the agent's .pub file, with the kernel's pair beside it.
  if (!fs.existsSync(keyPath)) {
    throw new CellFailure({
      ename: 'UsageError',
      evalue: `--key ${keyPath} does not exist: give a directory holding kernel.key, kernel.pub and agent.pub (remote-agent keygen makes them), or the agent's .pub file`,
      traceback: [],
    });
  }
  const isDir = fs.statSync(keyPath).isDirectory();
  const dir = isDir ? keyPath : path.dirname(keyPath);
  const agentPub = isDir ? path.join(dir, 'agent.pub') : keyPath;
  const pair = readKeyPair(dir, 'kernel');
  return { serverKey: readKeyFile(agentPub), publicKey: pair.publicKey, secretKey: pair.secretKey };
}

/** A connected agent is taken as alive; a private one, while its process runs. */
function isAlive(agent: Agent): boolean {
  return !agent.private || (agent.private.process.exitCode === null && agent.private.process.signalCode === null);
}

function describeExit(agent: LocalAgent): string {
  const { exitCode, signalCode } = agent.process;
  return signalCode ? `killed by ${signalCode}` : `exit code ${exitCode}`;
}

async function closeAgent(agent: Agent): Promise<void> {
  await agent.client.close().catch(() => undefined);
  await agent.private?.stop().catch(() => undefined);
}
