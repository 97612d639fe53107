// Keeping module state across edits. Each snapshot lives in its own directory, so a new snapshot's files are new
// module paths. When a call comes with a new snapshot, a loaded module is kept (the same module object, its state
// intact) if its file, and every file of the code root it requires, directly or not, is unchanged in the new
// snapshot; a changed module and every module that imports it are dropped, as hot-module replacement invalidates.
// Requires of an unchanged file from the new snapshot then resolve to the kept module (`redirect`), so no function
// mixes two versions of one file. A module may register `module.hot.dispose(fn)` to release what it holds (GPU
// memory, handles, timers) before it is dropped.

import * as fs from 'node:fs';
import Module = require('node:module');
import * as path from 'node:path';

/** The CommonJS loader's module, as far as this file uses it. */
export interface CachedModule {
  id: string;
  filename: string;
  loaded: boolean;
  children: CachedModule[];
  hot?: HotApi;
}

/** `module.hot` of a module loaded from a snapshot (the name and shape webpack and Vite use). */
export interface HotApi {
  /** Called before this module is dropped for a newer version; errors are reported, not thrown. */
  dispose(callback: () => void): void;
}

export interface SnapshotPaths {
  /** Snapshot hash of a file under the snapshots root, or null. */
  snapshotOf(filename: string): string | null;
  /** A file's path inside its snapshot (`src/model.ts`). */
  snapshotRelative(filename: string): string;
}

export interface SwitchReport {
  /** Changed files (root-relative) whose modules were dropped. */
  changed: string[];
  /** Unchanged modules dropped because they import a changed one. */
  importers: string[];
  kept: number;
  /** Dispose callbacks that threw, with their module. */
  disposeErrors: string[];
}

const disposers = new WeakMap<CachedModule, Array<() => void>>();

/** Gives a snapshot module its `module.hot` (before its code runs). */
export function attachHot(module: CachedModule): void {
  if (module.hot) return;
  const callbacks: Array<() => void> = [];
  disposers.set(module, callbacks);
  Object.defineProperty(module, 'hot', {
    value: Object.freeze({ dispose: (callback: () => void) => void callbacks.push(callback) }),
    enumerable: false,
  });
}

export class ModuleReloader {
  /** Kept modules of older snapshots, by root-relative path: what requires of those paths resolve to. */
  private kept = new Map<string, string>();
  private current: string | null = null;

  constructor(
    private readonly cache: Record<string, CachedModule | undefined>,
    private readonly paths: SnapshotPaths,
    private readonly snapshotsRoot: string,
  ) {}

  /** Drops what changed in `snapshot` (and its importers), keeps the rest, and says what it did. */
  switchTo(snapshot: string): SwitchReport {
    const newRoot = path.join(this.snapshotsRoot, snapshot);
    const loaded = this.snapshotModules();
    const same = new Map<CachedModule, boolean>();
    const unchanged = (module: CachedModule): boolean => {
      let result = same.get(module);
      if (result === undefined) {
        result = sameContent(module.filename, path.join(newRoot, this.paths.snapshotRelative(module.filename)));
        same.set(module, result);
      }
      return result;
    };
    const changed = loaded.filter((module) => !unchanged(module));
    const dropped = importersOf(new Set(changed), loaded);
    const report: SwitchReport = {
      changed: changed.map((module) => this.paths.snapshotRelative(module.filename)).sort(),
      importers: [...dropped]
        .filter((module) => unchanged(module))
        .map((module) => this.paths.snapshotRelative(module.filename))
        .sort(),
      kept: loaded.length - dropped.size,
      disposeErrors: [],
    };
    for (const module of dropped) report.disposeErrors.push(...this.dispose(module));
    this.remove(dropped);
    this.kept = new Map();
    for (const module of loaded) {
      if (!dropped.has(module) && this.paths.snapshotOf(module.filename) !== snapshot)
        this.kept.set(this.paths.snapshotRelative(module.filename), module.filename);
    }
    this.current = snapshot;
    forgetResolutions();
    return report;
  }

