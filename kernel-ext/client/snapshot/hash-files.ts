// Content hashes of walked files: taken from the stat cache for unchanged files, otherwise read (bounded
// concurrency) and hashed in one pass over the bytes.

import { fileHash } from '../../../protocol/manifest';
import type { ManifestEntry } from '../../../protocol/messages';
import { forEachLimit } from '../../../common/bounded';
import type { WalkedFile } from './file-walk';
import { errorCode, type SnapshotFs } from './snapshot-fs';
import type { StatCache } from './stat-cache';

/** Reads in flight at once: enough to keep an SSD and libuv's thread pool busy. */
export const READ_CONCURRENCY = 16;

export interface HashOptions {
  root: string;
  fs: SnapshotFs;
  statCache?: StatCache;
  checkedAtMs: number;
  concurrency?: number;
}

export interface HashResult {
  entries: ManifestEntry[];
  /** Relative paths whose read was refused (permission denied), sorted. */
  unreadable: string[];
}

/** One manifest entry per readable file; files deleted since the walk are left out. */
export async function hashFiles(files: readonly WalkedFile[], options: HashOptions): Promise<HashResult> {
  const { root, fs, statCache, checkedAtMs } = options;
  const result: HashResult = { entries: [], unreadable: [] };
  // Unchanged files first, without a promise each: a warm re-check is this loop only.
  const toRead: WalkedFile[] = [];
  for (const file of files) {
    const cached = statCache?.hashes.get(root, file.path, file.stamp);
    if (cached === undefined) toRead.push(file);
    else result.entries.push({ path: file.path, size: file.stamp.size, hash: cached });
  }
  await forEachLimit(toRead, options.concurrency ?? READ_CONCURRENCY, async (file) => {
    const bytes = await readOrRecord(fs, file, result.unreadable);
    if (!bytes) return;
    const hash = fileHash(file.path, bytes);
    result.entries.push({ path: file.path, size: bytes.length, hash });
    // A size that moved between stat and read means a write in progress: do not vouch for that stamp.
    if (bytes.length === file.stamp.size) statCache?.hashes.set(root, file.path, file.stamp, hash, checkedAtMs);
  });
  return { entries: result.entries, unreadable: result.unreadable.sort() };
}

// The file's bytes; undefined (and the path recorded) when permission is denied, undefined when it vanished.
async function readOrRecord(fs: SnapshotFs, file: WalkedFile, unreadable: string[]): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file.absolute);
  } catch (error) {
    const code = errorCode(error);
    if (code === 'EACCES' || code === 'EPERM') unreadable.push(file.path);
    else if (code !== 'ENOENT') throw error;
    return undefined;
  }
}
