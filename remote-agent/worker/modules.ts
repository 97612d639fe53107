// Module loading inside a worker: a compile hook for TypeScript files (cached on disk, shared by all workers), the
// purge of an old snapshot's modules from require.cache on a version switch, and a clear error for bare imports
// that are not installed on the agent. Node's own CommonJS loader does the rest, so a function from an old
// snapshot that requires lazily still resolves relative to its own (old) file.

import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import Module = require('node:module');
import * as path from 'node:path';

import { packageName } from '../../common/package-name';
import { HASH_PATTERN } from '../../protocol/manifest';
import { attachHot, CachedModule, ModuleReloader } from './module-reload';

// The CommonJS loader's internals that this file hooks; @types/node does not describe them.
interface LoadedModule {
  id: string;
  filename: string;
  loaded: boolean;
  children: LoadedModule[];
  hot?: CachedModule['hot'];
  _compile(content: string, filename: string): unknown;
}
interface Loader {
  _extensions: Record<string, (module: LoadedModule, filename: string) => void>;
  _cache: Record<string, LoadedModule | undefined>;
  _resolveFilename(request: string, parent: LoadedModule | undefined, isMain: boolean, options?: unknown): string;
  _resolveLookupPaths(request: string, parent: LoadedModule | undefined): string[] | null;
}
const loader = Module as unknown as Loader;

/** Set (non-enumerable) on the MODULE_NOT_FOUND error of a bare import that is not installed: the package name. */
export const NOT_INSTALLED = Symbol.for('tslab-remote.moduleNotInstalled');

export const TS_EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts'] as const;

export interface ModuleOptions {
  /** The snapshots root as configured and as real path (require.cache keys are real paths). */
  snapshotRoots: string[];
  /** The snapshots root as require.cache keys name it (its real path). */
  snapshotsRoot: string;
  compileCacheDir: string;
  nodePaths: string[];
  agentName: string;
}

export class ModuleSupport {
  /** Which modules a new snapshot keeps, and where requires of unchanged files go. */
  readonly reloader: ModuleReloader;

  constructor(private readonly options: ModuleOptions) {
    this.reloader = new ModuleReloader(loader._cache, this, options.snapshotsRoot);
  }

  /** Installs the `.ts` hook, the `.js` → `.ts` fallback and the not-installed error. Call once per process. */
  install(): void {
    fs.mkdirSync(this.options.compileCacheDir, { recursive: true });
    const compiler = new CachedTypeScript(this.options.compileCacheDir);
    for (const ext of TS_EXTENSIONS) {
      loader._extensions[ext] = (module, filename) => {
        if (this.snapshotOf(filename) !== null) attachHot(module);
        module._compile(compiler.compile(filename, this.snapshotRelative(filename)), filename);
      };
    }
    const loadJs = loader._extensions['.js']!;
    loader._extensions['.js'] = (module, filename) => {
      if (this.snapshotOf(filename) !== null) attachHot(module);
      loadJs(module, filename);
    };
    // eslint-disable-next-line @typescript-eslint/unbound-method -- kept to call it from the patch with the loader as `this`
    const resolve = loader._resolveFilename;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the patched resolver needs both the loader `this` and this support object
    const support = this;
    loader._resolveFilename = function (request, parent, isMain, options) {
      try {
        return support.reloader.redirect(resolve.call(this, request, parent, isMain, options));
      } catch (err) {
        if (!isNotFound(err)) throw err;
        // TypeScript projects write `import './model.js'` for `model.ts`: try the TypeScript file.
        const tsRequest = /^\.\.?[\\/]/.test(request)
          ? request.replace(/\.(c|m)?js$/, (_m, k: string | undefined) => `.${k ?? ''}ts`)
          : null;
        if (tsRequest && tsRequest !== request) {
          try {
            return support.reloader.redirect(resolve.call(this, tsRequest, parent, isMain, options));
          } catch {
            // Fall through to the original error, which names what the user wrote.
          }
        }
        throw support.explainMissing(err, request, parent);
      }
    };
  }

