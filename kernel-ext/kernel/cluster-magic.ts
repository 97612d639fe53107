// Parsing of the pool's magics (the kernel side is cluster-magics.ts):
//
//   %remote_cluster slurm --nodes N [--gpus-per-node G] [--partition P] [--time T] [--agent-args ARGS] [-- SRUN_ARGS]
//   %remote_cluster ssh HOST[,HOST...] [--agent-command CMD]
//   %remote_cluster attach DIR        the agents a batch job wrote to DIR (remote-agent serve --endpoint-file DIR)
//   %remote_cluster down              stop what %remote_cluster started and empty the pool
//   %remote_cluster                   list the pool (as %remote_agent does)
//   %remote_agent add NAME ENDPOINT [--key DIR]
//
// Values may be quoted ('...' or "...") to hold blanks, as in the other magics; nothing is expanded. After `--` of
// the slurm form, every word goes to srun as written. --agent-args are more `remote-agent serve` flags, one quoted
// value split at blanks (`--agent-args "--workers 4"`).

import { checkNothingAfter, splitFlag, splitWords } from './magic-args';
import { MagicSyntaxError } from './magic-types';

export type ClusterMagic = { kind: 'cluster' } & (
  | {
      action: 'slurm';
      nodes: number;
      gpusPerNode?: number;
      partition?: string;
      time?: string;
      agentArgs?: string[];
      srunArgs: string[];
    }
  | { action: 'ssh'; hosts: string[]; agentCommand?: string }
  | { action: 'attach'; dir: string }
  | { action: 'down' }
  | { action: 'list' }
);

export interface AgentAddMagic {
  kind: 'agent-add';
  name: string;
  endpoint: string;
  key?: string;
}

export const CLUSTER_USAGE = {
  slurm:
    '%remote_cluster slurm --nodes N [--gpus-per-node G] [--partition P] [--time T] [--agent-args ARGS] [-- SRUN_ARGS]',
  ssh: '%remote_cluster ssh HOST[,HOST...] [--agent-command CMD]',
  attach: '%remote_cluster attach DIR',
  down: '%remote_cluster down',
  add: '%remote_agent add NAME ENDPOINT [--key DIR]',
};

const ALL_USAGE = Object.values(CLUSTER_USAGE).slice(0, 4).join('\n  ');

/** `%remote_cluster ...`: `args` is the text after the magic's word on its line. */
export function parseCluster(code: string, at: number, lineEnd: number): ClusterMagic {
  checkNothingAfter(code, lineEnd, '%remote_cluster');
  const all = splitWords(code.slice(at, lineEnd), '%remote_cluster');
  const [action, ...words] = all;
  switch (action) {
    case undefined:
      return { kind: 'cluster', action: 'list' };
    case 'slurm':
      return parseSlurm(words);
    case 'ssh':
      return parseSsh(words);
    case 'attach':
      if (words.length !== 1 || words[0]!.startsWith('--'))
        throw new MagicSyntaxError(`attach takes one directory: ${CLUSTER_USAGE.attach}`);
      return { kind: 'cluster', action: 'attach', dir: words[0]! };
    case 'down':
      if (words.length > 0)
        throw new MagicSyntaxError(`down takes nothing more, got ${words.join(' ')}: ${CLUSTER_USAGE.down}`);
      return { kind: 'cluster', action: 'down' };
    default:
      throw new MagicSyntaxError(`unknown %remote_cluster action ${action}; the forms are:\n  ${ALL_USAGE}`);
  }
}

function parseSlurm(words: string[]): ClusterMagic {
  const dashDash = words.indexOf('--');
  const own = dashDash < 0 ? words : words.slice(0, dashDash);
  const srunArgs = dashDash < 0 ? [] : words.slice(dashDash + 1);
  const options = readOptions(
    own,
    ['--nodes', '--gpus-per-node', '--partition', '--time', '--agent-args'],
    CLUSTER_USAGE.slurm,
  );
  if (options['--nodes'] === undefined)
    throw new MagicSyntaxError(`slurm needs --nodes N, the number of nodes to start agents on: ${CLUSTER_USAGE.slurm}`);
  const nodes = count('--nodes', options['--nodes']);
  const gpus = options['--gpus-per-node'];
  return {
    kind: 'cluster',
    action: 'slurm',
    nodes,
    ...(gpus !== undefined ? { gpusPerNode: count('--gpus-per-node', gpus) } : {}),
    ...(options['--partition'] !== undefined ? { partition: options['--partition'] } : {}),
    ...(options['--time'] !== undefined ? { time: options['--time'] } : {}),
    ...(options['--agent-args'] !== undefined
      ? { agentArgs: options['--agent-args'].split(/\s+/).filter(Boolean) }
      : {}),
    srunArgs,
  };
}

