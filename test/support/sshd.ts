// A real OpenSSH server for launcher tests: Debian's sshd on a free port of a few loopback addresses, with
// throwaway host and user keys in a temp directory, run in the foreground (-D) and stopped by the test.

import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const SSHD = '/usr/sbin/sshd';

export interface Sshd {
  port: number;
  /** ssh options that reach this server as the current user: port, key, no host-key prompts, no user config. */
  sshArgs: string[];
  stop(): Promise<void>;
}

/** Why an sshd cannot run here, or null when it can. */
export function sshdMissing(): string | null {
  if (!fs.existsSync(SSHD)) return `${SSHD} is not installed (Debian package openssh-server)`;
  if (spawnSync('ssh', ['-V']).error) return 'ssh is not installed (Debian package openssh-client)';
  return null;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startSshd(addresses: string[]): Promise<Sshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sshd-'));
  const keygen = (file: string): void => {
    const made = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
    if (made.status !== 0) throw new Error(`ssh-keygen failed: ${String(made.stderr)}`);
  };
  keygen(path.join(dir, 'host_key'));
  keygen(path.join(dir, 'user_key'));
  fs.copyFileSync(path.join(dir, 'user_key.pub'), path.join(dir, 'authorized_keys'));
  // sshd needs its privilege-separation directory.
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePort();
  fs.writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      ...addresses.map((address) => `ListenAddress ${address}`),
      `HostKey ${path.join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      'PrintMotd no',
      'AcceptEnv no',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // Listening once a connection to every address is accepted.
  const deadline = Date.now() + 10_000;
  for (const address of addresses) {
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const socket: net.Socket = net.connect(port, address, () => (socket.end(), resolve(true)));
        socket.on('error', () => resolve(false));
      });
      if (ok) break;
      if (child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`sshd did not start listening on ${address}:${port}: ${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    port,
    sshArgs: [
      '-F',
      '/dev/null',
      '-p',
      String(port),
      '-i',
      path.join(dir, 'user_key'),
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`,
      '-o',
      'LogLevel=ERROR',
    ],
    stop,
  };
}
