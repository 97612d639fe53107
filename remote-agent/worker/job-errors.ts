// How a job's failures are told: an interrupt, a package not installed on the agent (kept through causes), arguments
// that do not decode (the sender's fault), and a value that ran but cannot travel back.

import { AgentError, WireError } from '../../protocol/errors';
import { decodeValue } from '../../protocol/values';
import { notInstalledPackage } from './modules';

export function isInterrupt(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED';
}

/** The MODULE_NOT_INSTALLED mark survives conversion: on the error itself and on each cause. */
export function markNotInstalled(err: unknown, wire: WireError, depth = 0): void {
  if (notInstalledPackage(err) !== null) wire.code = 'MODULE_NOT_INSTALLED';
  if (wire.cause && err instanceof Error && depth < 8) markNotInstalled(err.cause, wire.cause, depth + 1);
}

/** Arguments that do not decode are the sender's fault, not the user's code's: say so with BAD_MESSAGE. */
export function decodeArguments(frames: Uint8Array[]): unknown {
  try {
    return decodeValue(frames);
  } catch (err) {
    throw new AgentError('BAD_MESSAGE', `the job's arguments could not be decoded: ${(err as Error).message}`);
  }
}

/**
 * The job ran, but its value cannot travel back (a function made on the agent, a socket...). Reported as a
 * PickleError with the path to the value and no stack: the agent's own frames say nothing about the user's value.
 */
export function unsendableResult(err: unknown): AgentError {
  const error = new AgentError(
    'UNPICKLABLE',
    `the job ran, but its return value cannot be sent back: ${(err as Error).message}`,
  );
  error.name = 'PickleError';
  error.stack = `${error.name}: ${error.message}`;
  return error;
}
