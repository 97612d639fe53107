// `remote-agent serve`: parse flags, refuse unsafe set-ups, start the agent, print the bound endpoint as the first
// line of stdout (scripts wait for it), and shut down cleanly on SIGINT/SIGTERM (and, with --exit-with-parent, when
// the parent goes away). `remote-agent keygen`: key files.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { fail, parseFlags, print, UsageError } from '../common/cli';
import { writeKeyPair } from '../common/key-files';
import { PACKAGE_VERSION } from '../common/package-info';
import { advertisedEndpoint, writeEndpointFile } from './announce';
import { agentOptionsOf, KEYGEN_OPTIONS, KEYGEN_USAGE, SERVE_OPTIONS, USAGE, Values } from './cli-flags';
import { isLoopback } from './loopback';
import { readGpus } from './resources';
import { loadCurve, sessionCurve } from './serve-keys';
import { Agent, AgentCurve } from './server';
import { untilStopped } from './stop-signals';

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const usage = command === 'keygen' ? KEYGEN_USAGE : USAGE;
  try {
    switch (command) {
      case 'serve':
        return await serve(parseFlags({ args: rest, options: SERVE_OPTIONS, strict: true }).values);
      case 'keygen':
        return keygen(parseFlags({ args: rest, options: KEYGEN_OPTIONS, strict: true }).values);
      case '-v':
      case '--version':
        return print(PACKAGE_VERSION);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        return print(USAGE);
      default:
        return fail(TOOL, `unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    }
  } catch (error) {
    if (error instanceof UsageError) return fail(TOOL, `${error.message}\n\n${usage}`);
    throw error;
  }
}

const TOOL = 'remote-agent';

async function serve(values: Values<typeof SERVE_OPTIONS>): Promise<number> {
  if (values.help) return print(USAGE);

  const bind = values.bind;
  let curve: AgentCurve | undefined;
  try {
    curve = values.keys
      ? loadCurve(values.keys, values.allow ?? [], values['allow-key'] ?? [])
      : sessionCurve(values['allow-key'] ?? []);
  } catch (error) {
    return fail(TOOL, (error as Error).message);
  }
  if (!curve && values.allow)
    return fail(TOOL, '--allow needs --keys DIR: the agent must have its own key pair to check clients');
  if (!curve && !isLoopback(bind) && !values.insecure) {
    return fail(
      TOOL,
      `refusing to serve on ${bind} without keys: anyone who can reach that address could run code on this machine.\n` +
        "Create keys on this host and on the kernel's machine (remote-agent keygen --name agent; remote-agent keygen --name kernel),\n" +
        `then serve with --keys ~/.tslab-remote --allow kernel.pub; or bind to loopback and use an SSH tunnel\n` +
        '(ssh -L 5555:127.0.0.1:5555 HOST); or pass --insecure on a network you trust.',
    );
  }
  if (!curve && !isLoopback(bind))
    process.stderr.write(`WARNING: serving on ${bind} without keys: anyone who can reach it can run code here\n`);

  let gpus: string[] | undefined;
  try {
    gpus = values.gpus === undefined ? undefined : await gpuList(values.gpus, values['nvidia-smi']);
  } catch (error) {
    return fail(TOOL, (error as Error).message);
  }
  const options = agentOptionsOf(values);
  const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  // All set before the agent starts, so that nothing can end us without the clean-up: a signal in the moment after
  // the endpoint is printed (a parent may stop the agent as soon as it listens), a second signal ("now"), a parent
  // gone while we write the log (EPIPE on stdout and stderr, which nobody reads any more).
  const stopped = untilStopped(values['exit-with-parent']);
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  if (values.ephemeral) process.once('exit', () => fs.rmSync(options.workdir, { recursive: true, force: true }));
  let agent: Agent;
  try {
    agent = await Agent.start({ ...options, curve, gpus, log });
  } catch (error) {
    return fail(TOOL, (error as Error).message);
  }
  const endpoint = advertisedEndpoint(agent.endpoint, values.advertise);
  process.stdout.write(`remote-agent listening on ${endpoint}\n`);
  if (curve) process.stdout.write(`remote-agent public key ${curve.publicKey}\n`);
  if (curve)
    log(`CURVE on: agent public key ${curve.publicKey}, ${curve.allowedClientKeys.length} client key(s) allowed`);
  const endpointFile = values['endpoint-file']
    ? writeEndpointFile(path.resolve(values['endpoint-file']), {
        endpoint,
        host: /^tcp:\/\/(\[[^\]]+\]|[^:]+):/.exec(endpoint)?.[1] ?? os.hostname(),
        ...(curve ? { serverKey: curve.publicKey } : {}),
        workers: agent.info.workers,
        gpus: gpus ?? [],
        pid: process.pid,
      })
    : undefined;
  if (endpointFile) log(`wrote ${endpointFile.file}`);
  log(
    `remote-agent ${PACKAGE_VERSION} (node ${process.version}), workdir ${options.workdir}, ${agent.info.workers} worker(s)` +
      (gpus ? `, pinned to GPU(s) ${gpus.join(' | ')}` : ''),
  );
  const why = await stopped;
  log(`shutting down (${why}): cancelling jobs and ending workers`);
  endpointFile?.remove();
  await agent.stop();
  log(values.ephemeral ? `stopped; removing ${options.workdir}` : 'stopped');
  return 0;
}

/** `all` asks nvidia-smi; otherwise a comma-separated list of device ids, `+` joining several for one worker. */
async function gpuList(spec: string, nvidiaSmi: string): Promise<string[]> {
  if (spec !== 'all') {
    const entries = spec.split(',').map((entry) => entry.trim());
    if (entries.some((entry) => !/^\d+(\+\d+)*$/.test(entry))) {
      throw new UsageError(
        `--gpus takes all or a list of GPU indices such as 0,1 or 0+1,2+3; got ${JSON.stringify(spec)}`,
      );
    }
    return entries.map((entry) => entry.split('+').join(','));
  }
  const { gpus, gpuError } = await readGpus(nvidiaSmi);
  if (gpus.length === 0) {
    throw new UsageError(
      `--gpus all: ${gpuError ?? `${nvidiaSmi} lists no GPU (is the NVIDIA driver installed?)`}; use --workers N for CPU workers`,
    );
  }
  return gpus.map((gpu) => String(gpu.index));
}

function keygen(values: Values<typeof KEYGEN_OPTIONS>): number {
  if (values.help) return print(KEYGEN_USAGE);
  const dir = path.resolve(values.out ?? path.join(os.homedir(), '.tslab-remote'));
  try {
    const { publicFile, secretFile, publicKey } = writeKeyPair(dir, values.name);
    return print(
      `${publicKey}\nwrote ${publicFile} (public: hand it to the other side) and ${secretFile} (secret, owner-only)`,
    );
  } catch (error) {
    return fail(TOOL, (error as Error).message);
  }
}

/** Entry point of the `remote-agent` bin. */
export function run(): void {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.exit(fail(TOOL, error instanceof UsageError ? error.message : ((error as Error).stack ?? String(error))));
    },
  );
}
