// The result pickler: what the worker uses to send a job's return value back. Lean on purpose (no inspector, no
// parser), so the agent stays small: plain data, typed arrays out of band, instances whose class came with the
// call (an ORIGIN reference the kernel resolves to its own class) or from a module (a module reference), standard
// globals. A function can travel back only when it came with the call or is a module export or a global.
//
// An instance of a class that can travel neither way (a class defined inside the remote function) keeps its own
// state under the nearest prototype in its chain that can (Error for a remote `class E extends Error`, Object for
// a plain remote class). `#private` fields cannot be read from outside their class and are not carried.

import { DEFAULT_OUT_OF_BAND_BYTES } from '../protocol/values';
import { Encoder, EncoderHooks } from './encode';
import { Kind } from './format';
import { moduleIndexFor } from './modules';
import { originOf } from './origins';

export interface ResultOptions {
  /** The snapshot directory: modules inside it travel as local references (root-relative paths). */
  codeRoot?: string;
  outOfBandBytes?: number;
  /** First path segment of error messages; default 'result'. */
  label?: string;
}

const resultHooks: EncoderHooks = {
  encodeFunction(fn, enc, path) {
    const name = fn.name ? `function ${fn.name}` : 'an anonymous function';
    return enc.fail(
      path,
      `${name} was created on the agent and cannot be sent back`,
      'Return data instead: only functions and classes that came with the call, module exports and standard globals travel back',
    );
  },
  reference(value) {
    const id = originOf(value);
    if (id === undefined) return undefined;
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- any value the user returned: String is how it is named
    const label = typeof value === 'function' ? `${isClass(value) ? 'class' : 'function'} ${value.name || '(anonymous)'}` : String(value);
    return [Kind.ORIGIN, id, label];
  },
};

function isClass(fn: Function): boolean {
  return /^class\b/.test(Function.prototype.toString.call(fn));
}

/** Pickles a job's result: [body, ...out-of-band buffers]; throws PickleError for what cannot travel back. */
export function pickleResult(value: unknown, options: ResultOptions = {}): Uint8Array[] {
  const modules = moduleIndexFor(options.codeRoot);
  modules.refresh();
  const encoder = new Encoder(resultHooks, {
    modules,
    outOfBandBytes: options.outOfBandBytes ?? DEFAULT_OUT_OF_BAND_BYTES,
    lenientPrototypes: true,
    refusalHint:
      'A result travels back by value: return plain data instead (an address, a count) and keep the live object on ' +
      'the agent, in a module-level variable for later calls',
  });
  return encoder.pickle(value, options.label ?? 'result');
}
