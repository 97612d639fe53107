// Agents over SSH: one `ssh HOST remote-agent serve ...` per host. Each agent binds every address of its host, is
// advertised under the address ssh connects to for the host (its HostName in the ssh config: an alias such as `gpu`
// is no name the kernel's resolver knows), admits only this session's key, and ends when its ssh ends
// (--exit-with-parent: the remote end of ssh's stdin closes).

import { spawnSync } from 'node:child_process';

import type { LaunchedAgents } from '../types';
import { LauncherProcess, remotePath, shellWord } from './agent-process';
import { sessionCurve } from './session-keys';

export interface SshOptions {
  hosts: string[];
  /** How to run remote-agent on the hosts (default `remote-agent`, on PATH there), e.g. `cd ~/proj && npx remote-agent`. */
  agentCommand?: string;
  /** More `serve` flags, after the launcher's own (a later --bind or --workdir wins). */
  agentArgs?: string[];
  /** Where each agent keeps its snapshots on its host: BASE/agent-HOST (default .cache/tslab-remote in the login directory). */
  workdirBase?: string;
  /** Bind each agent to its host's name as given (resolved there) instead of every address of the host. */
  bindToHost?: boolean;
  /** Extra ssh options, before the host: `-p 2222`, `-i KEY`, `-o ...`. */
  sshArgs?: string[];
  /** The ssh program (default `ssh`). */
  ssh?: string;
  startTimeoutMs?: number;
}

export async function launchSsh(options: SshOptions, signal?: AbortSignal): Promise<LaunchedAgents> {
  if (options.hosts.length === 0) throw new Error('ssh launch: no hosts given');
  const curve = sessionCurve();
  const ssh = options.ssh ?? 'ssh';
  const processes = options.hosts.map((host) => {
    const name = host.replace(/^[^@]*@/, '');
    const address = sshHostName(ssh, options.sshArgs ?? [], host) ?? name;
    const serve = [
      'serve',
      '--exit-with-parent',
      '--bind',
      `tcp://${options.bindToHost ? address : '0.0.0.0'}:*`,
      '--advertise',
      address,
      // One word with its flag: a Z85 key may start with '-', which would read as another option.
      `--allow-key=${curve.publicKey}`,
    ].map(shellWord);
    const workdir = `${remotePath(options.workdirBase ?? '.cache/tslab-remote')}/${shellWord(`agent-${name}`)}`;
    const remote = `${options.agentCommand ?? 'remote-agent'} ${serve.join(' ')} --workdir ${workdir} ${(options.agentArgs ?? []).map(shellWord).join(' ')}`;
    return LauncherProcess.spawn(ssh, [
      '-o',
      'BatchMode=yes',
      '-o',
      'ServerAliveInterval=5',
      ...(options.sshArgs ?? []),
      host,
      remote,
    ]);
  });
  const stopAll = async (): Promise<void> => void (await Promise.all(processes.map((p) => p.stop())));
  const started = await Promise.allSettled(
    processes.map((p, i) =>
      p.waitForAgents({
        count: 1,
        keys: true,
        name: () => options.hosts[i]!,
        timeoutMs: options.startTimeoutMs ?? 60_000,
        signal,
      }),
    ),
  );
  const failures = started.flatMap((outcome, i) =>
    outcome.status === 'rejected' ? [`${options.hosts[i]}: ${(outcome.reason as Error).message}`] : [],
  );
  if (failures.length > 0) {
    await stopAll(); // the agents that did start too
    throw new Error(
      `ssh launch failed on ${failures.length} of ${options.hosts.length} host(s):\n${failures.join('\n')}`,
    );
  }
  return {
    agents: started.flatMap((outcome) => (outcome.status === 'fulfilled' ? outcome.value : [])),
    clientCurve: curve,
    ended: Promise.all(processes.map((p) => p.ended)).then(() => undefined),
    stop: stopAll,
    command: processes.map((p) => p.command).join('\n'),
  };
}

/**
 * What ssh connects to for `host` (user@ and aliases resolved through the ssh config, with the launch's ssh options),
 * from `ssh -G`, which reads the configuration and connects nowhere; undefined when ssh cannot say.
 */
function sshHostName(ssh: string, sshArgs: string[], host: string): string | undefined {
  const shown = spawnSync(ssh, [...sshArgs, '-G', host], { encoding: 'utf8', timeout: 10_000 });
  return shown.status === 0 ? /^hostname (\S+)$/m.exec(shown.stdout)?.[1] : undefined;
}
