// A private agent on loopback, started as a child process exactly as a user would start one on a GPU host. Used
// when no agent is configured (the first try needs no set-up), by the examples, the tests and the benchmarks.

import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

const AGENT_BIN = path.resolve(__dirname, '..', '..', 'bin', 'remote-agent.js');

export interface LocalAgent {
  endpoint: string;
  workdir: string;
  process: ChildProcess;
  /** Everything the agent wrote to stderr (its log). */
  log(): string;
  /** SIGTERM, then wait for the process to exit; resolves with its exit code. */
  stop(): Promise<number | null>;
}

export interface LocalAgentOptions {
  /** Extra `remote-agent serve` flags. */
  args?: string[];
  /** Defaults to a temporary directory removed when the process exits. */
  workdir?: string;
  env?: NodeJS.ProcessEnv;
  startTimeoutMs?: number;
}

export async function startLocalAgent(options: LocalAgentOptions = {}): Promise<LocalAgent> {
  const workdir = options.workdir ?? (await tmp.dir({ unsafeCleanup: true, prefix: 'tslab-remote-agent-' })).path;
  const args = ['serve', '--bind', 'tcp://127.0.0.1:*', '--workdir', workdir, ...(options.args ?? [])];
  const child = spawn(process.execPath, [AGENT_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const endpoint = await listeningEndpoint(child, exited, options.startTimeoutMs ?? 15_000, () => stderr);
  return {
    endpoint,
    workdir,
    process: child,
    log: () => stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Waits for the agent's first stdout line, which names the endpoint it bound. */
function listeningEndpoint(
  child: ChildProcess,
  exited: Promise<number | null>,
  timeoutMs: number,
  stderr: () => string,
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the local agent did not start within ${timeoutMs / 1000} s; its log:\n${stderr()}`));
    }, timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /^remote-agent listening on (\S+)$/m.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the local agent exited with code ${code} before listening; its log:\n${stderr()}`));
    });
  });
}
