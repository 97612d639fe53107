// Module references on the unpickling side: a require id as a ModuleRef, TypeScript's __importStar over a module,
// and the installed version of a package (for the version-mismatch warning).

import * as fs from 'node:fs';
import Module = require('node:module');
import * as path from 'node:path';

import type { ModuleRef } from './format';

/** TypeScript's __importStar: the module itself when it is an ES module, else getters over it plus `default`. */
export function importStar(mod: unknown): unknown {
  if (mod && (mod as { __esModule?: unknown }).__esModule) return mod;
  const result: Record<string, unknown> = {};
  if (mod !== null && mod !== undefined) {
    for (const key of Object.getOwnPropertyNames(mod)) {
      if (key === 'default') continue;
      Object.defineProperty(result, key, { enumerable: true, get: () => (mod as Record<string, unknown>)[key] });
    }
  }
  Object.defineProperty(result, 'default', { enumerable: true, value: mod });
  return result;
}

/** A require id as a module reference: builtins by name, relative and absolute paths as local, the rest packages. */
export function refFor(id: string): ModuleRef {
  if (Module.isBuiltin(id)) return { kind: 'builtin', id: id.startsWith('node:') ? id.slice(5) : id };
  if (id.startsWith('./') || id.startsWith('../') || id.startsWith('/'))
    return { kind: 'local', id: path.posix.normalize(id).replace(/^\.\//, '') };
  return { kind: 'package', id };
}

const versionCache = new Map<string, string | undefined>();

/** The version in `dir`/package.json, read once per directory; undefined when it has none or cannot be read. */
export function packageVersionIn(dir: string): string | undefined {
  if (versionCache.has(dir)) return versionCache.get(dir);
  let version: string | undefined;
  try {
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: unknown };
    version = typeof json.version === 'string' ? json.version : undefined;
  } catch {
    version = undefined; // no readable package.json: no version to compare
  }
  versionCache.set(dir, version);
  return version;
}

/** The version in the package.json of the loaded copy of package `name`, found through require.cache. */
export function installedVersion(name: string): string | undefined {
  const needle = `${path.sep}node_modules${path.sep}${name.split('/').join(path.sep)}${path.sep}`;
  for (const filename of Object.keys(require.cache)) {
    const at = filename.lastIndexOf(needle);
    if (at >= 0) return packageVersionIn(filename.slice(0, at + needle.length - 1));
  }
  return undefined;
}