  /** Turns a bare import's MODULE_NOT_FOUND into one that says where to install the package (code kept). */
  private explainMissing(err: NodeJS.ErrnoException, request: string, parent: LoadedModule | undefined): Error {
    const pkg = packageName(request);
    if (pkg === null || Module.isBuiltin(request)) return err;
    const searched = loader._resolveLookupPaths(request, parent) ?? [];
    if (searched.some((dir) => fs.existsSync(path.join(dir, pkg)))) return err; // installed; a file inside is missing
    const dirs = this.options.nodePaths.length > 0 ? this.options.nodePaths : searched;
    const how = dirs
      .map((dir) =>
        path.basename(dir) === 'node_modules'
          ? `cd ${path.dirname(dir)} && npm install ${pkg}`
          : `put it in ${dir}/${pkg}`,
      )
      .join('\n  or: ');
    err.message =
      `Cannot find package '${pkg}': it is not installed on agent ${this.options.agentName}` +
      ` (searched ${dirs.join(', ') || 'no directories'}).\n` +
      `Install it on that machine, then call again:\n  ${how}`;
    Object.defineProperty(err, NOT_INSTALLED, { value: pkg, enumerable: false });
    return err;
  }

  /** A file's path inside its snapshot (`src/model.ts`), or the path itself outside snapshots. */
  snapshotRelative(filename: string): string {
    for (const root of this.options.snapshotRoots) {
      const relative = path.relative(root, filename);
      if (relative.startsWith('..') || path.isAbsolute(relative)) continue;
      const [hash, ...rest] = relative.split(path.sep);
      if (hash && HASH_PATTERN.test(hash) && rest.length > 0) return rest.join('/');
    }
    return filename;
  }

  /** Snapshot hash of a file under the snapshots root, or null. */
  snapshotOf(filename: string): string | null {
    for (const root of this.options.snapshotRoots) {
      const prefix = root.endsWith(path.sep) ? root : root + path.sep;
      if (filename.startsWith(prefix)) {
        const segment = filename.slice(prefix.length).split(path.sep, 1)[0] ?? '';
        return HASH_PATTERN.test(segment) ? segment : null;
      }
    }
    return null;
  }

  /**
   * Removes from require.cache every module loaded from a snapshot other than `keep`, and unlinks them from their
   * parents' `children`. node_modules (outside the snapshots root) stay loaded, so their module state survives.
   */
  purgeSnapshotsExcept(keep: string | null): number {
    return this.purge((module) => {
      const hash = this.snapshotOf(module.filename ?? module.id);
      return hash !== null && hash !== keep;
    });
  }

  /** After an interrupt: modules whose loading was cut short would otherwise stay cached half-initialized. */
  purgeUnloaded(): number {
    return this.purge((module) => !module.loaded);
  }

  /** Snapshot hashes that have modules in require.cache, sorted. */
  snapshotsInUse(): string[] {
    const hashes = new Set<string>();
    for (const key of Object.keys(loader._cache)) {
      const hash = this.snapshotOf(key);
      if (hash !== null) hashes.add(hash);
    }
    return [...hashes].sort();
  }

  private purge(condemned: (module: LoadedModule) => boolean): number {
    const removed = new Set<LoadedModule>();
    for (const [key, module] of Object.entries(loader._cache)) {
      if (module && condemned(module)) {
        removed.add(module);
        delete loader._cache[key];
      }
    }
    if (removed.size > 0) {
      for (const module of Object.values(loader._cache)) {
        if (module && module.children.some((child) => removed.has(child))) {
          module.children = module.children.filter((child) => !removed.has(child));
        }
      }
    }
    return removed.size;
  }
}

function isNotFound(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND';
}

/** The package name a MODULE_NOT_INSTALLED error was raised for, if `err` is one. */
export function notInstalledPackage(err: unknown): string | null {
  if (typeof err !== 'object' || err === null) return null;
  const value = (err as Record<symbol, unknown>)[NOT_INSTALLED];
  return typeof value === 'string' ? value : null;
}

type TypeScriptApi = typeof import('typescript');

