// A launcher's child process (ssh, srun) and what its agents print: `remote-agent listening on ENDPOINT`, then
// `remote-agent public key KEY`, and for srun (with --label, each line prefixed by its task number) the node name
// the wrapper script echoes first. Waits, bounded, until every expected agent is there; on any failure the process
// is stopped and the error names the command and quotes its stderr.

import { ChildProcess, spawn } from 'node:child_process';
import * as readline from 'node:readline';

import type { AgentEndpoint } from '../types';

export interface ExpectedAgents {
  /** How many agents the process starts. */
  count: number;
  /** Whether each agent prints its public key (it serves with session keys). */
  keys: boolean;
  /** The name of the agent of a task (`label` is the task number, or '' without labels). */
  name: (label: string, announced: AnnouncedAgent) => string;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface AnnouncedAgent {
  endpoint?: string;
  serverKey?: string;
  node?: string;
}

const STDERR_TAIL = 4_000;

export class LauncherProcess {
  private stderr = '';
  readonly ended: Promise<void>;
  private exit?: { code: number | null; signal: NodeJS.Signals | null };

  private constructor(
    readonly command: string,
    private readonly child: ChildProcess,
  ) {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => (this.stderr = (this.stderr + text).slice(-STDERR_TAIL)));
    this.ended = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      });
    });
  }

  static spawn(file: string, args: string[], env?: NodeJS.ProcessEnv): LauncherProcess {
    // stdin a pipe we keep open: an agent started with --exit-with-parent ends when this process's end closes.
    // A process group of its own: Jupyter interrupts a kernel by signalling its whole group, and srun aborts the job
    // on two SIGINTs in a row (ssh ends on one); the interrupt is for the kernel, which cancels calls itself.
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env, detached: true });
    const launched = new LauncherProcess([file, ...args.map(shellWord)].join(' '), child);
    child.on('error', () => undefined); // reported through `close` and waitForAgents
    return launched;
  }

  /** Reads agent lines until `expected.count` agents are complete; rejects (and stops the process) otherwise. */
  async waitForAgents(expected: ExpectedAgents): Promise<AgentEndpoint[]> {
    const tasks = new Map<string, AnnouncedAgent>();
    const complete = (agent: AnnouncedAgent): boolean => Boolean(agent.endpoint && (!expected.keys || agent.serverKey));
    const lines = readline.createInterface({ input: this.child.stdout! });
    let spawnError: Error | undefined;
    this.child.once('error', (error) => (spawnError = error));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(this.failure(`not every agent announced itself within ${expected.timeoutMs / 1000} s`)),
          expected.timeoutMs,
        );
        const onAbort = (): void => reject(this.failure('aborted'));
        if (expected.signal?.aborted) onAbort();
        expected.signal?.addEventListener('abort', onAbort, { once: true });
        const done = (error?: Error): void => {
          clearTimeout(timer);
          expected.signal?.removeEventListener('abort', onAbort);
          if (error) reject(error);
          else resolve();
        };
        lines.on('line', (line) => {
          const [, label = '', text = ''] = /^(?:\s*(\d+): )?(.*)$/.exec(line) ?? [];
          const agent = tasks.get(label) ?? {};
          tasks.set(label, agent);
          const field = /^remote-agent (listening on|public key|node) (\S+)$/.exec(text);
          if (field?.[1] === 'listening on') agent.endpoint = field[2];
          else if (field?.[1] === 'public key') agent.serverKey = field[2];
          else if (field?.[1] === 'node') agent.node = field[2];
          if ([...tasks.values()].filter(complete).length >= expected.count) done();
        });
        void this.ended.then(() =>
          done(this.failure(spawnError ? spawnError.message : 'it ended before its agents were up')),
        );
      });
    } catch (error) {
      await this.stop();
      throw error;
    } finally {
      lines.removeAllListeners('line');
    }
    // In task order (srun's labels), not in the order the agents happened to come up.
    const ordered = [...tasks].sort(([a], [b]) => Number(a) - Number(b));
    return ordered
      .filter(([, agent]) => complete(agent))
      .map(([label, agent]) => ({
        name: expected.name(label, agent),
        endpoint: agent.endpoint!,
        host: agent.node ?? /^tcp:\/\/([^:]+):/.exec(agent.endpoint!)?.[1],
        ...(agent.serverKey ? { serverKey: agent.serverKey } : {}),
      }));
  }

  /** SIGTERM (srun and ssh pass it on, ending the agents), then SIGKILL after `graceMs`. Idempotent. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exit) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.ended;
    clearTimeout(timer);
  }

  private failure(why: string): Error {
    const status = this.exit ? ` (exit ${this.exit.code ?? this.exit.signal})` : '';
    const stderr = this.stderr.trim() ? `\nits stderr:\n${this.stderr.trim()}` : '';
    return new Error(`could not start agents: ${why}${status}\nthe command: ${this.command}${stderr}`);
  }
}

/** A path for a remote shell: `~/x` becomes "$HOME"/x (quoted, `~` would be a directory named ~), else quoted. */
export function remotePath(file: string): string {
  return file === '~' || file.startsWith('~/')
    ? `"$HOME"${file.length > 1 ? `/${shellWord(file.slice(2))}` : ''}`
    : shellWord(file);
}

/** Quoted for a POSIX shell when it needs to be (also how ssh's remote command is built). */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
