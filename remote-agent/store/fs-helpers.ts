// File system helpers of the snapshot store: the concurrency bound, error classification, and the messages made from
// file system failures.

import { lstat as lstatCallback, promises as fs, Stats } from 'node:fs';

import { AgentError } from '../../protocol/errors';
import { agentError } from '../archive';

/** File system operations in flight at once: enough to hide syscall latency, few enough not to starve libuv. */
export const FS_CONCURRENCY = 32;

/** At most `limit` tasks at once across all callers; the others wait their turn in order. */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next)
        next(); // the slot passes on
      else this.active--;
    }
  }
}

/** ENOSPC or EDQUOT, on the error or anywhere down its cause chain. */
export function isDiskFull(error: unknown): boolean {
  return hasErrorCode(error, 'ENOSPC') || hasErrorCode(error, 'EDQUOT');
}

/** Whether the error, or one down its cause chain, is a system error with this code. */
export function hasErrorCode(error: unknown, code: string): boolean {
  for (let at: unknown = error, depth = 0; at instanceof Error && depth < 5; at = at.cause, depth++) {
    if ((at as NodeJS.ErrnoException).code === code) return true;
  }
  return false;
}

/**
 * A manifest path that passed the length rules but is still too long once placed under the agent's workdir: the
 * client's to fix (shorter paths), not the operator's. Names the path as the manifest spells it, not the agent's.
 */
export function nameTooLong(error: unknown): AgentError {
  const relative = (error as { manifestPath?: string }).manifestPath;
  const what = relative === undefined ? 'a path of the snapshot' : `path ${JSON.stringify(relative)}`;
  return agentError(
    'UNSAFE_ARCHIVE',
    `${what} is too long for the agent's file system once placed in its snapshot directory: shorten the path, or ` +
      'exclude the file from the code root',
    relative === undefined ? {} : { path: relative },
  );
}

/** Rethrows a file system error tagged with the manifest path it concerns, for the messages made from it. */
export function throwFor(manifestPath: string, error: unknown): never {
  throw Object.assign(error as Error, { manifestPath });
}

/** A file system failure the client cannot fix: the agent's operator must look at the workdir. */
export function fsFailure(what: string, cause: unknown): AgentError {
  return new AgentError(
    'INTERNAL',
    `the snapshot store could not ${what} (${(cause as Error).message}): check the agent's workdir (free space, ` +
      'permissions, a file system that supports hard links and rename)',
    { cause },
  );
}

/** lstat through the callback API, about twice as fast as fs.promises over thousands of calls; undefined if absent. */
export function quickLstat(file: string): Promise<Stats | undefined> {
  return new Promise((resolve, reject) =>
    lstatCallback(file, (error, stat) => {
      if (!error) resolve(stat);
      else if (error.code === 'ENOENT') resolve(undefined);
      else reject(fsFailure(`inspect ${file}`, error));
    }),
  );
}

export async function statOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsFailure(`inspect ${file}`, error);
  }
}

export function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
