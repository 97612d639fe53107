// Eviction: above the disk budget, the least recently used snapshots that no job or worker holds are removed, then
// the blobs no snapshot links to any more. Blob bytes are the cost (hard links share them).

import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import type { BlobIndex } from './blob-index';
import { forEachLimit } from '../../common/bounded';
import { scanCompiled } from './compiled-cache';
import { FS_CONCURRENCY } from './fs-helpers';

export interface EvictionContext {
  blobs: BlobIndex;
  /** Snapshot hash → last use (ms); eviction deletes the entries of what it removes. */
  lastUsed: Map<string, number>;
  /** False for snapshots a job pins, a worker uses, or a creation is making. */
  isEvictable(snapshot: string): boolean;
  dirOf(snapshot: string): string;
  /** The workers' compiled-TypeScript cache, counted in the budget. */
  compiledDir?: string;
  budgetBytes: number;
  log: (line: string) => void;
}

export class Eviction {
  private running: Promise<void> = Promise.resolve();
  evicted = 0;

  constructor(private readonly context: EvictionContext) {}

  /**
   * Removes least recently used snapshots until the blobs fit the budget, or `targetBytes` when lower (a full disk
   * makes room below the budget); one eviction at a time.
   */
  run(targetBytes = this.context.budgetBytes): Promise<void> {
    const run = this.running.then(() => this.evictNow(Math.min(targetBytes, this.context.budgetBytes)));
    // The chain must survive a failed run; the caller of that run sees (and reports) its error.
    this.running = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async evictNow(budgetBytes: number): Promise<void> {
    const { blobs, log } = this.context;
    let leased = blobs.leasedBytes(); // also forgets expired leases
    const compiled = await scanCompiled(this.context.compiledDir);
    let compiledBytes = compiled.reduce((sum, f) => sum + f.size, 0);
    if (blobs.bytes + compiledBytes <= budgetBytes) return;
    // Blobs no snapshot links to (failed uploads, earlier evictions) are the cheapest space to win back.
    await blobs.deleteUnreferenced(blobs.hashes());
    // Leased blobs stay whatever is evicted (an upload in progress needs them), so they do not count against the
    // budget: evicting snapshots to make up for them would remove everything and free nothing.
    leased = blobs.leasedBytes();
    while (blobs.bytes - leased + compiledBytes > budgetBytes) {
      // Snapshots and compiled files go in one least-recently-used order.
      const victim = this.leastRecentlyUsedEvictable();
      const oldest = compiled[0];
      if (oldest && (!victim || oldest.mtimeMs <= (this.context.lastUsed.get(victim) ?? 0))) {
        compiled.shift();
        await fs.rm(oldest.file, { force: true });
        compiledBytes -= oldest.size;
        continue;
      }
      if (!victim) {
        log(
          `store: blobs use ${blobs.bytes} bytes (${leased} of them held for uploads in progress), over ` +
            `diskBudgetBytes = ${budgetBytes}, but every snapshot is pinned by a job or in use by a worker; nothing evicted`,
        );
        return;
      }
      await this.removeSnapshot(victim);
    }
  }

  private leastRecentlyUsedEvictable(): string | undefined {
    let best: string | undefined;
    let bestTime = Infinity;
    for (const [snapshot, lastUsed] of this.context.lastUsed) {
      if (lastUsed < bestTime && this.context.isEvictable(snapshot)) {
        best = snapshot;
        bestTime = lastUsed;
      }
    }
    return best;
  }

  /** Removes the directory, then the blobs whose last other link it held. */
  private async removeSnapshot(snapshot: string): Promise<void> {
    const { blobs, lastUsed, budgetBytes } = this.context;
    const used = lastUsed.get(snapshot) ?? 0;
    lastUsed.delete(snapshot); // first, so no new job finds it while it goes
    const dir = this.context.dirOf(snapshot);
    const candidates = await this.blobsLinkedFrom(dir);
    await fs.rm(dir, { recursive: true, force: true });
    const freed = await blobs.deleteUnreferenced(candidates);
    this.evicted += 1;
    this.context.log(
      `store: evicted snapshot ${snapshot.slice(0, 12)} (last used ${new Date(used).toISOString()}), ` +
        `deleted ${freed} blob(s); blobs now use ${blobs.bytes} of diskBudgetBytes = ${budgetBytes}`,
    );
  }

  /** Blob hashes whose inode the directory links to. */
  private async blobsLinkedFrom(dir: string): Promise<string[]> {
    const files = await fs.readdir(dir, { recursive: true, withFileTypes: true });
    const hashes: string[] = [];
    await forEachLimit(
      files.filter((f) => f.isFile()),
      FS_CONCURRENCY,
      async (f) => {
        const hash = this.context.blobs.hashOfInode((await fs.lstat(path.join(f.parentPath, f.name))).ino);
        if (hash) hashes.push(hash);
      },
    );
    return hashes;
  }
}
