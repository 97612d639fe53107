// A private agent on this machine, started as a child process exactly as a user would start one on a GPU host. Used
// when no agent is configured (the first try needs no set-up), by the examples, the tests and the benchmarks.
//
// It listens on a unix socket in a private (0700) directory, not on a loopback TCP port, which every local user
// could reach; and it is started with --exit-with-parent and a pipe as stdin, so it shuts down with its parent even
// when the parent is killed.

import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { BIN } from '../../common/package-info';
import { AbortError } from './abort';

const AGENT_BIN = BIN.remoteAgent;
/** The agent's stderr (its log) kept in memory: the most recent part, enough for any error report. */
const LOG_TAIL_BYTES = 256 * 1024;
/** Unix socket paths are limited to 107 bytes (sun_path); stay well under, as the worker pool does. */
const MAX_IPC_PATH = 100;

export interface LocalAgent {
  endpoint: string;
  workdir: string;
  process: ChildProcess;
  /** The last 256 KiB the agent wrote to stderr (its log). */
  log(): string;
  /** SIGTERM, then wait for the process to exit; resolves with its exit code. */
  stop(): Promise<number | null>;
}

export interface LocalAgentOptions {
  /** Extra `remote-agent serve` flags; a `--bind` here replaces the private unix socket. */
  args?: string[];
  /**
   * Defaults to a private temporary directory, removed whenever the agent ends (it stops with this process, however
   * this process ends: normal stop, exit, a signal, SIGKILL).
   */
  workdir?: string;
  env?: NodeJS.ProcessEnv;
  startTimeoutMs?: number;
  /**
   * A process group of its own, and not keeping this process alive: for a Jupyter kernel, whose interrupt is a
   * SIGINT to its whole process group (jupyter_client's killpg), which must reach the kernel only.
   */
  detached?: boolean;
  /**
   * Remove a given workdir when the agent stops (`serve --ephemeral`): the parent may be gone by then. A default
   * workdir is always removed.
   */
  ephemeral?: boolean;
  /** Gives up waiting for the agent to listen: it is killed and the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

export async function startLocalAgent(options: LocalAgentOptions = {}): Promise<LocalAgent> {
  if (options.signal?.aborted) throw startAborted();
  const workdir = options.workdir ?? (await privateDir());
  const bind = await defaultBind(options, workdir);
  if (options.signal?.aborted) {
    // Aborted while the directories were made: nothing to start, nothing to leave behind.
    bind.cleanup?.();
    if (!options.workdir) fs.rmSync(workdir, { recursive: true, force: true });
    throw startAborted();
  }
  // Our own temporary workdir holds a copy of the user's sources: the agent removes it as it stops, which it does
  // when this process ends in any way (stdin reaches EOF); stop() removes it too, should the agent have been killed.
  const ours = options.workdir === undefined;
  const flags = ['--exit-with-parent', ...(options.ephemeral || ours ? ['--ephemeral'] : [])];
  const args = ['serve', '--workdir', workdir, ...flags, ...bind.args, ...(options.args ?? [])];
  const child = spawn(process.execPath, [AGENT_BIN, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'], // our end of stdin closes when we die, however we die: the agent then stops
    env: { ...process.env, ...options.env },
    detached: options.detached ?? false,
  });
  child.stdin.on('error', () => undefined); // the agent gone first: nothing to tell it
  const stderr = new LogTail(LOG_TAIL_BYTES);
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (bind.cleanup) void exited.then(bind.cleanup);
  if (ours) void exited.then(() => fs.rmSync(workdir, { recursive: true, force: true }));
  const endpoint = await listeningEndpoint(
    child,
    exited,
    { timeoutMs: options.startTimeoutMs ?? 15_000, signal: options.signal },
    () => stderr.text(),
  );
  if (options.detached) {
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?(): void }).unref?.();
  }
  return {
    endpoint,
    workdir,
    process: child,
    log: () => stderr.text(),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

// tmp-promise creates directories with mode 0700: only this user can enter them, so only this user can reach a socket
// inside.
async function privateDir(): Promise<string> {
  return (await tmp.dir({ prefix: 'tslab-remote-agent-' })).path;
}

/**
 * `--bind ipc://DIR/agent.sock` in a private directory: the workdir when it is ours (0700), else a directory of its
 * own, removed when the agent exits. No flag when options.args bind elsewhere. A socket path too long for a unix
 * socket falls back to a loopback TCP port (reachable by other local users, but the only choice left there).
 */
async function defaultBind(
  options: LocalAgentOptions,
  workdir: string,
): Promise<{ args: string[]; cleanup?: () => void }> {
  if (options.args?.some((arg) => arg === '--bind' || arg.startsWith('--bind='))) return { args: [] };
  const dir = options.workdir === undefined ? workdir : await privateDir();
  const cleanup = dir === workdir ? undefined : () => fs.rmSync(dir, { recursive: true, force: true });
  const socket = path.join(dir, 'agent.sock');
  if (socket.length < MAX_IPC_PATH) return { args: ['--bind', `ipc://${socket}`], cleanup };
  cleanup?.();
  return { args: ['--bind', 'tcp://127.0.0.1:*'] };
}

/** The most recent bytes of a stream, at most `limit`: a chatty agent cannot grow our memory without bound. */
class LogTail {
  private chunks: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.bytes - this.chunks[0]!.length >= this.limit) this.bytes -= this.chunks.shift()!.length;
    if (this.bytes > this.limit) {
      this.chunks[0] = this.chunks[0]!.subarray(this.bytes - this.limit);
      this.bytes = this.limit;
    }
  }

  text(): string {
    return Buffer.concat(this.chunks, this.bytes).toString('utf8');
  }
}

function startAborted(): AbortError {
  return new AbortError('gave up starting the local agent: aborted before it was listening');
}

/**
 * Waits for the agent's first stdout line, which names the endpoint it bound. An agent given up on (too slow, or
 * aborted) is killed: it has served nothing yet, so there is nothing to wind down.
 */
function listeningEndpoint(
  child: ChildProcess,
  exited: Promise<number | null>,
  wait: { timeoutMs: number; signal?: AbortSignal },
  stderr: () => string,
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let stdout = '';
    const giveUp = (error: Error): void => {
      child.kill('SIGKILL');
      reject(error);
    };
    const onAbort = (): void => giveUp(startAborted());
    const timer = setTimeout(
      () => giveUp(new Error(`the local agent did not start within ${wait.timeoutMs / 1000} s; its log:\n${stderr()}`)),
      wait.timeoutMs,
    );
    wait.signal?.addEventListener('abort', onAbort, { once: true });
    const settled = (): void => {
      clearTimeout(timer);
      wait.signal?.removeEventListener('abort', onAbort);
    };
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /^remote-agent listening on (\S+)$/m.exec(stdout);
      if (match) {
        settled();
        resolve(match[1]!);
      }
    });
    void exited.then((code) => {
      settled();
      reject(new Error(`the local agent exited with code ${code} before listening; its log:\n${stderr()}`));
    });
  });
}
