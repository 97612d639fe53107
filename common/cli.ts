// What both command-line tools (remote-agent, tslab-remote) share: the usage error, flag parsing that raises it,
// and printing a result or a failure with the tool's name in front.

import { parseArgs, ParseArgsConfig } from 'node:util';

/** A mistake in the command line: reported with the usage text, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** node:util's parseArgs, its errors as UsageError. */
export function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Prints `text` to stdout; exit code 0. */
export function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}

/** Prints `tool: message` to stderr; returns the exit code (2, a usage error, unless given). */
export function fail(tool: string, message: string, code = 2): number {
  process.stderr.write(`${tool}: ${message}\n`);
  return code;
}
