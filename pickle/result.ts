// The result pickler: what the worker uses to send a job's return value back, as the kernel sends a call: plain
// data, typed arrays out of band, values that came with the call as ORIGIN references (the kernel resolves them to
// its own class or function, so an instance of a notebook class comes back as one), module exports and standard
// globals by reference, and functions and classes made on the agent by value (capture/, as cloudpickle sends
// dynamic functions both ways: the kernel trusts its own agent). An instance of a class made on the agent comes
// back as an instance of that class rebuilt in the kernel. What cannot travel (a socket, an instance with
// `#private` fields) is refused with its path, never dropped.

import { DEFAULT_OUT_OF_BAND_BYTES } from '../protocol/values';
import { Encoder, EncoderHooks } from './encode';
import { Kind } from './format';
import { moduleIndexFor } from './modules';
import { originOf } from './origins';
import type { Capture } from './capture/capture';

export interface ResultOptions {
  /** The snapshot directory: modules inside it travel as local references (root-relative paths). */
  codeRoot?: string;
  outOfBandBytes?: number;
  /** First path segment of error messages; default 'result'. */
  label?: string;
}

/**
 * The hooks of one result: values that came with the call as ORIGIN references, functions and classes made on the
 * agent by value through the capture (loaded on first need, so a worker that returns plain data never loads it).
 */
function resultHooks(): EncoderHooks & { release(): void } {
  let capture: Capture | undefined;
  let release = (): void => undefined;
  const use = (): Capture => {
    if (!capture) {
      const { Capture: CaptureClass } = require('./capture/capture') as typeof import('./capture/capture');
      const inspector = (require('./capture/inspect') as typeof import('./capture/inspect')).closureInspector();
      const probe = (require('./capture/scope-probe') as typeof import('./capture/scope-probe')).scopeProbe();
      capture = new CaptureClass({}, inspector, undefined, probe);
      release = () => {
        inspector.release();
        probe.release();
      };
    }
    return capture;
  };
  return {
    encodeFunction: (fn, enc, path, owner) => use().encodeFunction(fn, enc, path, owner),
    checkInstance: (obj, enc, path) => use().checkInstance(obj, enc, path),
    reference(value) {
      const id = originOf(value);
      if (id === undefined) return undefined;
      const label =
        typeof value === 'function'
          ? `${isClass(value) ? 'class' : 'function'} ${value.name || '(anonymous)'}`
          : // eslint-disable-next-line @typescript-eslint/no-base-to-string -- any value the user returned: String is how it is named
            String(value);
      return [Kind.ORIGIN, id, label];
    },
    release: () => release(),
  };
}

function isClass(fn: Function): boolean {
  return /^class\b/.test(Function.prototype.toString.call(fn));
}

/** Pickles a job's result: [body, ...out-of-band buffers]; throws PickleError for what cannot travel back. */
export function pickleResult(value: unknown, options: ResultOptions = {}): Uint8Array[] {
  const modules = moduleIndexFor(options.codeRoot);
  modules.refresh();
  const hooks = resultHooks();
  const encoder = new Encoder(hooks, {
    modules,
    outOfBandBytes: options.outOfBandBytes ?? DEFAULT_OUT_OF_BAND_BYTES,
    refusalHint:
      'A result travels back by value: return plain data instead (an address, a count) and keep the live object on ' +
      'the agent, in a module-level variable for later calls',
  });
  try {
    return encoder.pickle(value, options.label ?? 'result');
  } finally {
    hooks.release();
  }
}
