// What to tell a user whose job's worker died: how it died (an uncaught exception the worker reported, out of
// memory, a signal, an exit code) and the last lines it wrote to stderr, without V8's native stack noise.

import type { WireError } from '../protocol/errors';
import { checkWireError } from '../protocol/validate';

/** What a dying worker reported through stderr before exiting (see worker/main.ts `fatal`). */
export interface FatalReport {
  origin: string;
  error: WireError;
}

export interface ExitFacts {
  index: number;
  /** The process could not be started at all (spawn EMFILE, ENOMEM, ...). */
  spawnError?: Error | null;
  fatal: FatalReport | null;
  stderrTail: readonly string[];
  heapLimitMb: number | null;
  maxOldSpaceMb?: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** "crashed on an uncaught exception (...)", "ran out of memory (...)", "was killed by signal ...", "exited with code ...". */
export function describeExit(facts: ExitFacts): string {
  if (facts.spawnError) return `could not be started (${facts.spawnError.message})`;
  if (facts.fatal) {
    const kind =
      facts.fatal.origin === 'unhandledRejection' ? 'an unhandled promise rejection' : 'an uncaught exception';
    return `crashed on ${kind} (${facts.fatal.error.name}: ${facts.fatal.error.message})`;
  }
  const tail = facts.stderrTail.join('\n');
  if (/FATAL ERROR/.test(tail) && /heap limit|heap out of memory/i.test(tail)) {
    return `ran out of memory (heap limit ${facts.maxOldSpaceMb ?? facts.heapLimitMb ?? '?'} MB)`;
  }
  if (facts.signal) return `was killed by signal ${facts.signal}`;
  return `exited with code ${facts.code ?? '?'}`;
}

/** The WORKER_CRASHED error for the job that was running; an uncaught exception becomes its cause, with its stack. */
export function crashError(facts: ExitFacts, job: string, what: string): WireError {
  const message =
    `worker ${facts.index} ${what} while running job ${job}; it is being restarted and its module state was lost` +
    stderrTailText(facts.stderrTail);
  const error: WireError = {
    code: 'WORKER_CRASHED',
    name: 'WorkerCrashed',
    message,
    props: { worker: facts.index, exitCode: facts.code, signal: facts.signal, stderr: [...facts.stderrTail] },
  };
  if (facts.fatal) {
    const frames = (facts.fatal.error.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line));
    error.stack = [`WorkerCrashed: ${message.split('\n')[0]}`, ...frames].join('\n');
    error.cause = facts.fatal.error;
  }
  return error;
}

/** V8's native stack trace after a fatal error is noise to the user: keep the lines that say what happened. */
export function stderrTailText(tail: readonly string[]): string {
  const lines = tail
    .filter((line) => line.trim() !== '' && !/^\s*\d+: 0x[0-9a-f]+|Native stack trace/.test(line))
    .slice(-20);
  return lines.length > 0 ? `\nLast stderr lines of the worker:\n${lines.join('\n')}` : '';
}

export function parseFatal(text: string): FatalReport | null {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) return null;
    const o = value as Record<string, unknown>;
    return {
      origin: typeof o.origin === 'string' ? o.origin : 'uncaughtException',
      error: checkWireError(o.error, 'fatal report error'),
    };
  } catch {
    return null; // a garbled report: the exit code and stderr tail still describe the crash
  }
}