  /**
   * Drops every snapshot module, or those of the given root-relative files and their importers (dispose callbacks
   * first), so the next require loads them afresh: `%remote_reload`.
   */
  drop(files?: readonly string[]): { dropped: string[]; disposeErrors: string[] } {
    const loaded = this.snapshotModules();
    const named = files
      ? loaded.filter((module) => files.includes(this.paths.snapshotRelative(module.filename)))
      : loaded;
    const dropped = importersOf(new Set(named), loaded);
    const disposeErrors = [...dropped].flatMap((module) => this.dispose(module));
    this.remove(dropped);
    for (const module of dropped) this.kept.delete(this.paths.snapshotRelative(module.filename));
    return {
      dropped: [...dropped].map((module) => this.paths.snapshotRelative(module.filename)).sort(),
      disposeErrors,
    };
  }

  /**
   * A file of the current snapshot that a kept module stands for (same content): that module's file, so the
   * loader returns the kept module. Anything else resolves as it is.
   */
  redirect(resolved: string): string {
    if (this.kept.size === 0 || this.current === null || this.cache[resolved]) return resolved;
    if (this.paths.snapshotOf(resolved) !== this.current) return resolved;
    const keptFile = this.kept.get(this.paths.snapshotRelative(resolved));
    return keptFile && this.cache[keptFile] ? keptFile : resolved;
  }

  private snapshotModules(): CachedModule[] {
    return Object.values(this.cache).filter(
      (module): module is CachedModule =>
        module !== undefined && this.paths.snapshotOf(module.filename ?? module.id) !== null,
    );
  }

  private dispose(module: CachedModule): string[] {
    const errors: string[] = [];
    for (const callback of disposers.get(module) ?? []) {
      try {
        callback();
      } catch (error) {
        errors.push(`${this.paths.snapshotRelative(module.filename)}: ${(error as Error)?.message ?? String(error)}`);
      }
    }
    disposers.delete(module);
    return errors;
  }

  /** Out of require.cache, and out of the `children` of the modules that stay. */
  private remove(modules: Set<CachedModule>): void {
    if (modules.size === 0) return;
    for (const [key, module] of Object.entries(this.cache)) if (module && modules.has(module)) delete this.cache[key];
    for (const module of Object.values(this.cache)) {
      if (module?.children.some((child) => modules.has(child)))
        module.children = module.children.filter((child) => !modules.has(child));
    }
  }
}

/** The changed modules and every module that imports one of them, directly or not (through `children`). */
function importersOf(changed: Set<CachedModule>, loaded: readonly CachedModule[]): Set<CachedModule> {
  const dropped = new Set(changed);
  for (let grew = true; grew;) {
    grew = false;
    for (const module of loaded) {
      if (!dropped.has(module) && module.children.some((child) => dropped.has(child))) {
        dropped.add(module);
        grew = true;
      }
    }
  }
  return dropped;
}

/** Same bytes: the store links equal files to one blob, so usually one stat says so. */
function sameContent(a: string, b: string): boolean {
  if (a === b) return true;
  let statA: fs.Stats;
  let statB: fs.Stats;
  try {
    statA = fs.statSync(a);
    statB = fs.statSync(b);
  } catch {
    return false; // gone from the new snapshot
  }
  if (statA.ino === statB.ino && statA.dev === statB.dev) return true;
  if (statA.size !== statB.size) return false;
  return fs.readFileSync(a).equals(fs.readFileSync(b));
}

/**
 * Node memoizes resolutions in Module._pathCache, keyed by request and search paths, so every snapshot directory
 * adds entries that are never used again after the switch: cleared on each switch (it refills as requires resolve).
 */
function forgetResolutions(): void {
  const cache = (Module as unknown as { _pathCache?: Record<string, string> })._pathCache;
  if (cache) for (const key of Object.keys(cache)) delete cache[key];
}

/** "reloaded src/model.ts and 1 module that imports it; 14 kept". */
export function describeSwitch(report: SwitchReport): string {
  const names = (files: string[]): string =>
    files.length <= 3 ? files.join(', ') : `${files.slice(0, 3).join(', ')} and ${files.length - 3} more`;
  if (report.changed.length + report.importers.length === 0) return `no loaded module changed; ${report.kept} kept`;
  const importers =
    report.importers.length === 0
      ? ''
      : ` and ${report.importers.length} module${report.importers.length === 1 ? '' : 's'} that import${report.importers.length === 1 ? 's' : ''} ${report.changed.length === 1 ? 'it' : 'them'}`;
  return `reloaded ${names(report.changed) || 'nothing changed'}${importers}; ${report.kept} kept`;
}
