// Errors a snapshot raises for the user to act on, with a code to tell them apart and the paths involved.

export type SnapshotErrorCode = 'SNAPSHOT_TOO_LARGE' | 'SNAPSHOT_UNREADABLE';

export class SnapshotError extends Error {
  constructor(
    readonly code: SnapshotErrorCode,
    message: string,
    /** The offending relative paths (directories end with '/'). */
    readonly paths: readonly string[],
  ) {
    super(message);
    this.name = 'SnapshotError';
  }
}

/** Every unreadable path in one error, so the user fixes them all in one go. */
export function unreadableError(root: string, paths: readonly string[]): SnapshotError {
  const shown = paths.slice(0, 20).map((p) => `  ${p}`);
  if (paths.length > shown.length) shown.push(`  ... and ${paths.length - shown.length} more`);
  return new SnapshotError(
    'SNAPSHOT_UNREADABLE',
    `cannot read ${paths.length} path(s) under the code root ${root} (permission denied):\n${shown.join('\n')}\n` +
      `fix their permissions, or leave them out with an exclude pattern such as '/${paths[0]}'`,
    paths,
  );
}
