// Module classification, by identity: which loaded module's exports a value is (or is reached from). A module
// object (`import * as m`, `require('fs')`) is its exports object; a default import is `exports.default`; a named
// import is an export's value. Such values travel as references: builtins and node_modules packages by name (with
// the package's version), modules inside the code root by their root-relative path, so the other side requires
// them and every function of one call shares one module instance there, exactly as here.
//
// The index covers require.cache and, through `children`, modules that were created without entering the cache
// (tslab compiles a notebook's local TypeScript imports into Module objects it keeps to itself), plus the builtins
// this process has loaded. It is refreshed on each use, re-reading only the modules whose exports changed.

import * as fs from 'node:fs';
import Module = require('node:module');
import * as path from 'node:path';

import { HASH_PATTERN } from '../protocol/manifest';
import type { ModuleRef } from './format';
import { packageVersionIn } from './module-refs';

interface LoadedModule {
  filename?: string;
  id: string;
  exports: unknown;
  children?: LoadedModule[];
}

export interface ModuleLocation {
  module: ModuleRef;
  /** Property path from the module's exports; [] for the exports object itself. */
  path: string[];
}

interface Indexed {
  exports: unknown;
  keyCount: number;
  /** When keyCount was last taken (performance.now()). */
  countedAt: number;
  ref: ModuleRef | null;
  rank: number;
  values: unknown[];
}

const RANK_BUILTIN = 0;
const RANK_PACKAGE_MAIN = 1;
const RANK_LOCAL = 2;
const RANK_PACKAGE_SUBPATH = 3;
/** Package and builtin exports are set when they load: their keys are counted again at most this often. */
const PACKAGE_RECOUNT_MS = 1_000;

const packageInfoCache = new Map<string, { name: string; version?: string; main: string | null }>();

function readPackageInfo(dir: string, name: string): { name: string; version?: string; main: string | null } {
  let info = packageInfoCache.get(dir);
  if (info) return info;
  const version = packageVersionIn(dir);
  let main: string | null = null;
  try {
    // Resolve the bare name from the node_modules folder that holds the package.
    const base = name.startsWith('@') ? path.dirname(path.dirname(dir)) : path.dirname(dir);
    main = require.resolve(name, { paths: [base] });
  } catch {
    main = null;
  }
  info = { name, version, main };
  packageInfoCache.set(dir, info);
  return info;
}

function toPosix(p: string): string {
  return p.split(path.sep).join('/');
}

const TS_SIBLINGS = ['.ts', '.tsx', '.mts', '.cts'];

/** A compiled local file that does not exist on disk (tslab's `.js` output of a `.ts` file) is named by its source. */
function localSourceFile(filename: string): string {
  if (fs.existsSync(filename)) return filename;
  const ext = path.extname(filename);
  const base = ext ? filename.slice(0, -ext.length) : filename;
  for (const candidate of TS_SIBLINGS) if (fs.existsSync(base + candidate)) return base + candidate;
  return filename;
}

export function classifyModuleFile(filename: string, codeRoot: string | null): { ref: ModuleRef; rank: number } | null {
  const marker = `${path.sep}node_modules${path.sep}`;
  const at = filename.lastIndexOf(marker);
  if (at >= 0) {
    const rest = filename.slice(at + marker.length).split(path.sep);
    const nameParts = rest[0]?.startsWith('@') ? rest.slice(0, 2) : rest.slice(0, 1);
    if (nameParts.length === 0 || nameParts.some((part) => !part)) return null;
    const name = nameParts.join('/');
    const dir = filename.slice(0, at + marker.length) + nameParts.join(path.sep);
    const info = readPackageInfo(dir, name);
    if (info.main === filename)
      return { ref: withVersion({ kind: 'package', id: name }, info.version), rank: RANK_PACKAGE_MAIN };
    const sub = toPosix(path.relative(dir, filename));
    return { ref: withVersion({ kind: 'package', id: `${name}/${sub}` }, info.version), rank: RANK_PACKAGE_SUBPATH };
  }
  if (codeRoot) {
    const root = snapshotOfFile(codeRoot, filename) ?? codeRoot;
    const rel = path.relative(root, filename);
    if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) {
      const source = localSourceFile(filename);
      return { ref: { kind: 'local', id: toPosix(path.relative(root, source)) }, rank: RANK_LOCAL };
    }
  }
  return null;
}

