// What makes a snapshot manifest acceptable, checked before the store trusts it for anything: shape, safe paths,
// no path conflicts, the agent's bounds, and a snapshot hash that matches the files.

import {
  HASH_PATTERN,
  isSafeRelativePath,
  snapshotHash,
  UNSAFE_PATH_FIX,
  unsafePathMessage,
} from '../../protocol/manifest';
import type { ManifestEntry } from '../../protocol/messages';
import { agentError } from '../archive';

export const HASH = HASH_PATTERN;

export interface ManifestBounds {
  maxFiles: number;
  maxFileBytes: number;
  maxSnapshotBytes: number;
}

export function validateManifest(snapshot: string, files: ManifestEntry[], bounds: ManifestBounds): void {
  assertHash(snapshot, 'snapshot');
  const { maxFiles } = bounds;
  if (files.length > maxFiles) {
    throw agentError(
      'TOO_LARGE',
      `the snapshot has ${files.length} files, over the agent's bound maxFiles = ${maxFiles}: ` +
        'exclude generated or data directories from the code root (.gitignore or excludes) or raise maxFiles on the agent',
      { bound: 'maxFiles', limit: maxFiles, value: files.length },
    );
  }
  for (const file of files) validateEntry(file, bounds.maxFileBytes);
  assertNoPathConflicts(files);
  assertTotalSize(files, bounds.maxSnapshotBytes);
  const actual = snapshotHash(files);
  if (actual !== snapshot) {
    throw agentError(
      'HASH_MISMATCH',
      `the manifest hashes to snapshot ${actual.slice(0, 12)}, not ${snapshot.slice(0, 12)} as the request says: ` +
        'compute the snapshot hash with protocol/manifest snapshotHash over the same files',
      { expected: snapshot, value: actual },
    );
  }
}

export function assertHash(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || !HASH.test(value)) {
    throw agentError(
      'BAD_MESSAGE',
      `${what} ${JSON.stringify(value)?.slice(0, 80)} is not a SHA-256 hex digest: send 64 lowercase hex digits`,
    );
  }
}

function validateEntry(file: ManifestEntry, maxFileBytes: number): void {
  if (typeof file.path !== 'string' || !isSafeRelativePath(file.path)) {
    throw agentError('UNSAFE_ARCHIVE', unsafePathMessage('manifest path', file.path, UNSAFE_PATH_FIX), {
      path: file.path,
    });
  }
  assertHash(file.hash, `hash of ${JSON.stringify(file.path)}`);
  if (!Number.isSafeInteger(file.size) || file.size < 0) {
    throw agentError(
      'BAD_MESSAGE',
      `manifest size of ${JSON.stringify(file.path)} is ${file.size}: send a byte count`,
      {
        path: file.path,
      },
    );
  }
  if (file.size > maxFileBytes) {
    throw agentError(
      'TOO_LARGE',
      `file ${JSON.stringify(file.path)} is ${file.size} bytes, over the agent's per-file bound maxFileBytes = ` +
        `${maxFileBytes}: exclude it from the code root (.gitignore or excludes) or raise maxFileBytes on the agent`,
      { path: file.path, bound: 'maxFileBytes', limit: maxFileBytes, value: file.size },
    );
  }
}

function assertTotalSize(files: ManifestEntry[], maxSnapshotBytes: number): void {
  const total = files.reduce((sum, f) => sum + f.size, 0);
  if (total <= maxSnapshotBytes) return;
  const largest = [...files].sort((a, b) => b.size - a.size).slice(0, 5);
  throw agentError(
    'TOO_LARGE',
    `the snapshot's files total ${total} bytes, over the agent's bound maxSnapshotBytes = ${maxSnapshotBytes}; ` +
      `largest: ${largest.map((f) => `${f.path} (${f.size})`).join(', ')}: ` +
      'exclude large files from the code root (.gitignore or excludes) or raise maxSnapshotBytes on the agent',
    { bound: 'maxSnapshotBytes', limit: maxSnapshotBytes, value: total, largest: largest.map((f) => f.path) },
  );
}

/** Duplicate paths, or a path that is also another path's directory, cannot both exist in one tree. */
function assertNoPathConflicts(files: ManifestEntry[]): void {
  const paths = new Set<string>();
  for (const file of files) {
    if (paths.has(file.path)) {
      throw agentError('BAD_MESSAGE', `manifest lists ${JSON.stringify(file.path)} twice: list each file once`, {
        path: file.path,
      });
    }
    paths.add(file.path);
  }
  for (const file of files) {
    for (let i = file.path.indexOf('/'); i >= 0; i = file.path.indexOf('/', i + 1)) {
      const dir = file.path.slice(0, i);
      if (paths.has(dir)) {
        throw agentError(
          'BAD_MESSAGE',
          `manifest lists ${JSON.stringify(dir)} as a file and as the directory of ${JSON.stringify(file.path)}: ` +
            'a path cannot be both; re-package the snapshot',
          { path: dir },
        );
      }
    }
  }
}
