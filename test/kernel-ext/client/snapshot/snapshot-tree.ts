// Test helpers for snapshots: real temporary trees written from a path → content map, mtimes pushed into the past
// (so stat stamps are trusted, see stat-cache.ts), and an fs hook that records every file read.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import type { SnapshotFs } from '../../../../kernel-ext/client/snapshot/snapshot-fs';

export type Tree = Record<string, string | Buffer>;

const cleanups: (() => Promise<void>)[] = [];

// Every tree made in a test is removed after it (call from a root-level afterEach).
export async function removeTrees(): Promise<void> {
  for (const cleanup of cleanups.splice(0)) await cleanup();
}

/** A fresh temporary directory holding `tree`, files written in the given order. */
export async function makeTree(tree: Tree, options: { prefix?: string } = {}): Promise<string> {
  const dir = await tmp.dir({ unsafeCleanup: true, prefix: options.prefix ?? 'snapshot-test-' });
  cleanups.push(() => dir.cleanup());
  await writeTree(dir.path, tree);
  return dir.path;
}

// Writes (or overwrites) files under root, creating directories as needed.
export async function writeTree(root: string, tree: Tree): Promise<void> {
  for (const [relative, content] of Object.entries(tree)) {
    const file = path.join(root, relative);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
  }
}

/** Sets the mtime of every file and directory under root (not following links) to `secondsAgo` in the past. */
export async function age(root: string, secondsAgo = 3600): Promise<void> {
  const when = new Date(Date.now() - secondsAgo * 1000);
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  for (const entry of entries) await fs.lutimes(path.join(entry.parentPath, entry.name), when, when);
}

/** An fs hook recording the path (relative to root) of every readFile call. */
export function countingReads(root: string): { hooks: Partial<SnapshotFs>; reads: string[] } {
  const reads: string[] = [];
  const hooks: Partial<SnapshotFs> = {
    readFile: (file) => {
      reads.push(path.relative(root, file).split(path.sep).join('/'));
      return fs.readFile(file);
    },
  };
  return { hooks, reads };
}

/** The manifest's paths. */
export function pathsOf(snapshot: { files: { path: string }[] }): string[] {
  return snapshot.files.map((file) => file.path);
}
