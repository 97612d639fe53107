// Code compiled with `vm.Script` (a job's function, unpickled functions) has no loader for `import()` unless the
// script is given one: this is Node's own, the one files get, so `await import('./lib.js')` resolves from the
// script's file name like a `require` does, ES modules of the snapshot included.

import * as vm from 'node:vm';

/** Where a Script is made: its options for `import()`. Empty on a Node without the constant (older 20.x). */
export const DYNAMIC_IMPORT: Pick<vm.ScriptOptions, 'importModuleDynamically'> = vm.constants
  ?.USE_MAIN_CONTEXT_DEFAULT_LOADER
  ? { importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER }
  : {};

/** Node flags the loader as experimental on first use; that warning concerns us, not the user's code. */
function isDynamicImportWarning(warning: Error): boolean {
  return warning.name === 'ExperimentalWarning' && warning.message.includes('USE_MAIN_CONTEXT_DEFAULT_LOADER');
}

/** Hides that warning in this process (Node prints warnings through a 'warning' listener of its own). Idempotent. */
export function hideDynamicImportWarning(): void {
  if (hidden) return;
  hidden = true;
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (!isDynamicImportWarning(warning)) for (const print of printers) print(warning);
  });
}

let hidden = false;
