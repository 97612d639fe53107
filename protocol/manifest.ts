// Content addressing shared by the packager and the agent: both sides must compute the same hashes from the same
// bytes, so the rules live here once. Hashes never depend on mtimes, walk order or the machine.

import { createHash, Hash } from 'node:crypto';

import type { ManifestEntry } from './messages';

const FILE_DOMAIN = 'tslab-remote/file/v1\0';
const SNAPSHOT_DOMAIN = 'tslab-remote/snapshot/v1\0';

/** SHA-256 of a file's relative path and bytes: a file's identity in a snapshot and the blob store's key. */
export function fileHash(path: string, bytes: Uint8Array): string {
  return fileHasher(path).update(bytes).digest('hex');
}

/** fileHash for bytes that arrive in pieces: update with each, then digest('hex'). */
export function fileHasher(path: string): Hash {
  return createHash('sha256').update(FILE_DOMAIN).update(path).update('\0');
}

/** The snapshot's identity: SHA-256 of its manifest sorted by path. */
export function snapshotHash(files: readonly ManifestEntry[]): string {
  const hash = createHash('sha256').update(SNAPSHOT_DOMAIN);
  for (const file of sortManifest(files)) hash.update(`${file.path}\0${file.size}\0${file.hash}\n`);
  return hash.digest('hex');
}

export function sortManifest(files: readonly ManifestEntry[]): ManifestEntry[] {
  return [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** A file's or snapshot's content hash as it travels and names files: SHA-256, 64 lowercase hex digits. */
export const HASH_PATTERN = /^[0-9a-f]{64}$/;

/** What every check says of a path isSafeRelativePath refuses: `what` names it, `fix` says what to send instead. */
export function unsafePathMessage(what: string, path: unknown, fix: string): string {
  return (
    `${what} ${JSON.stringify(path)} is not a safe relative path (absolute, "..", ".", empty segment, backslash, drive ` +
    `letter, a name over 255 bytes or over 4096 bytes in all): ${fix}`
  );
}

export const UNSAFE_PATH_FIX =
  'list files relative to the code root with "/" separators, and rename or exclude files with such long names';

/**
 * A path that stays inside the directory it is joined to on every platform: relative, POSIX separators, no `..`,
 * `.` or empty segments, no backslashes, drive letters or NUL bytes. It must also fit common file systems: no segment
 * over 255 bytes (NAME_MAX) and at most 4096 bytes in all (PATH_MAX), counted in UTF-8.
 */
export function isSafeRelativePath(path: string): boolean {
  if (path.length === 0 || Buffer.byteLength(path) > 4096) return false;
  if (path.startsWith('/') || path.includes('\\') || path.includes('\0') || /^[a-zA-Z]:/.test(path)) return false;
  return path
    .split('/')
    .every((segment) => segment !== '' && segment !== '.' && segment !== '..' && Buffer.byteLength(segment) <= 255);
}
