// Jobs whose code is a pickled call (code.kind 'pickle'): rebuild `[function, ...arguments]` inside the job's
// snapshot, and pickle the result so instances of local classes go back as such. The pickle format and its
// decoder live in pickle/, shared with the kernel.

import * as fs from 'node:fs';
import { createRequire } from 'node:module';

import { AgentError } from '../../protocol/errors';
import { pickleResult, requireFromRoot, unpickle, UnpickleError } from '../../pickle';

export interface PickledCall {
  fn: (...args: unknown[]) => unknown;
  args: unknown[];
}

/**
 * Rebuilds the call; module references resolve inside `root` (the snapshot directory, or the worker's directory
 * when the job has no snapshot). A version mismatch between the notebook's package and the agent's is reported
 * through `warn`, once per package.
 */
export function unpickleCall(
  frames: readonly Uint8Array[],
  root: string,
  filename: string,
  warn: (text: string) => void,
): PickledCall {
  let call: unknown;
  try {
    call = unpickle(frames, {
      requireModule: requireFromRoot(root),
      require: createRequire(filename) as (id: string) => unknown,
      filename,
      onVersionMismatch: (name, expected, installed) =>
        warn(
          `tslab-remote: package ${name} is ${installed ?? 'not installed'} on the agent, ${expected} in the notebook\n`,
        ),
    });
  } catch (err) {
    if (err instanceof UnpickleError) {
      throw new AgentError('UNPICKLABLE', `the agent could not rebuild the call: ${err.message}`, { cause: err });
    }
    throw err; // a module that is not installed keeps its own error (MODULE_NOT_INSTALLED)
  }
  if (!Array.isArray(call) || typeof call[0] !== 'function') {
    throw new AgentError('BAD_MESSAGE', 'a pickled call must hold [function, ...arguments]');
  }
  const [fn, ...args] = call as [PickledCall['fn'], ...unknown[]];
  return { fn, args };
}

/** The result of a pickled call, pickled; local modules are referenced by their path inside the snapshot. */
export function pickleCallResult(value: unknown, root: string | null): Uint8Array[] {
  return pickleResult(value, root ? { codeRoot: fs.realpathSync(root) } : {});
}