/**
 * On an agent the code root is a snapshot directory, <snapshots>/<hash>, and a worker keeps unchanged modules of
 * an earlier snapshot loaded across an edit: such a module is local too, at its path inside its own snapshot.
 */
function snapshotOfFile(codeRoot: string, filename: string): string | null {
  if (!HASH_PATTERN.test(path.basename(codeRoot))) return null;
  const snapshots = path.dirname(codeRoot);
  const [hash] = path.relative(snapshots, filename).split(path.sep, 1);
  return hash && HASH_PATTERN.test(hash) ? path.join(snapshots, hash) : null;
}

function withVersion(ref: ModuleRef, version: string | undefined): ModuleRef {
  return version === undefined ? ref : { ...ref, version };
}

function isReferenceable(value: unknown): boolean {
  return (typeof value === 'object' && value !== null) || typeof value === 'function' || typeof value === 'symbol';
}

let builtinsMemo: { listLength: number; names: string[] } | undefined;

/** The builtins this process has loaded; process.moduleLoadList only grows, so its length says when to look again. */
function loadedBuiltins(): string[] {
  const list = (process as unknown as { moduleLoadList?: string[] }).moduleLoadList;
  if (list && builtinsMemo?.listLength === list.length) return builtinsMemo.names;
  const loaded = list
    ? new Set(list.filter((e) => e.startsWith('NativeModule ')).map((e) => e.slice('NativeModule '.length)))
    : null;
  const names = Module.builtinModules.filter((name) => !name.startsWith('_') && (loaded === null || loaded.has(name)));
  if (list) builtinsMemo = { listLength: list.length, names };
  return names;
}

export class ModuleIndex {
  private readonly codeRoot: string | null;
  private readonly byModule = new Map<string, Indexed>();
  private readonly byValue = new Map<unknown, { location: ModuleLocation; rank: number; owner: string }>();
  private readonly byRef = new Map<string, unknown>();
  private builtinsSeen = 0;

  constructor(codeRoot?: string) {
    this.codeRoot = codeRoot ? realpathOr(codeRoot) : null;
  }

  /** Re-reads what changed since the last call: new, purged or re-exported modules, newly loaded builtins. */
  refresh(): void {
    const seen = new Set<string>();
    const visited = new Set<LoadedModule>();
    const stack: LoadedModule[] = Object.values(require.cache).filter((m): m is NodeJS.Module => m !== undefined);
    while (stack.length > 0) {
      const module = stack.pop()!;
      if (visited.has(module)) continue;
      visited.add(module);
      if (module.children) for (const child of module.children) stack.push(child);
      const filename = module.filename ?? module.id;
      if (!filename || !path.isAbsolute(filename)) continue;
      const key = `file:${filename}`;
      if (seen.has(key)) continue;
      seen.add(key);
      this.update(key, module.exports, () => classifyModuleFile(filename, this.codeRoot));
    }
    const builtins = loadedBuiltins();
    if (builtins.length !== this.builtinsSeen) {
      this.builtinsSeen = builtins.length;
      for (const name of builtins) {
        let exports: unknown;
        try {
          exports = require(name);
        } catch {
          continue;
        }
        this.update(`builtin:${name}`, exports, () => ({ ref: { kind: 'builtin', id: name }, rank: RANK_BUILTIN }));
      }
    }
    for (const key of this.byModule.keys()) if (key.startsWith('builtin:')) seen.add(key);
    for (const [key, entry] of this.byModule) {
      if (!seen.has(key)) {
        this.drop(key, entry);
        this.byModule.delete(key);
      }
    }
  }

  /** The exports of a loaded module that classifies as `ref` (as of the last refresh), or undefined. */
  loadedExports(ref: { kind: string; id: string }): unknown {
    return this.byRef.get(`${ref.kind}:${ref.id}`);
  }

  lookup(value: unknown): ModuleLocation | undefined {
    return this.byValue.get(value)?.location;
  }

