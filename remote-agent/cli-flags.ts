// remote-agent's command line: each command's flags with their defaults (taken from the agent's own), the usage
// text, and the agent options serve's flags make.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { parseArgs, ParseArgsConfig } from 'node:util';

import { UsageError } from '../common/cli';
import { PACKAGE_ROOT } from '../common/package-info';
import {
  AgentOptions,
  DEFAULT_AGENT_LIMITS,
  DEFAULT_CLIENT_GRACE_MS,
  DEFAULT_CLIENT_TIMEOUT_MS,
  DEFAULT_RESULT_TTL_MS,
} from './agent-options';
import { DEFAULT_DETACHED_LIMITS } from './detached/detached-jobs';
import { DEFAULT_CANCEL_GRACE_MS } from './pool/pool-options';
import { DEFAULT_STORE_LIMITS } from './store/snapshot-store';

const MiB = 1024 * 1024;
const mb = (bytes: number): string => String(bytes / MiB);

/** serve's defaults as flag text, from the agent's own defaults: the flags' defaults and the usage text's. */
const SERVE_DEFAULTS = {
  bind: 'tcp://127.0.0.1:5555',
  workers: '2',
  'nvidia-smi': 'nvidia-smi',
  'disk-budget': mb(DEFAULT_STORE_LIMITS.diskBudgetBytes),
  'max-message-mb': mb(DEFAULT_AGENT_LIMITS.maxMessageBytes),
  'max-archive-mb': mb(DEFAULT_AGENT_LIMITS.maxArchiveBytes),
  'max-file-mb': mb(DEFAULT_AGENT_LIMITS.maxFileBytes),
  'max-snapshot-mb': mb(DEFAULT_AGENT_LIMITS.maxSnapshotBytes),
  'max-files': String(DEFAULT_AGENT_LIMITS.maxFiles),
  'max-jobs-per-client': String(DEFAULT_AGENT_LIMITS.maxJobsPerClient),
  'cancel-grace-ms': String(DEFAULT_CANCEL_GRACE_MS),
  'client-timeout-ms': String(DEFAULT_CLIENT_TIMEOUT_MS),
  'client-grace-ms': String(DEFAULT_CLIENT_GRACE_MS),
  'result-ttl-ms': String(DEFAULT_RESULT_TTL_MS),
  'job-output-mb': mb(DEFAULT_DETACHED_LIMITS.maxOutputBytes),
  'job-result-mb': mb(DEFAULT_DETACHED_LIMITS.maxResultBytes),
  'job-ttl-hours': String(DEFAULT_DETACHED_LIMITS.ttlMs / 3600_000),
  'jobs-disk-budget': mb(DEFAULT_DETACHED_LIMITS.diskBudgetBytes),
  'max-detached-jobs': String(DEFAULT_DETACHED_LIMITS.maxJobs),
} as const;
const D = SERVE_DEFAULTS;
const KEYGEN_DEFAULTS = { name: 'agent' } as const;

const KEYGEN_HELP = `keygen creates a CurveZMQ key pair: NAME.pub (hand it to the other side) and NAME.key (secret, owner-only);
default DIR ~/.tslab-remote, NAME ${KEYGEN_DEFAULTS.name}.`;

export const KEYGEN_USAGE = `Usage: remote-agent keygen [--out DIR] [--name NAME]

${KEYGEN_HELP}`;

export const USAGE = `Usage: remote-agent serve [options]
       remote-agent keygen [--out DIR] [--name NAME]

serve runs code shipped from tslab-remote notebooks on this machine.
${KEYGEN_HELP}

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

/** serve's flags; keygen's are its own (serve takes no --out, keygen no --bind). */
export const SERVE_OPTIONS = {
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

export const KEYGEN_OPTIONS = {
  out: { type: 'string' },
  name: { type: 'string', default: KEYGEN_DEFAULTS.name },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export type Values<O extends ParseArgsConfig['options']> = ReturnType<
  typeof parseArgs<{ options: O; strict: true }>
>['values'];

type ServeValues = Values<typeof SERVE_OPTIONS>;

/** The agent options serve's flags set, besides keys, GPUs and logging; a malformed number is a UsageError. */
export function agentOptionsOf(values: ServeValues): Omit<AgentOptions, 'curve' | 'gpus' | 'log'> {
  return {
    bind: values.bind,
    workdir: path.resolve(values.workdir ?? defaultWorkdir()),
    workers: positiveInt(values.workers, '--workers'),
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
  };
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
