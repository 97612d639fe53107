// `remote-agent serve`: parse flags, refuse unsafe set-ups, start the agent, print the bound endpoint as the first
// line of stdout (scripts wait for it), and shut down cleanly on SIGINT/SIGTERM (and, with --exit-with-parent, when
// the parent goes away). `remote-agent keygen`: key files.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { parseArgs, ParseArgsConfig } from 'node:util';

import { fail, parseFlags, print, UsageError } from '../common/cli';
import { writeKeyPair } from '../common/key-files';
import { advertisedEndpoint, writeEndpointFile } from './announce';
import { isLoopback } from './loopback';
import { loadCurve, sessionCurve } from './serve-keys';
import { untilStopped } from './stop-signals';
import { readGpus } from './resources';
import { Agent, AgentCurve, DEFAULT_CLIENT_GRACE_MS, DEFAULT_CLIENT_TIMEOUT_MS, DEFAULT_RESULT_TTL_MS } from './server';
import { PACKAGE_VERSION, PACKAGE_ROOT } from '../common/package-info';
import { DEFAULT_DETACHED_LIMITS } from './detached/detached-jobs';

const MiB = 1024 * 1024;

/** serve's defaults: the flags' defaults and the usage text's, written once. */
const SERVE_DEFAULTS = {
  bind: 'tcp://127.0.0.1:5555',
  workers: '2',
  'nvidia-smi': 'nvidia-smi',
  'disk-budget': '10240',
  'max-message-mb': '2048',
  'max-archive-mb': '1024',
  'max-file-mb': '256',
  'max-snapshot-mb': '1024',
  'max-files': '100000',
  'max-jobs-per-client': '64',
  'cancel-grace-ms': '2000',
  'client-timeout-ms': String(DEFAULT_CLIENT_TIMEOUT_MS),
  'client-grace-ms': String(DEFAULT_CLIENT_GRACE_MS),
  'result-ttl-ms': String(DEFAULT_RESULT_TTL_MS),
  'job-output-mb': String(DEFAULT_DETACHED_LIMITS.maxOutputBytes / MiB),
  'job-result-mb': String(DEFAULT_DETACHED_LIMITS.maxResultBytes / MiB),
  'job-ttl-hours': String(DEFAULT_DETACHED_LIMITS.ttlMs / 3600_000),
  'jobs-disk-budget': String(DEFAULT_DETACHED_LIMITS.diskBudgetBytes / MiB),
  'max-detached-jobs': String(DEFAULT_DETACHED_LIMITS.maxJobs),
} as const;
const D = SERVE_DEFAULTS;
const KEYGEN_DEFAULTS = { name: 'agent' } as const;

