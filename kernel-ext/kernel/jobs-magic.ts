// %remote_jobs, %remote_attach and %remote_cancel, parsed: the magics of detached jobs (detached-magics.ts runs them).
//
//   %remote_jobs [--agent A]                      the detached jobs of this key on the current agent(s)
//   %remote_attach JOB [VAR[: TYPE]] [--agent A]  replay JOB's output, follow it, show its result (or assign VAR)
//   %remote_cancel JOB [--agent A]                cancel JOB
//
// JOB is a job's id or name. TYPE is any TypeScript type (`model: Model`, `rows: Map<string, number[]>`); without
// it VAR is `any`.

import { checkNothingAfter } from './magic-args';
import { MagicSyntaxError, USAGE } from './magic-types';

export type JobsMagic =
  | { kind: 'jobs'; agent?: string }
  | { kind: 'attach'; job: string; assign?: { name: string; type?: string }; agent?: string }
  | { kind: 'cancel'; job: string; agent?: string };

const JOB = /^[\w.@-]{1,128}$/;
const ASSIGN = /^([A-Za-z_$][\w$]*)\s*(?::\s*(\S[\s\S]*))?$/;

export function parseJobsMagic(
  word: '%remote_jobs' | '%remote_attach' | '%remote_cancel',
  code: string,
  at: number,
  lineEnd: number,
): JobsMagic {
  checkNothingAfter(code, lineEnd, word);
  const usage = word === '%remote_jobs' ? USAGE.jobs : word === '%remote_attach' ? USAGE.attach : USAGE.cancel;
  const { agent, rest } = takeAgent(code.slice(at, lineEnd), usage);
  if (word === '%remote_jobs') {
    if (rest !== '') throw new MagicSyntaxError(`unexpected ${JSON.stringify(rest)}: ${usage}`);
    return { kind: 'jobs', ...(agent ? { agent } : {}) };
  }
  const job = /^\S+/.exec(rest)?.[0];
  if (job === undefined)
    throw new MagicSyntaxError(`${word} needs the id or name of a job (%remote_jobs lists them): ${usage}`);
  if (!JOB.test(job))
    throw new MagicSyntaxError(`${job} is not a job id or name (letters, digits and . _ @ -): ${usage}`);
  const after = rest.slice(job.length).trim();
  if (word === '%remote_cancel') {
    if (after !== '')
      throw new MagicSyntaxError(`one job at a time, got ${JSON.stringify(after)} after ${job}: ${usage}`);
    return { kind: 'cancel', job, ...(agent ? { agent } : {}) };
  }
  if (after === '') return { kind: 'attach', job, ...(agent ? { agent } : {}) };
  const assign = ASSIGN.exec(after);
  if (!assign)
    throw new MagicSyntaxError(
      `after the job comes the variable that takes its result, as VAR or VAR: TYPE; got ${JSON.stringify(after)}: ${usage}`,
    );
  const [, name, type] = assign;
  return {
    kind: 'attach',
    job,
    assign: { name: name!, ...(type ? { type: type.trim() } : {}) },
    ...(agent ? { agent } : {}),
  };
}

/** `--agent A` anywhere among the words; the rest as written (a TYPE may hold blanks). */
function takeAgent(text: string, usage: string): { agent?: string; rest: string } {
  const match = /(^|\s)--agent(?:=|\s+)(\S+)/.exec(text);
  if (!match) {
    const unknown = /(^|\s)(--[^\s=]+)/.exec(text);
    if (unknown) throw new MagicSyntaxError(`unknown option ${unknown[2]}: ${usage}`);
    return { rest: text.trim() };
  }
  return {
    agent: match[2]!,
    rest: (text.slice(0, match.index) + ' ' + text.slice(match.index + match[0].length)).trim(),
  };
}
