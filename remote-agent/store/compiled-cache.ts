// The workers' compiled-TypeScript cache (<workdir>/compiled/<key>.js, written by worker/modules.ts, touched on
// each use) costs disk like the snapshots do: eviction counts it against the budget and removes its least recently
// used files together with the least recently used snapshots.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import { forEachLimit } from '../../common/bounded';
import { FS_CONCURRENCY, statOrUndefined } from './fs-helpers';

export interface CompiledFile {
  file: string;
  size: number;
  /** Last compile or use. */
  mtimeMs: number;
}

/** The cache's files, least recently used first; none when the directory does not exist yet. */
export async function scanCompiled(dir: string | undefined): Promise<CompiledFile[]> {
  if (dir === undefined) return [];
  const names = await fs.readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  const files: CompiledFile[] = [];
  // Only finished files: a worker's .tmp file is renamed into place once written.
  await forEachLimit(names, FS_CONCURRENCY, async (name) => {
    const file = path.join(dir, name);
    const stat = await statOrUndefined(file);
    if (stat?.isFile() && name.endsWith('.js')) files.push({ file, size: stat.size, mtimeMs: stat.mtimeMs });
  });
  return files.sort((a, b) => a.mtimeMs - b.mtimeMs);
}