const USAGE = `Usage: remote-agent serve [options]
       remote-agent keygen [--out DIR] [--name NAME]

serve runs code shipped from tslab-remote notebooks on this machine.
keygen creates a CurveZMQ key pair: NAME.pub (hand it to the other side) and NAME.key (secret, owner-only);
default DIR ~/.tslab-remote, NAME ${KEYGEN_DEFAULTS.name}.

Options of serve:
  --bind ENDPOINT        ZeroMQ endpoint to listen on (default ${D.bind};
                         tcp://127.0.0.1:* picks a free port)
  --workdir DIR          where snapshots and compiled code are kept
                         (default $XDG_CACHE_HOME/tslab-remote/agent or ~/.cache/tslab-remote/agent)
  --workers N            long-lived worker processes (default ${D.workers})
  --gpus all|LIST        one worker per GPU, pinned with CUDA_VISIBLE_DEVICES: all GPUs nvidia-smi lists, or a
                         list such as 0,1 (0+1 gives one worker both GPUs); overrides --workers
  --nvidia-smi PATH      the nvidia-smi used for --gpus all and resource reports (default: nvidia-smi on PATH)
  --node-modules DIR     where bare imports resolve from; repeatable
                         (default: node_modules of the current directory and of this package, with their parents)
  --cancel-grace-ms MS   time a cancelled job gets before its worker is killed (default ${D['cancel-grace-ms']})
  --client-timeout-ms MS a client silent this long has its jobs cancelled (default ${D['client-timeout-ms']}: ${Number(D['client-timeout-ms']) / 60_000} min)
  --client-grace-ms MS   a client whose connection closed has its running and queued jobs cancelled after this
                         long, unless it reconnects (default ${D['client-grace-ms']})
  --result-ttl-ms MS     how long a finished job's reply waits for a disconnected client (default ${D['result-ttl-ms']})
  --worker-max-old-space-mb MB  heap limit of each worker (default: node's)
  --exit-with-parent     shut down cleanly when stdin reaches EOF or the parent process changes (for a parent that
                         starts the agent with a pipe as stdin, so the agent ends with it even when it is killed)
  --ephemeral            remove --workdir when the agent stops (a private agent's temporary workdir)

Bounds (exceeding one is an error that names it):
  --disk-budget MB       snapshot storage kept before old snapshots are evicted (default ${D['disk-budget']})
  --max-message-mb MB    one value frame or upload archive, sent in 4 MiB pieces (default ${D['max-message-mb']}); no
                         frame on the wire exceeds 64 MiB, before authentication too
  --max-archive-mb MB    one upload archive (default ${D['max-archive-mb']})
  --max-file-mb MB       one file of a snapshot (default ${D['max-file-mb']})
  --max-snapshot-mb MB   all files of a snapshot (default ${D['max-snapshot-mb']})
  --max-files N          files in a snapshot (default ${D['max-files']})
  --max-jobs-per-client N  jobs running or queued per client (default ${D['max-jobs-per-client']})

Detached jobs (%remote --detach), kept in WORKDIR/jobs across agent restarts:
  --job-output-mb MB     the newest output kept per job (default ${D['job-output-mb']})
  --job-result-mb MB     the largest result kept; a larger one fails the job (default ${D['job-result-mb']})
  --job-ttl-hours H      an ended job is forgotten this long after it ended or was last fetched (default
                         ${D['job-ttl-hours']}: 7 days; decimals allowed)
  --jobs-disk-budget MB  results and output of ended jobs kept before the oldest are forgotten (default ${D['jobs-disk-budget']})
  --max-detached-jobs N  jobs kept in all (default ${D['max-detached-jobs']})

Keys:
  --keys DIR             encrypt and authenticate with DIR/agent.key and DIR/agent.pub (see keygen)
  --allow FILE           a client public key (.pub) admitted with --keys, or a directory of them; repeatable
  --allow-key=Z85        a client public key given as text (write the =: a key may start with -); repeatable.
                         Without --keys the agent makes a key pair for this run and prints its public key
                         (how launchers start agents for one session)
  --advertise HOST       the host name printed and written as the endpoint's (default: the bound address, or this
                         host's name when the bind is a wildcard such as tcp://0.0.0.0:*)
  --endpoint-file DIR    write DIR/<host>.json (endpoint, public key, workers, GPUs) while serving: for agents
                         started by a batch job, attached from a notebook with %remote_cluster attach DIR
  --insecure             allow a non-loopback --bind without keys (anyone who can reach the port can run code)
  -h, --help             show this help
  -v, --version          print the version`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
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
    if (error instanceof UsageError) return fail(TOOL, `${error.message}\n\n${USAGE}`);
    throw error;
  }
}

const TOOL = 'remote-agent';

