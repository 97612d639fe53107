// Lists the files of a code root that a snapshot ships, with their stat stamps, without reading any of them (only
// .gitignore files are read, and not even those when the stat cache knows them).
//
// Symbolic links, decided here once:
//   - a link is matched against the exclude rules under its own path, as a file (git never treats it as a directory);
//   - a link whose target (fully resolved) lies outside the code root is skipped, with a warning: the snapshot must
//     not depend on files the user did not put in the tree, and the agent refuses links out anyway;
//   - a link to a file inside the root ships as a plain copy of the target's content under the link's path (zip
//     entries are plain files, and the agent materializes no links);
//   - a link to a directory is skipped, with a warning: following it could loop (`a/loop -> ..`) or ship a subtree
//     twice; the target directory, being inside the root, is shipped under its own path anyway;
//   - a dangling link is skipped, with a warning.

import * as path from 'node:path';
import type { Ignore } from 'ignore';

import { isSafeRelativePath } from '../../../protocol/manifest';
import { type ExcludeRules, parseGitignore } from './exclude-rules';
import { errorCode, type SnapshotFs } from './snapshot-fs';
import { type Stamp, stampOf, type StatCache } from './stat-cache';

/** Synchronous fs calls between two yields to the event loop (about a millisecond's worth). */
const CALLS_PER_YIELD = 500;

export interface WalkedFile {
  /** POSIX path relative to the root: the manifest path. */
  path: string;
  /** Where to read the content (for a link: the link itself, which reading follows). */
  absolute: string;
  /** Of the content that will be read (for a link: of its target). */
  stamp: Stamp;
}

export interface WalkResult {
  files: WalkedFile[];
  warnings: string[];
  /** Relative paths (directories end with '/') that could not be listed or stat'ed: permission denied. */
  unreadable: string[];
  /** Relative paths of the .gitignore files in force, to prune the cache of parsed ones. */
  gitignores: string[];
}

export interface WalkOptions {
  fs: SnapshotFs;
  rules: ExcludeRules;
  statCache?: StatCache;
  /** Wall clock before the walk started: stamps newer than this are racy (see stat-cache.ts). */
  checkedAtMs: number;
}

/** Walks `root` (absolute) depth first, applying the exclude rules level by level. */
export async function walkTree(root: string, options: WalkOptions): Promise<WalkResult> {
  if (!options.fs.stat(root).isDirectory()) throw new Error(`the code root ${root} is not a directory`);
  const walker = new Walker(root, options.fs.realpath(root), options);
  const pending: { relative: string; rules: ExcludeRules }[] = [{ relative: '', rules: options.rules }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    for (const child of await walker.directory(next.relative, next.rules)) pending.push(child);
    if (walker.calls >= CALLS_PER_YIELD) await walker.yield();
  }
  return walker.result;
}

class Walker {
  readonly result: WalkResult = { files: [], warnings: [], unreadable: [], gitignores: [] };
  /** Synchronous fs calls since the last yield. */
  calls = 0;

  constructor(
    private readonly root: string,
    private readonly realRoot: string,
    private readonly options: WalkOptions,
  ) {}

  // Lists one directory, reads its .gitignore, records its files; returns the subdirectories to walk.
  async directory(relative: string, inherited: ExcludeRules): Promise<{ relative: string; rules: ExcludeRules }[]> {
    const entries = this.guard(`${relative || '.'}/`, () => this.options.fs.readdir(this.absolute(relative)));
    if (!entries) return [];
    let rules = inherited;
    if (entries.some((entry) => entry.name === '.gitignore' && entry.isFile())) {
      const matcher = await this.gitignore(join(relative, '.gitignore'));
      if (matcher) rules = rules.withGitignore(relative, matcher);
    }
    const subdirectories: { relative: string; rules: ExcludeRules }[] = [];
    for (const entry of entries) {
      const child = join(relative, entry.name);
      const isDir = entry.isDirectory();
      if (rules.excludes(child, isDir)) continue;
      if (!isSafeRelativePath(child)) {
        this.result.warnings.push(`skipped ${JSON.stringify(child)}: the name cannot travel as a portable path`);
      } else if (isDir) subdirectories.push({ relative: child, rules });
      else if (entry.isFile()) this.file(child);
      else if (entry.isSymbolicLink()) this.link(child);
      // Sockets, FIFOs and devices are not source files: left out silently.
    }
    return subdirectories;
  }

  // Lets timers and sockets (the agent connection's heartbeats) run during a long walk.
  async yield(): Promise<void> {
    this.calls = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  // A regular file: its stamp, no read.
  private file(relative: string): void {
    const absolute = this.absolute(relative);
    const stats = this.guard(relative, () => this.options.fs.lstat(absolute));
    if (stats?.isFile()) this.result.files.push({ path: relative, absolute, stamp: stampOf(stats) });
  }

  // A symbolic link: shipped as a copy of its target when that is a file inside the root (see the header).
  private link(relative: string): void {
    const absolute = this.absolute(relative);
    const { fs } = this.options;
    let target: string;
    try {
      this.calls++;
      target = fs.realpath(absolute);
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ELOOP') {
        this.result.warnings.push(`skipped symbolic link ${relative}: its target does not exist`);
        return;
      }
      throw error;
    }
    if (!isInside(this.realRoot, target)) {
      this.result.warnings.push(`skipped symbolic link ${relative}: it points outside the code root (${target})`);
      return;
    }
    const stats = this.guard(relative, () => fs.stat(absolute));
    if (stats?.isDirectory()) {
      this.result.warnings.push(
        `skipped symbolic link ${relative}: it points to a directory (links to directories are not followed)`,
      );
    } else if (stats?.isFile()) {
      this.result.files.push({ path: relative, absolute, stamp: stampOf(stats) });
    }
  }

  // A .gitignore's patterns, parsed once per content thanks to the stat cache.
  private async gitignore(relative: string): Promise<Ignore | undefined> {
    const { fs, statCache, checkedAtMs } = this.options;
    const absolute = this.absolute(relative);
    const stats = this.guard(relative, () => fs.lstat(absolute));
    if (!stats) return undefined;
    this.result.gitignores.push(relative);
    const stamp = stampOf(stats);
    const cached = statCache?.ignores.get(this.root, relative, stamp);
    if (cached) return cached;
    let text: string;
    try {
      text = (await fs.readFile(absolute)).toString('utf8');
    } catch (error) {
      return this.failed(relative, error);
    }
    const matcher = parseGitignore(text);
    statCache?.ignores.set(this.root, relative, stamp, matcher, checkedAtMs);
    return matcher;
  }

  // Runs one fs call, counted for yielding; failures go through `failed`.
  private guard<T>(relative: string, call: () => T): T | undefined {
    this.calls++;
    try {
      return call();
    } catch (error) {
      return this.failed(relative, error);
    }
  }

  // Permission errors are recorded against `relative`; a path that vanished meanwhile is skipped; others throw.
  private failed(relative: string, error: unknown): undefined {
    const code = errorCode(error);
    if (code === 'EACCES' || code === 'EPERM') this.result.unreadable.push(relative);
    else if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
    return undefined;
  }

  private absolute(relative: string): string {
    return relative ? path.join(this.root, relative) : this.root;
  }
}

// POSIX join of a relative directory ('' for the root) and a name.
function join(directory: string, name: string): string {
  return directory ? `${directory}/${name}` : name;
}

// Whether the resolved `target` is the resolved `root` or lies below it.
function isInside(root: string, target: string): boolean {
  const relative = path.relative(root, target);
  return relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}
