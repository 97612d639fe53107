// The magics' parsed form, their error and their usage lines (magic.ts parses).

import type { AgentAddMagic, ClusterMagic } from './cluster-magic';
import type { JobsMagic } from './jobs-magic';

export interface RemoteOptions {
  /** `--timeout SECONDS`, as milliseconds. */
  timeoutMs?: number;
  /** `--agent NAME_OR_ENDPOINT`. */
  agent?: string;
  /** `--on NAME`: one agent of the pool. */
  on?: string;
  /** `--all`: every agent of the pool. */
  all?: boolean;
  /** `--detach`: a detached job, which outlives the kernel. */
  detach?: boolean;
  /** `--name NAME` of a detached job. */
  name?: string;
}

export type Magic =
  | { kind: 'typescript' }
  | {
      kind: 'remote';
      options: RemoteOptions;
      /** `NAME = EXPR`: the notebook variable that receives the result. */
      assign?: string;
      expr: string;
      /** TypeScript that evaluates to `() => (EXPR)`, with EXPR at its original line and column. */
      fnSource: string;
      /** Set when the head is longer than the text before EXPR on its line (`%remote await f()`). */
      inserted?: Insertion;
      async: boolean;
      /** Where the user's code starts in the cell and in fnSource (for completion and inspection). */
      userStart: number;
      sourceStart: number;
    }
  | {
      kind: 'remote-cell';
      options: RemoteOptions;
      body: string;
      fnSource: string;
      /** Where `return ` was put in front of the last expression (0-based line and column of fnSource). */
      inserted?: Insertion;
      userStart: number;
      sourceStart: number;
      /** Offset in the cell where `return ` was inserted. */
      insertedAt?: number;
    }
  | { kind: 'agent'; endpoint?: string; key?: string; name?: string; local: boolean }
  | { kind: 'root'; dir?: string }
  /** `%remote_reload [FILE ...]`: files relative to the notebook; none for every module. */
  | { kind: 'reload'; files: string[] }
  | ClusterMagic
  | AgentAddMagic
  | JobsMagic;

/** Text the kernel inserted into the user's line: positions after it are `length` columns to the right. */
export interface Insertion {
  line: number;
  column: number;
  length: number;
}

export class MagicSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MagicSyntaxError';
  }
}

export const USAGE = {
  remote:
    '%remote [--timeout SECONDS] [--agent NAME_OR_ENDPOINT | --on NAME | --all] [--detach [--name NAME]] [NAME =] EXPRESSION',
  cell: '%%remote [--timeout SECONDS] [--agent NAME_OR_ENDPOINT | --on NAME | --all] [--detach [--name NAME]] (on the first line; the rest of the cell runs remotely)',
  agent:
    '%remote_agent [ENDPOINT] [--key DIR] [--name NAME] | %remote_agent --local | %remote_agent add NAME ENDPOINT [--key DIR]',
  root: '%remote_root [DIR]',
  reload: '%remote_reload [FILE ...]',
  cluster: '%remote_cluster slurm|ssh|attach|down ...',
  jobs: '%remote_jobs [--agent NAME_OR_ENDPOINT]',
  attach: '%remote_attach JOB [VAR[: TYPE]] [--agent NAME_OR_ENDPOINT]',
  cancel: '%remote_cancel JOB [--agent NAME_OR_ENDPOINT]',
};
