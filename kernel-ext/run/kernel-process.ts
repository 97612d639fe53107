// Starting a kernel for a run: free loopback ports, a connection file only this user can read, and the kernel
// process in a process group of its own.

import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { BIN } from '../../common/package-info';

const KERNEL_BIN = BIN.tslabRemote;

/** What a client needs of the connection file. */
export interface KernelAddress {
  key: string;
  ip: string;
  shell_port: number;
  iopub_port: number;
  control_port: number;
}

export async function spawnKernel(
  cwd: string,
  options: { agent?: string; env?: NodeJS.ProcessEnv },
): Promise<{ child: ChildProcess; connection: KernelAddress; tmpDir: string }> {
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tslab-remote-run-'));
  const ports = await freePorts(5);
  const connection = {
    transport: 'tcp',
    ip: '127.0.0.1',
    shell_port: ports[0]!,
    iopub_port: ports[1]!,
    stdin_port: ports[2]!,
    control_port: ports[3]!,
    hb_port: ports[4]!,
    key: randomBytes(32).toString('hex'),
    signature_scheme: 'hmac-sha256',
    kernel_name: 'tslab-remote',
  };
  const configPath = path.join(tmpDir, 'kernel.json');
  fs.writeFileSync(configPath, JSON.stringify(connection), { mode: 0o600 });
  // JPY_PARENT_PID, as jupyter_client sets it: the kernel ends itself if this process dies without stopping it.
  const env = {
    ...process.env,
    ...options.env,
    JPY_PARENT_PID: String(process.pid),
    ...(options.agent ? { TSLAB_REMOTE_AGENT: options.agent } : {}),
  };
  // A process group of its own, as jupyter_client starts kernels: a Ctrl-C at the terminal reaches this process
  // only, which interrupts the kernel itself (once, and knowing it did), and the interrupt reaches the kernel only.
  const child = spawn(process.execPath, [KERNEL_BIN, 'kernel', '--config-path', configPath], {
    cwd,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  return { child, connection, tmpDir };
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve) => {
          const server = net.createServer();
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
