// Snapshots of a code root on the client side: the manifest (path, size, content hash) of every file to ship, and
// the zip of the files an agent lacks. Hashing rules are shared with the agent (protocol/manifest.ts); which files
// are shipped is decided by exclude-rules.ts, how links are treated by file-walk.ts.

import * as path from 'node:path';
import JSZip from 'jszip';

import { snapshotHash, sortManifest } from '../../../protocol/manifest';
import type { ManifestEntry } from '../../../protocol/messages';
import { forEachLimit } from '../../../common/bounded';
import { ExcludeRules } from './exclude-rules';
import { walkTree } from './file-walk';
import { hashFiles, READ_CONCURRENCY } from './hash-files';
import { unreadableError } from './snapshot-error';
import { nodeFs, type SnapshotFs, withDefaults } from './snapshot-fs';
import { checkTotalSize, DEFAULT_LARGE_FILE_BYTES, DEFAULT_MAX_BYTES, largeFileWarnings } from './snapshot-limits';
import type { StatCache } from './stat-cache';

export { findCodeRoot } from './code-root';
export { ALWAYS_EXCLUDED, DEFAULT_EXCLUDES } from './exclude-rules';
export { SnapshotError } from './snapshot-error';
export { DEFAULT_LARGE_FILE_BYTES, DEFAULT_MAX_BYTES } from './snapshot-limits';
export type { SnapshotFs } from './snapshot-fs';
export { StatCache } from './stat-cache';

export interface LocalSnapshot {
  /** Absolute path of the code root. */
  root: string;
  hash: string;
  /** Sorted by path. */
  files: ManifestEntry[];
}

export interface SnapshotOptions {
  /** Extra patterns in .gitignore syntax, relative to the root; `!pattern` re-includes a default or gitignored path. */
  exclude?: readonly string[];
  /** Fail when the shipped files add up to more (default 100 MB). */
  maxBytes?: number;
  /** Warn about each file larger than this (default 10 MB). */
  largeFileBytes?: number;
  /** Reuse across snapshots: unchanged files (size, mtime, inode) are not read again. */
  statCache?: StatCache;
  /** Replace some file-system calls, e.g. to count reads. */
  fs?: Partial<SnapshotFs>;
  /** Files read at once (default 16). */
  concurrency?: number;
}

export interface SnapshotResult extends LocalSnapshot {
  /** Total size of the files. */
  bytes: number;
  /** Large files shipped, links and names skipped: worth showing to the user, never fatal. */
  warnings: string[];
}

/**
 * Walks `root` (honouring .gitignore files, the default and the user's excludes), checks the size limits, and hashes
 * every file to ship. Throws a SnapshotError (SNAPSHOT_TOO_LARGE, SNAPSHOT_UNREADABLE) the user can act on.
 */
export async function snapshot(root: string, options: SnapshotOptions = {}): Promise<SnapshotResult> {
  const absolute = path.resolve(root);
  const fs = withDefaults(options.fs);
  const { statCache } = options;
  const checkedAtMs = Date.now();
  const walked = await walkTree(absolute, { fs, rules: ExcludeRules.create(options.exclude), statCache, checkedAtMs });
  const sized = walked.files.map((file) => ({ path: file.path, size: file.stamp.size }));
  checkTotalSize(absolute, sized, options.maxBytes ?? DEFAULT_MAX_BYTES);
  const hashed = await hashFiles(walked.files, {
    root: absolute,
    fs,
    statCache,
    checkedAtMs,
    concurrency: options.concurrency,
  });
  const unreadable = [...walked.unreadable.sort(), ...hashed.unreadable];
  if (unreadable.length > 0) throw unreadableError(absolute, unreadable);
  const files = sortManifest(hashed.entries);
  statCache?.hashes.retain(absolute, new Set(files.map((file) => file.path)));
  statCache?.ignores.retain(absolute, new Set(walked.gitignores));
  return {
    root: absolute,
    hash: snapshotHash(files),
    files,
    bytes: files.reduce((sum, file) => sum + file.size, 0),
    warnings: [
      ...walked.warnings.sort(),
      ...largeFileWarnings(sized, options.largeFileBytes ?? DEFAULT_LARGE_FILE_BYTES),
    ],
  };
}

/** `snapshot` with the default options, for callers that only need the manifest. */
export async function snapshotDirectory(root: string): Promise<LocalSnapshot> {
  const { root: absolute, hash, files } = await snapshot(root);
  return { root: absolute, hash, files };
}

/**
 * A STORE (uncompressed) zip of the given files of a snapshot: on fast links compression costs more time than it
 * saves. Links are zipped as their target's content, as they were hashed. Fails if a file's size no longer matches
 * the manifest (it changed since the snapshot: take a new one); the agent checks the hashes.
 */
export async function zipFiles(
  snapshot: LocalSnapshot,
  files: readonly ManifestEntry[],
  fs: Pick<SnapshotFs, 'readFile'> = nodeFs,
): Promise<Buffer> {
  const contents = new Map<ManifestEntry, Buffer>();
  await forEachLimit(files, READ_CONCURRENCY, async (file) => {
    const bytes = await fs.readFile(path.join(snapshot.root, file.path));
    if (bytes.length !== file.size) {
      throw new Error(
        `${file.path} is ${bytes.length} bytes, the snapshot says ${file.size}: it changed since the snapshot was taken; take a new one`,
      );
    }
    contents.set(file, bytes);
  });
  // Entries in the order given, whatever order the reads finished in.
  const zip = new JSZip();
  for (const file of files) zip.file(file.path, contents.get(file)!, { createFolders: false });
  return zip.generateAsync({ type: 'nodebuffer', compression: 'STORE' });
}
