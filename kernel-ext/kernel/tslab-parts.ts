// tslab's own pieces, reached by deep requires of `tslab/dist/*` (tslab has no plugin API; we build what its
// startKernel builds and never patch its files), with the types we use from them.

import * as path from 'node:path';

import type { Converter, ConverterOptions } from 'tslab/dist/converter';
import type { ConsoleInterface, ConverterSet, Executor } from 'tslab/dist/executor';
import type * as jupyterModule from 'tslab/dist/jupyter';

export type { Converter, ConverterSet, Executor, ConsoleInterface };

export const TSLAB_DIR = path.dirname(require.resolve('tslab/package.json'));

export const converterModule = require('tslab/dist/converter') as {
  createConverter(options?: ConverterOptions): Converter;
  isCompleteCode(content: string): { completed: boolean; indent?: string };
};
export const executorModule = require('tslab/dist/executor') as {
  createExecutor(rootDir: string, convs: ConverterSet, console: ConsoleInterface): Executor;
};
/** Its `lastWriteDisplayData` is what tslab's display API writes to: set per execution. */
export const jupyter = require('tslab/dist/jupyter') as typeof jupyterModule & {
  lastWriteDisplayData: ((data: DisplayData, update: boolean) => void) | null;
};
export const tslabVersion = (require('tslab/package.json') as { version: string }).version;

export interface DisplayData {
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  transient?: { display_id?: string };
}

/** The TypeScript that tslab compiles cells with (its own 5.0 fork): same parser and printer as the cells get. */
export function tslabTypeScript(): typeof import('typescript') {
  const id = require.resolve('@tslab/typescript-for-tslab', { paths: [TSLAB_DIR] });
  return require(id) as typeof import('typescript');
}

/** Node's vm module itself (not a copy of its exports), whose runInThisContext tslab's executor calls. */
const nodeVm = require('node:vm') as typeof import('node:vm');

/**
 * Calls `run` (synchronously) with tslab's `vm.runInThisContext` not arming breakOnSigint. tslab runs every cell with
 * it, and for that run Node takes the process's SIGINT listeners off: a SIGINT caught while the cell was
 * type-checked, just before, is then dropped (libuv hands it to the listener's handle, closed meanwhile), and the
 * kernel never hears of the interrupt. For the kernel's own cell of a magic, which only creates the function to
 * call, breakOnSigint buys nothing; there, the interrupt must be heard.
 */
export function withoutBreakOnSigint<T>(run: () => T): T {
  const original = nodeVm.runInThisContext;
  nodeVm.runInThisContext = (code, options) =>
    original(
      code,
      typeof options === 'string' ? { filename: options } : { ...options, breakOnSigint: false },
    ) as unknown;
  try {
    return run();
  } finally {
    nodeVm.runInThisContext = original;
  }
}
