// Size limits of a snapshot, checked from the walk's stat sizes before any file is read: a tree over the limit fails
// at once with what to exclude, and each unusually large file earns a warning.

import { SnapshotError } from './snapshot-error';

export const DEFAULT_MAX_BYTES = 100_000_000;
export const DEFAULT_LARGE_FILE_BYTES = 10_000_000;
const TOP = 5;

interface Sized {
  path: string;
  size: number;
}

/** Throws SNAPSHOT_TOO_LARGE, naming the largest files and directories, when the files add up to over `maxBytes`. */
export function checkTotalSize(root: string, files: readonly Sized[], maxBytes: number): void {
  const total = files.reduce((sum, file) => sum + file.size, 0);
  if (total <= maxBytes) return;
  const dirs = directorySizes(files);
  const largestFiles = largest(files);
  const largestDirs = largest(dirs);
  const suggestion = suggestExclude(files, dirs, total - maxBytes);
  const list = (items: Sized[], suffix: string) =>
    items.map((item) => `  ${formatBytes(item.size).padStart(9)}  ${item.path}${suffix}`).join('\n');
  throw new SnapshotError(
    'SNAPSHOT_TOO_LARGE',
    `the code root ${root} holds ${formatBytes(total)} to ship, over the ${formatBytes(maxBytes)} limit (maxBytes).\n` +
      `Largest files:\n${list(largestFiles, '')}\n` +
      (largestDirs.length ? `Largest directories:\n${list(largestDirs, '/')}\n` : '') +
      `Leave out what the agent does not need, e.g. exclude: ['${suggestion}'] (or a line ${suggestion} in .gitignore), ` +
      'or raise maxBytes.',
    largestFiles.map((file) => file.path),
  );
}

/** One warning per file over `largeFileBytes`, largest first. */
export function largeFileWarnings(files: readonly Sized[], largeFileBytes: number): string[] {
  return files
    .filter((file) => file.size > largeFileBytes)
    .sort((a, b) => b.size - a.size)
    .map(
      (file) =>
        `large file ${file.path} (${formatBytes(file.size)}, over ${formatBytes(largeFileBytes)}) is shipped: ` +
        `exclude: ['/${file.path}'] leaves it out if the agent does not need it`,
    );
}

// Total size of every directory (not the root), counting everything below it.
function directorySizes(files: readonly Sized[]): Sized[] {
  const sizes = new Map<string, number>();
  for (const file of files) {
    for (let slash = file.path.indexOf('/'); slash !== -1; slash = file.path.indexOf('/', slash + 1)) {
      const dir = file.path.slice(0, slash);
      sizes.set(dir, (sizes.get(dir) ?? 0) + file.size);
    }
  }
  return [...sizes].map(([path, size]) => ({ path, size }));
}

// The TOP largest, ties by path so the message is stable.
function largest(items: readonly Sized[]): Sized[] {
  return [...items].sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1)).slice(0, TOP);
}

// The most specific single pattern that brings the total under the limit: the smallest file or directory at least
// as large as the excess (a file wins a tie: it is the narrower pattern); failing that, the largest directory.
function suggestExclude(files: readonly Sized[], dirs: readonly Sized[], excess: number): string {
  const candidates = [
    ...files.map((file) => ({ size: file.size, pattern: `/${file.path}` })),
    ...dirs.map((dir) => ({ size: dir.size, pattern: `/${dir.path}/` })),
  ];
  const enough = candidates.filter((c) => c.size >= excess).sort((a, b) => a.size - b.size);
  if (enough[0]) return enough[0].pattern;
  const biggest = largest(dirs)[0] ?? largest(files)[0]!;
  return dirs.includes(biggest) ? `/${biggest.path}/` : `/${biggest.path}`;
}

/** Decimal units, one decimal: 12.3 MB. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}
