// Remembers what was derived from a file (its content hash, or a parsed .gitignore) together with the file's stat
// stamp, so that re-checking an unchanged tree costs a walk and no reads. Keyed by code root, then relative path.
//
// Same size, mtime and inode means "unchanged". That is only safe for a file whose mtime was already in the past
// when it was stamped: the file-system clock is coarse (a few ms on Linux, 1-2 s on some file systems), so a file
// written again within the same tick keeps its mtime. As git does with "racily clean" index entries, a stamp taken
// less than RACY_MARGIN_MS after the file's mtime is kept but not trusted: the next check reads the file again.

import type { Stats } from 'node:fs';
import type { Ignore } from 'ignore';

/** How far an mtime must lie in the past, when stamped, for the stamp to be trusted later. */
export const RACY_MARGIN_MS = 2_000;

export interface Stamp {
  size: number;
  mtimeMs: number;
  ino: number;
}

interface Remembered<T> extends Stamp {
  value: T;
  /** Stamped too soon after the file's last write to prove it unchanged later. */
  racy: boolean;
}

// The parts of stats that tell a file changed.
export function stampOf(stats: Stats): Stamp {
  return { size: stats.size, mtimeMs: stats.mtimeMs, ino: stats.ino };
}

// One kind of derived value (hashes, parsed ignore files) for every root.
class StampMap<T> {
  private readonly roots = new Map<string, Map<string, Remembered<T>>>();

  // The value remembered for an unchanged file, or undefined when it must be read again.
  get(root: string, relative: string, stamp: Stamp): T | undefined {
    const entry = this.roots.get(root)?.get(relative);
    if (!entry || entry.racy) return undefined;
    const same = entry.size === stamp.size && entry.mtimeMs === stamp.mtimeMs && entry.ino === stamp.ino;
    return same ? entry.value : undefined;
  }

  // `checkedAtMs` is the wall clock before the file was stat'ed, to tell racy stamps.
  set(root: string, relative: string, stamp: Stamp, value: T, checkedAtMs: number): void {
    let entries = this.roots.get(root);
    if (!entries) this.roots.set(root, (entries = new Map<string, Remembered<T>>()));
    const racy = stamp.mtimeMs > checkedAtMs - RACY_MARGIN_MS;
    entries.set(relative, { size: stamp.size, mtimeMs: stamp.mtimeMs, ino: stamp.ino, value, racy });
  }

  // Forgets files no longer in the tree, so that a long session's cache does not grow with deleted files.
  retain(root: string, present: ReadonlySet<string>): void {
    const entries = this.roots.get(root);
    if (!entries) return;
    for (const relative of entries.keys()) if (!present.has(relative)) entries.delete(relative);
  }

  size(root: string): number {
    return this.roots.get(root)?.size ?? 0;
  }
}

/** Reuse one instance across snapshots of the same code roots; it is only ever a cache (dropping it is safe). */
export class StatCache {
  /** Relative path → content hash (protocol/manifest fileHash). */
  readonly hashes = new StampMap<string>();
  /** Relative path of a .gitignore → its parsed matcher. */
  readonly ignores = new StampMap<Ignore>();
}

export type { StampMap };
