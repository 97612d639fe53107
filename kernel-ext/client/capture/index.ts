// The kernel's pickler: `pickle(value, context)` turns what a `%remote` call needs (functions with their closures,
// classes, instances, data, module references) into frames for the agent; pickle/'s `unpickle` turns them
// back into values on the worker. Results come back through pickle/'s `pickleResult` (functions and classes made on
// the agent by value, through the same capture); unpickle them here with `localClasses: localRegistry`, so
// instances of notebook classes come back as instances of those classes. See pickle/format.ts for the format and
// docs/protocol.md for the whole picture.
//
// What travels how:
//   plain data             v8 serializer semantics (cycles, sharing, Map, Set, Date, RegExp, BigInt, Error with
//                          cause and own props, undefined, holes); typed arrays at or above `outOfBandBytes` as
//                          frames of their own, never copied into the body
//   functions, classes     by value: source plus captured variables (pickle/capture), recursively; static state and
//                          extra prototype members as own props; bound functions as target + this + args
//   class instances        own state plus a reference to their class (by value, by module reference, or a global)
//   modules                by reference: builtins and packages by name (+ version), code-root files by path
//   standard globals       by reference (Math.max, console, Symbol.iterator, Error.prototype)
//   cannot travel          PickleError before anything is sent, naming the path (`f → captured cfg → .conn`)
//
// Choices, stated once:
//   - A captured variable travels with its value at pickle time; later reassignments are not seen, and mutations
//     the remote code makes to captured objects do not flow back (the result is the way back).
//   - Instances with `#private` members fail (PickleError naming the class and the members): private fields
//     cannot be read from outside their class, and silently dropping them would break the instance's methods.
//     A class's own static `#private` fields travel with their current values.
//   - An arrow function that uses the `this` of its creator travels only when found as an object's own property
//     (a class-field arrow: `this` is that object); elsewhere it fails with a PickleError.
//   - A method that uses `super` travels standalone with `super` meaning Object.prototype; as part of its class
//     (the usual case) it is recreated by the class source and keeps its real `super`.

import { DEFAULT_OUT_OF_BAND_BYTES } from '../../../protocol/values';
import { Encoder, ModuleRef, moduleIndexFor, requireFromRoot } from '../../../pickle';
import { Capture } from '../../../pickle/capture/capture';
import { closureInspector } from '../../../pickle/capture/inspect';
import { scopeProbe } from '../../../pickle/capture/scope-probe';
import { localRegistry } from './registry';

export { localRegistry, LocalRegistry } from './registry';
export { analyzeSource, Analysis } from '../../../pickle/capture/analyze';
export { PickleError } from '../../../pickle';

export interface PickleContext {
  /** Notebook locals: tslab rewrites earlier cells' names to `exports.NAME`; a free `exports` in a function's source means these. */
  locals?: Record<string, unknown>;
  /** Absolute code root: modules whose file lies inside it travel as a require of that relative path inside the snapshot. */
  codeRoot?: string;
  /** Threshold for out-of-band typed arrays (default: protocol/values.ts DEFAULT_OUT_OF_BAND_BYTES). */
  outOfBandBytes?: number;
  /** First segment of error paths (the expression's name, e.g. 'f'); default: a function's name, else 'value'. */
  label?: string;
}

/** Pickles `value` into [body, ...out-of-band buffers]; throws PickleError (code 'UNPICKLABLE') for what cannot travel. */
export function pickle(value: unknown, context: PickleContext = {}): Uint8Array[] {
  return withEncoder(context, (encoder) => encoder.pickle(value, context.label ?? defaultLabel(value)));
}

/**
 * Pickles a call `fn(...args)` as one pickle (values shared between the function's captures and the arguments
 * stay shared); it unpickles to `[fn, ...args]`. Error paths start with the function's name (or context.label)
 * for the function and with `argument N` for the arguments.
 */
export function pickleCall(fn: Function, args: readonly unknown[], context: PickleContext = {}): Uint8Array[] {
  const roots = [
    { value: fn, label: context.label ?? defaultLabel(fn) },
    ...args.map((value, i) => ({ value, label: `argument ${i}` })),
  ];
  return withEncoder(context, (encoder) => encoder.pickleRoots(roots));
}

/**
 * Makes a process's first pickle about as fast as later ones: starts the scope probe's worker now, and a moment
 * later, off the caller's path, pickles a small closure of the kind that needs the probe (two counters of one
 * factory), so the parser, the inspector and the probe have all run once. A kernel calls it as it starts; should it
 * fail, the first real pickle pays for the start instead, as without it.
 */
export function warmPickler(delayMs = 100): void {
  scopeProbe().warm();
  const sample = (): (() => number) => {
    const counter = (): (() => number) => {
      let n = 0;
      return () => ++n;
    };
    const a = counter();
    const b = counter();
    return () => a() + b();
  };
  setTimeout(() => {
    try {
      pickleCall(sample(), []);
    } catch {
      // the first real pickle will say what is wrong
    }
  }, delayMs).unref();
}

function withEncoder(context: PickleContext, run: (encoder: Encoder) => Uint8Array[]): Uint8Array[] {
  const modules = moduleIndexFor(context.codeRoot);
  modules.refresh();
  const inspector = closureInspector();
  const probe = scopeProbe();
  const capture = new Capture({ locals: context.locals }, inspector, localRegistry, probe);
  const encoder = new Encoder(capture, {
    modules,
    outOfBandBytes: context.outOfBandBytes ?? DEFAULT_OUT_OF_BAND_BYTES,
  });
  try {
    return run(encoder);
  } finally {
    inspector.release();
    probe.release();
  }
}

/**
 * A requireModule for unpickling results in the kernel: a module already loaded here (tslab's compiled local
 * TypeScript modules included, which never enter require.cache) resolves to that very instance, so an instance
 * of `src/model.ts`'s class comes back as an instance of the class the notebook uses; anything else is required
 * from the code root.
 */
export function requireLoaded(codeRoot: string): (ref: ModuleRef) => unknown {
  const fallback = requireFromRoot(codeRoot);
  return (ref) => {
    const index = moduleIndexFor(codeRoot);
    let exports = index.loadedExports(ref);
    if (exports === undefined) {
      index.refresh();
      exports = index.loadedExports(ref);
    }
    return exports !== undefined ? exports : fallback(ref);
  };
}

function defaultLabel(value: unknown): string {
  if (typeof value === 'function' && value.name) return value.name;
  return typeof value === 'function' ? '(anonymous function)' : 'value';
}