/** serve's flags; keygen's are its own (serve takes no --out, keygen no --bind). */
const SERVE_OPTIONS = {
  bind: { type: 'string', default: D.bind },
  workdir: { type: 'string' },
  workers: { type: 'string', default: D.workers },
  gpus: { type: 'string' },
  'nvidia-smi': { type: 'string', default: D['nvidia-smi'] },
  'node-modules': { type: 'string', multiple: true },
  'disk-budget': { type: 'string', default: D['disk-budget'] },
  'max-message-mb': { type: 'string', default: D['max-message-mb'] },
  'max-archive-mb': { type: 'string', default: D['max-archive-mb'] },
  'max-file-mb': { type: 'string', default: D['max-file-mb'] },
  'max-snapshot-mb': { type: 'string', default: D['max-snapshot-mb'] },
  'max-files': { type: 'string', default: D['max-files'] },
  'max-jobs-per-client': { type: 'string', default: D['max-jobs-per-client'] },
  'cancel-grace-ms': { type: 'string', default: D['cancel-grace-ms'] },
  'client-timeout-ms': { type: 'string', default: D['client-timeout-ms'] },
  'client-grace-ms': { type: 'string', default: D['client-grace-ms'] },
  'result-ttl-ms': { type: 'string', default: D['result-ttl-ms'] },
  'job-output-mb': { type: 'string', default: D['job-output-mb'] },
  'job-result-mb': { type: 'string', default: D['job-result-mb'] },
  'job-ttl-hours': { type: 'string', default: D['job-ttl-hours'] },
  'jobs-disk-budget': { type: 'string', default: D['jobs-disk-budget'] },
  'max-detached-jobs': { type: 'string', default: D['max-detached-jobs'] },
  'worker-max-old-space-mb': { type: 'string' },
  insecure: { type: 'boolean', default: false },
  'exit-with-parent': { type: 'boolean', default: false },
  ephemeral: { type: 'boolean', default: false },
  keys: { type: 'string' },
  allow: { type: 'string', multiple: true },
  'allow-key': { type: 'string', multiple: true },
  advertise: { type: 'string' },
  'endpoint-file': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const KEYGEN_OPTIONS = {
  out: { type: 'string' },
  name: { type: 'string', default: KEYGEN_DEFAULTS.name },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

type Values<O extends ParseArgsConfig['options']> = ReturnType<
  typeof parseArgs<{ options: O; strict: true }>
>['values'];

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
  const workdir = path.resolve(values.workdir ?? defaultWorkdir());
  const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  let agent: Agent;
  try {
    agent = await Agent.start({
      bind,
      curve,
      workdir,
      workers: positiveInt(values.workers, '--workers'),
      gpus,
      nvidiaSmi: values['nvidia-smi'],
      nodePaths: values['node-modules']?.map((dir) => path.resolve(dir)) ?? defaultNodePaths(),
      limits: {
        diskBudgetBytes: megabytes(values['disk-budget'], '--disk-budget'),
        maxMessageBytes: megabytes(values['max-message-mb'], '--max-message-mb'),
        maxArchiveBytes: megabytes(values['max-archive-mb'], '--max-archive-mb'),
        maxFileBytes: megabytes(values['max-file-mb'], '--max-file-mb'),
        maxSnapshotBytes: megabytes(values['max-snapshot-mb'], '--max-snapshot-mb'),
        maxFiles: positiveInt(values['max-files'], '--max-files'),
        maxJobsPerClient: positiveInt(values['max-jobs-per-client'], '--max-jobs-per-client'),
      },
      cancelGraceMs: positiveInt(values['cancel-grace-ms'], '--cancel-grace-ms'),
      clientTimeoutMs: positiveInt(values['client-timeout-ms'], '--client-timeout-ms'),
      clientGraceMs: positiveInt(values['client-grace-ms'], '--client-grace-ms'),
      resultTtlMs: positiveInt(values['result-ttl-ms'], '--result-ttl-ms'),
      detached: {
        maxOutputBytes: megabytes(values['job-output-mb'], '--job-output-mb'),
        maxResultBytes: megabytes(values['job-result-mb'], '--job-result-mb'),
        ttlMs: hours(values['job-ttl-hours'], '--job-ttl-hours'),
        diskBudgetBytes: megabytes(values['jobs-disk-budget'], '--jobs-disk-budget'),
        maxJobs: positiveInt(values['max-detached-jobs'], '--max-detached-jobs'),
      },
      workerMaxOldSpaceMb: values['worker-max-old-space-mb']
        ? positiveInt(values['worker-max-old-space-mb'], '--worker-max-old-space-mb')
        : undefined,
      log,
    });
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
    `remote-agent ${PACKAGE_VERSION} (node ${process.version}), workdir ${workdir}, ${agent.info.workers} worker(s)` +
      (gpus ? `, pinned to GPU(s) ${gpus.join(' | ')}` : ''),
  );
  const why = await untilStopped(values['exit-with-parent']);
  // A parent that is gone no longer reads our stdout and stderr: writing the log there must not end us (EPIPE) before
  // the shutdown below has ended the workers and removed an ephemeral workdir.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  log(`shutting down (${why}): cancelling jobs and ending workers`);
  endpointFile?.remove();
  await agent.stop();
  if (values.ephemeral) fs.rmSync(workdir, { recursive: true, force: true });
  log('stopped');
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
  if (values.help) return print(USAGE);
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

function defaultWorkdir(): string {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'tslab-remote', 'agent');
}

/** The node_modules directories Node would search from the current directory and from this package. */
function defaultNodePaths(): string[] {
  const chain = (dir: string): string[] => {
    const dirs: string[] = [];
    for (let at = path.resolve(dir); ; at = path.dirname(at)) {
      if (path.basename(at) !== 'node_modules') dirs.push(path.join(at, 'node_modules'));
      if (path.dirname(at) === at) return dirs;
    }
  };
  const all = [...chain(process.cwd()), ...chain(PACKAGE_ROOT)];
  return [...new Set(all)].filter((dir) => fs.existsSync(dir));
}

function positiveInt(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0)
    throw new UsageError(`${flag} needs a positive whole number, got ${JSON.stringify(text)}`);
  return value;
}

function megabytes(text: string, flag: string): number {
  return positiveInt(text, flag) * MiB;
}

/** Hours, decimals allowed (0.01 is 36 s), as milliseconds. */
function hours(text: string, flag: string): number {
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value))
    throw new UsageError(`${flag} must be a positive number of hours, got ${JSON.stringify(text)}`);
  return Math.round(value * 3600_000);
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
