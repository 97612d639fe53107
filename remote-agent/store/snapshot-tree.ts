// Building one snapshot directory: its tree is made under tmp/ (directories, then a hard link per file to its blob)
// and renamed into snapshots/ in one step, so a snapshot directory is complete whenever it exists.

import { constants as fsConstants, promises as fs } from 'node:fs';

import * as path from 'node:path';

import { AgentError } from '../../protocol/errors';
import type { ManifestEntry } from '../../protocol/messages';
import type { BlobIndex } from './blob-index';
import { forEachLimit } from '../../common/bounded';
import { FS_CONCURRENCY, fsFailure, throwFor } from './fs-helpers';

/** Directories first (each once, parents before children), then one hard link per file. */
export async function buildTree(root: string, files: ManifestEntry[], blobs: BlobIndex): Promise<void> {
  await fs.mkdir(root);
  for (const level of directoriesByDepth(files)) {
    await forEachLimit(level, FS_CONCURRENCY, (dir) =>
      fs.mkdir(path.join(root, dir)).catch((error) => throwFor(dir, error)),
    );
  }
  await forEachLimit(files, FS_CONCURRENCY, (file) => linkBlob(blobs, file, path.join(root, file.path)));
}

/** Renames the finished tree into place; if another process won the race, its identical tree is used. */
export async function publish(building: string, target: string, log: (line: string) => void): Promise<void> {
  try {
    await fs.rename(building, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw fsFailure(`move ${building} to ${target}`, error);
    log(`store: snapshot ${path.basename(target).slice(0, 12)} was created concurrently; using the existing one`);
  }
}

// Hard links cost no space and no copy; some file systems or mounts refuse them, so copy there.
async function linkBlob(blobs: BlobIndex, file: ManifestEntry, target: string): Promise<void> {
  const blob = blobs.pathOf(file.hash);
  try {
    await fs.link(blob, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw blobVanished(blobs, file, error);
    if (code === 'ENAMETOOLONG') throwFor(file.path, error);
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw fsFailure(`link ${blob} to ${target}`, error);
    await fs.copyFile(blob, target, fsConstants.COPYFILE_FICLONE);
  }
}

function blobVanished(blobs: BlobIndex, file: ManifestEntry, cause: unknown): AgentError {
  blobs.forget(file.hash);
  return Object.assign(
    new AgentError(
      'FILES_MISSING',
      `the agent lost the stored file ${JSON.stringify(file.path)} (blob ${file.hash.slice(0, 12)}) while creating ` +
        'the snapshot: send snapshot.check again and upload what it reports missing',
      { cause },
    ),
    { paths: [file.path] },
  );
}

/** Every directory the files need, grouped by depth so each level can be created in parallel after its parents. */
function directoriesByDepth(files: ManifestEntry[]): string[][] {
  const seen = new Set<string>();
  const levels: string[][] = [];
  for (const file of files) {
    let depth = 0;
    for (let i = file.path.indexOf('/'); i >= 0; i = file.path.indexOf('/', i + 1), depth += 1) {
      const dir = file.path.slice(0, i);
      if (seen.has(dir)) continue;
      seen.add(dir);
      (levels[depth] ??= []).push(dir);
    }
  }
  return levels;
}