function parseSsh(words: string[]): ClusterMagic {
  const hostWords: string[] = [];
  const optionWords: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (!word.startsWith('--')) hostWords.push(word);
    else {
      optionWords.push(word);
      if (!word.includes('=') && i + 1 < words.length) optionWords.push(words[++i]!);
    }
  }
  const options = readOptions(optionWords, ['--agent-command'], CLUSTER_USAGE.ssh);
  if (hostWords.length !== 1) {
    throw new MagicSyntaxError(
      hostWords.length === 0
        ? `ssh needs the hosts: ${CLUSTER_USAGE.ssh}`
        : `give the hosts as one list separated by commas, got ${hostWords.join(' ')}: ${CLUSTER_USAGE.ssh}`,
    );
  }
  const hosts = hostWords[0]!.split(',');
  if (hosts.some((h) => h === ''))
    throw new MagicSyntaxError(`an empty host name in ${hostWords[0]}: ${CLUSTER_USAGE.ssh}`);
  const agentCommand = options['--agent-command'];
  return { kind: 'cluster', action: 'ssh', hosts, ...(agentCommand !== undefined ? { agentCommand } : {}) };
}

/** `%remote_agent add ...` when the words after %remote_agent (from `at` to the line's end) start with `add`. */
export function parseAgentAddLine(code: string, at: number, lineEnd: number): AgentAddMagic | undefined {
  if (!/^\s+add(?:\s|$)/.test(code.slice(at, lineEnd))) return undefined;
  checkNothingAfter(code, lineEnd, '%remote_agent');
  return parseAgentAdd(splitWords(code.slice(at, lineEnd), '%remote_agent').slice(1));
}

/** `%remote_agent add NAME ENDPOINT [--key DIR]`: `words` are the words after `add`. */
export function parseAgentAdd(words: string[]): AgentAddMagic {
  const positional: string[] = [];
  let key: string | undefined;
  for (let i = 0; i < words.length; i++) {
    const [flag, inline] = splitFlag(words[i]!);
    if (flag === '--key' || flag === '--keys') {
      const value = inline ?? words[++i];
      if (!value || value.startsWith('--')) throw new MagicSyntaxError(`--key needs a directory: ${CLUSTER_USAGE.add}`);
      if (key !== undefined) throw new MagicSyntaxError(`--key given twice: ${CLUSTER_USAGE.add}`);
      key = value;
    } else if (flag.startsWith('--')) throw new MagicSyntaxError(`unknown option ${flag}: ${CLUSTER_USAGE.add}`);
    else positional.push(flag);
  }
  if (positional.length !== 2)
    throw new MagicSyntaxError(
      `add takes a name and an endpoint, got ${positional.length === 0 ? 'none' : positional.join(' ')}: ${CLUSTER_USAGE.add}`,
    );
  const [name, endpoint] = positional as [string, string];
  if (/^(tcp|ipc|inproc):\/\//.test(name))
    throw new MagicSyntaxError(`the name comes first, then the endpoint: ${CLUSTER_USAGE.add}`);
  if (!/^[\w.@-]+$/.test(name))
    throw new MagicSyntaxError(`agent names are letters, digits and . _ - @ (used in --on NAME), got ${name}`);
  if (!/^(tcp|ipc|inproc):\/\//.test(endpoint))
    throw new MagicSyntaxError(`${endpoint} is not a ZeroMQ endpoint (like tcp://gpu1:5555): ${CLUSTER_USAGE.add}`);
  return { kind: 'agent-add', name, endpoint, ...(key !== undefined ? { key } : {}) };
}

/** `--flag VALUE` or `--flag=VALUE` for the flags allowed, each at most once; nothing else. */
function readOptions(words: string[], allowed: string[], usage: string): Record<string, string | undefined> {
  const values: Record<string, string | undefined> = {};
  for (let i = 0; i < words.length; i++) {
    const [flag, inline] = splitFlag(words[i]!);
    if (!allowed.includes(flag)) {
      throw new MagicSyntaxError(
        flag.startsWith('--') ? `unknown option ${flag}: ${usage}` : `unexpected ${flag}: ${usage}`,
      );
    }
    const value = inline ?? words[++i];
    // Agent flags are the one value that starts with `--` (quoted: `--agent-args "--workers 4"`).
    if (value === undefined || (value.startsWith('--') && flag !== '--agent-args'))
      throw new MagicSyntaxError(`${flag} needs a value: ${usage}`);
    if (values[flag] !== undefined) throw new MagicSyntaxError(`${flag} given twice: give it once: ${usage}`);
    values[flag] = value;
  }
  return values;
}

function count(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 100_000)
    throw new MagicSyntaxError(`${flag} needs a whole number from 1, got ${value}`);
  return n;
}
