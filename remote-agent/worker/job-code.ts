// A job's code made runnable. A source job's function expression is compiled once per (source, file name), in a
// wrapper that gives it CommonJS's `require` and `module`; and the synchronous part of every job runs inside a vm
// script with `breakOnSigint`, so the pool's SIGINT stops even `while (true) {}` and the worker lives on.

import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as vm from 'node:vm';

import { DYNAMIC_IMPORT } from '../../pickle/dynamic-import';
import { AgentError } from '../../protocol/errors';
import { TRAMPOLINE_FILENAME } from './stack';

/** Compiled job wrappers kept per worker (oldest dropped first). */
const WRAPPER_CACHE_SIZE = 256;
const ENTER = Symbol.for('tslab-remote.enter');

export class JobCode {
  private readonly trampoline = new vm.Script(`globalThis[Symbol.for('tslab-remote.enter')]()`, {
    filename: TRAMPOLINE_FILENAME,
  });
  private readonly wrappers = new Map<string, vm.Script>();

  /** Runs `thunk` inside a vm script with breakOnSigint, so a SIGINT throws ERR_SCRIPT_EXECUTION_INTERRUPTED. */
  interruptible<T>(thunk: () => T): T {
    Object.defineProperty(globalThis, ENTER, { value: thunk, configurable: true, enumerable: false });
    try {
      return this.trampoline.runInThisContext({ breakOnSigint: true, displayErrors: false }) as T;
    } finally {
      delete (globalThis as Record<symbol, unknown>)[ENTER];
    }
  }

  /** Evaluates a source job's function expression as the file `filename` and calls it with the arguments. */
  runSource(source: string, filename: string, args: readonly unknown[]): unknown {
    const wrapper = this.compile(source, filename);
    const jobRequire = createRequire(filename);
    const jobModule = { id: filename, filename, exports: {}, require: jobRequire, loaded: true };
    return this.interruptible(() => {
      const make: unknown = wrapper.runInThisContext({ displayErrors: false });
      if (typeof make !== 'function') throw new AgentError('INTERNAL', 'job wrapper did not evaluate to a function');
      // eslint-disable-next-line @typescript-eslint/no-unsafe-call -- the wrapper is the job's own compiled code
      const fn: unknown = make(jobRequire, jobModule, jobModule.exports, filename, path.dirname(filename));
      if (typeof fn !== 'function')
        throw new TypeError(`the job's code must be a function expression; it evaluated to ${typeof fn}`);
      return (fn as (...a: unknown[]) => unknown)(...args);
    });
  }

  /** Drops the wrappers compiled for files outside `root`: other snapshots' would pile up over many edits. */
  forgetOutside(root: string): void {
    for (const key of this.wrappers.keys()) if (!key.startsWith(root)) this.wrappers.delete(key);
  }

  /** Compiles once per (source, file name): repeated calls of one function skip V8's parse. */
  private compile(source: string, filename: string): vm.Script {
    const key = `${filename}\0${source}`;
    let script = this.wrappers.get(key);
    if (!script) {
      script = new vm.Script(
        `(function (require, module, exports, __filename, __dirname) { return (\n${source}\n); })`,
        { filename, lineOffset: -1, ...DYNAMIC_IMPORT },
      );
      if (this.wrappers.size >= WRAPPER_CACHE_SIZE) this.wrappers.delete(this.wrappers.keys().next().value!);
      this.wrappers.set(key, script);
    }
    return script;
  }
}