  /** `net.Socket`, `lodash.map`: a readable name for a module value, or undefined. */
  describe(value: unknown): string | undefined {
    const location = this.lookup(value);
    if (!location) return undefined;
    return [location.module.id, ...location.path].join('.');
  }

  private update(key: string, exports: unknown, classify: () => { ref: ModuleRef; rank: number } | null): void {
    const old = this.byModule.get(key);
    const now = performance.now();
    if (old && old.exports === exports && !needsRecount(old, now)) return;
    const keyCount = isReferenceable(exports) && typeof exports !== 'symbol' ? safeKeyCount(exports as object) : 0;
    if (old && old.exports === exports && old.keyCount === keyCount) {
      old.countedAt = now;
      return;
    }
    if (old) this.drop(key, old);
    const classified = old ? (old.ref ? { ref: old.ref, rank: old.rank } : null) : classify();
    const entry: Indexed = {
      exports,
      keyCount,
      countedAt: now,
      ref: classified?.ref ?? null,
      rank: classified?.rank ?? 99,
      values: [],
    };
    this.byModule.set(key, entry);
    if (entry.ref) this.byRef.set(`${entry.ref.kind}:${entry.ref.id}`, exports);
    if (!entry.ref || !isReferenceable(exports)) return;
    const add = (value: unknown, p: string[]): void => {
      if (!isReferenceable(value)) return;
      const existing = this.byValue.get(value);
      if (
        existing &&
        (existing.rank < entry.rank || (existing.rank === entry.rank && existing.location.path.length <= p.length))
      )
        return;
      this.byValue.set(value, { location: { module: entry.ref!, path: p }, rank: entry.rank, owner: key });
      entry.values.push(value);
    };
    add(exports, []);
    if (typeof exports === 'symbol') return;
    for (const [name, value] of dataProperties(exports as object)) {
      add(value, [name]);
      if (typeof value === 'function') {
        const proto = (value as { prototype?: unknown }).prototype;
        if (proto && typeof proto === 'object') {
          for (const [method, member] of dataProperties(proto))
            if (method !== 'constructor' && typeof member === 'function') add(member, [name, 'prototype', method]);
        }
      } else if (name === 'default' && value && typeof value === 'object') {
        for (const [inner, member] of dataProperties(value)) add(member, [name, inner]);
      }
    }
  }

  private drop(key: string, entry: Indexed): void {
    if (entry.ref && this.byRef.get(`${entry.ref.kind}:${entry.ref.id}`) === entry.exports)
      this.byRef.delete(`${entry.ref.kind}:${entry.ref.id}`);
    for (const value of entry.values) if (this.byValue.get(value)?.owner === key) this.byValue.delete(value);
    entry.values = [];
  }
}

/**
 * Whether an unchanged exports object may have gained exports worth indexing: a local module's, always (the
 * notebook's own code); a package's or builtin's, when last counted long ago (counting the thousands of keys of a
 * package such as typescript on every pickle was most of a call's pickling); a module that travels by no
 * reference, never.
 */
function needsRecount(entry: Indexed, now: number): boolean {
  if (!entry.ref) return false;
  return entry.rank === RANK_LOCAL || now - entry.countedAt >= PACKAGE_RECOUNT_MS;
}

function safeKeyCount(value: object): number {
  try {
    return Object.keys(value).length;
  } catch {
    return 0;
  }
}

/** Own string-keyed data properties (never getters: reading them could run code). */
function* dataProperties(owner: object): Generator<[string, unknown]> {
  let names: string[];
  try {
    names = Object.getOwnPropertyNames(owner);
  } catch {
    return;
  }
  for (const name of names) {
    let desc: PropertyDescriptor | undefined;
    try {
      desc = Object.getOwnPropertyDescriptor(owner, name);
    } catch {
      continue;
    }
    if (desc && 'value' in desc) yield [name, desc.value];
  }
}

function realpathOr(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

const shared = new Map<string, ModuleIndex>();

/** One index per code root for the life of the process, refreshed by the caller before use. */
export function moduleIndexFor(codeRoot?: string): ModuleIndex {
  const key = codeRoot ?? '';
  let index = shared.get(key);
  if (!index) {
    index = new ModuleIndex(codeRoot);
    shared.set(key, index);
  }
  return index;
}