/**
 * transpileModule with an on-disk cache keyed by compiler version, options, the file's path inside its snapshot and
 * its source: a file compiles once across workers, restarts and snapshots, so after a one-file edit only that file
 * compiles. The compiler (~10 MB of JavaScript) loads only on a cache miss. The inline source map names the source
 * relative to the compiled file, so stacks point into whichever snapshot loaded it.
 */
class CachedTypeScript {
  private ts: TypeScriptApi | null = null;
  private readonly version: string;

  constructor(private readonly cacheDir: string) {
    this.version = readTypeScriptVersion();
  }

  compile(filename: string, relative: string): string {
    const source = fs.readFileSync(filename, 'utf8');
    const options = compilerOptionsFor(filename);
    const key = createHash('sha256')
      .update(`${this.version}\0${JSON.stringify(options)}\0${relative}\0`)
      .update(source)
      .digest('hex');
    const cached = path.join(this.cacheDir, `${key}.js`);
    try {
      const output = fs.readFileSync(cached, 'utf8');
      touch(cached); // the agent evicts the least recently used compiled files with the snapshots
      return output;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const output = this.transpile(source, filename, relative, options);
    const temp = `${cached}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(temp, output);
    fs.renameSync(temp, cached); // atomic: another worker reads the whole file or none
    return output;
  }

  private transpile(source: string, filename: string, relative: string, options: Record<string, unknown>): string {
    this.ts ??= require('typescript') as TypeScriptApi;
    const ts = this.ts;
    // TypeScript emits ESM for `.mts` whatever `module` says: compile those under a `.ts` name and point the
    // source map back at the real file.
    const esmName = /\.[mc]ts$/.test(filename);
    const result = ts.transpileModule(source, {
      compilerOptions: options as import('typescript').CompilerOptions,
      fileName: esmName ? relative.replace(/\.[mc]ts$/, '.ts') : relative,
      reportDiagnostics: true,
    });
    const errors = (result.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
    if (errors.length > 0) {
      const lines = errors.slice(0, 10).map((d) => {
        const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : null;
        const position = where ? `:${where.line + 1}:${where.character + 1}` : '';
        return `${filename}${position} - ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
      throw new SyntaxError(`TypeScript cannot compile ${filename}:\n${lines.join('\n')}`);
    }
    return esmName ? retargetInlineSourceMap(result.outputText, path.basename(filename)) : result.outputText;
  }
}

const INLINE_MAP = /\/\/# sourceMappingURL=data:application\/json;base64,([A-Za-z0-9+/=]+)\s*$/;

/** Makes an inline source map's only source the given file name. */
function retargetInlineSourceMap(code: string, source: string): string {
  const match = INLINE_MAP.exec(code);
  if (!match?.[1]) return code;
  const map = JSON.parse(Buffer.from(match[1], 'base64').toString('utf8')) as Record<string, unknown>;
  map.sources = [source];
  const encoded = Buffer.from(JSON.stringify(map)).toString('base64');
  return code.slice(0, match.index) + `//# sourceMappingURL=data:application/json;base64,${encoded}\n`;
}

function readTypeScriptVersion(): string {
  const manifest: unknown = JSON.parse(fs.readFileSync(require.resolve('typescript/package.json'), 'utf8'));
  const version =
    typeof manifest === 'object' && manifest !== null ? (manifest as Record<string, unknown>).version : undefined;
  return typeof version === 'string' ? version : 'unknown';
}

// Numeric values of TypeScript's enums, so the options (and the cache key) need no compiler loaded.
const MODULE_COMMONJS = 1;
const TARGET_ES2022 = 9;
const JSX_REACT_JSX = 4;

function compilerOptionsFor(filename: string): Record<string, unknown> {
  return {
    module: MODULE_COMMONJS,
    target: TARGET_ES2022,
    esModuleInterop: true,
    inlineSourceMap: true,
    inlineSources: true,
    ...(filename.endsWith('.tsx') ? { jsx: JSX_REACT_JSX } : {}),
  };
}

/** Records a use; a file the agent just evicted is compiled again next time, so a failure changes nothing. */
function touch(file: string): void {
  const now = new Date();
  try {
    fs.utimesSync(file, now, now);
  } catch {
    // evicted meanwhile
  }
}
