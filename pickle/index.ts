// The pickle protocol: the format (format.ts), the unpickler (decode.ts, both sides), the result pickler (result.ts,
// the worker), the encoder core and the capture of functions by value (capture/: source, closure scopes through the
// inspector) that the kernel's pickler (kernel-ext/client/capture) and the result pickler share. The result
// pickler loads capture/ only when a result holds a function or a class instance.

export { Encoder, EncoderHooks, EncoderOptions } from './encode';
export { isRequireFunction, ownConstructor } from './object-shape';
export { keySegment, Path, pathSegments, pathTo, PickleError, UnpickleError } from './errors';
export { FnBits, Kind, MAGIC, ModuleKind, ModuleRef, Node, Slot, VERSION } from './format';
export { globalIndex, standardGlobalNames } from './globals';
export { ModuleIndex, ModuleLocation, classifyModuleFile, moduleIndexFor } from './modules';
export { originOf, recordOrigin } from './origins';
export { pickleResult, ResultOptions } from './result';
export { unpickle, UnpickleContext } from './decode';
export { installedVersion, refFor } from './module-refs';
export { packageName } from '../common/package-name';
export { isNativeSource, refuse } from './unpicklable';

import * as path from 'node:path';
import { createRequire } from 'node:module';

import type { ModuleRef } from './format';

/**
 * A requireModule for UnpickleContext that resolves from `root` (the snapshot directory on the agent, the code
 * root in the kernel): builtins by name, packages from root's node_modules (and Node's usual lookup), local
 * modules as files under root.
 */
export function requireFromRoot(root: string): (ref: ModuleRef) => unknown {
  const req = createRequire(path.join(root, '__tslab_remote_pickle__.js'));
  return (ref) => {
    switch (ref.kind) {
      case 'builtin':
        return req(`node:${ref.id}`) as unknown;
      case 'package':
        return req(ref.id) as unknown;
      case 'local': {
        const file = path.resolve(root, ref.id);
        const rel = path.relative(root, file);
        if (rel.startsWith('..') || path.isAbsolute(rel))
          throw new Error(`local module ${ref.id} lies outside ${root}`);
        return req(file) as unknown;
      }
    }
  };
}
