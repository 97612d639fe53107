// The store's blobs: one read-only file per content hash under <workdir>/blobs/<2 hex>/<hash>, indexed in memory
// with their size and inode. Blobs an upload or creation needs are held, and blobs a check reported present are
// leased for a while: eviction deletes neither.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import type { ManifestEntry } from '../../protocol/messages';
import { forEachLimit } from '../../common/bounded';
import { decrement, FS_CONCURRENCY, quickLstat, statOrUndefined } from './fs-helpers';
import { HASH } from './manifest-rules';

/** Blob lstats in flight when checking blobs for writes through a snapshot: cheap calls, so more at once. */
const STAT_CONCURRENCY = 64;

/** What a blob looked like when indexed: a write through a snapshot's hard link changes its size or mtime. */
interface BlobInfo {
  size: number;
  ino: number;
  mtimeMs: number;
}

export class BlobIndex {
  private readonly blobs = new Map<string, BlobInfo>();
  /** Inode → blob hash, to tell which blobs a removed snapshot directory was the last user of. */
  private readonly byIno = new Map<number, string>();
  private totalBytes = 0;
  /** Blob writes in flight: concurrent uploads of one file share one. */
  private readonly writing = new Map<string, Promise<void>>();
  /** Blob hash → number of uploads or creations that need it: eviction never deletes these. */
  private readonly held = new Map<string, number>();
  /**
   * Blob hash → until when (ms) eviction leaves it alone: a client told that only some files are missing uploads
   * just those next, so the present ones must outlive an eviction in between.
   */
  private readonly leases = new Map<string, number>();
  private readonly dirs = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly leaseMs: number,
    private readonly now: () => number,
    private readonly log: (line: string) => void,
  ) {}

  get count(): number {
    return this.blobs.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  has(hash: string): boolean {
    return this.blobs.has(hash);
  }

  hashes(): string[] {
    return [...this.blobs.keys()];
  }

  hashOfInode(ino: number): string | undefined {
    return this.byIno.get(ino);
  }

  pathOf(hash: string): string {
    return path.join(this.root, hash.slice(0, 2), hash);
  }

  /** Indexes what an earlier process stored. */
  async load(): Promise<void> {
    const dirs = (await fs.readdir(this.root, { withFileTypes: true })).filter((d) => d.isDirectory());
    for (const dir of dirs) {
      const full = path.join(this.root, dir.name);
      this.dirs.add(full);
      const names = (await fs.readdir(full)).filter((name) => HASH.test(name) && name.startsWith(dir.name));
      await forEachLimit(names, FS_CONCURRENCY, async (name) => {
        const stat = await fs.lstat(path.join(full, name));
        if (stat.isFile()) this.index(name, stat);
      });
    }
  }

  /** Moves a verified file into place as a blob (rename is atomic); concurrent writers of one hash share one. */
  add(entry: ManifestEntry, file: string): Promise<void> {
    if (this.blobs.has(entry.hash)) return Promise.resolve();
    const pending = this.writing.get(entry.hash);
    if (pending) return pending;
    const write = this.renameIntoPlace(entry, file).finally(() => this.writing.delete(entry.hash));
    this.writing.set(entry.hash, write);
    return write;
  }

  private async renameIntoPlace(entry: ManifestEntry, file: string): Promise<void> {
    const dir = path.join(this.root, entry.hash.slice(0, 2));
    if (!this.dirs.has(dir)) {
      await fs.mkdir(dir, { recursive: true });
      this.dirs.add(dir);
    }
    const target = path.join(dir, entry.hash);
    await fs.rename(file, target);
    this.index(entry.hash, await fs.lstat(target));
  }

  private index(hash: string, stat: BlobInfo): void {
    if (this.blobs.has(hash)) this.forget(hash); // replaced in place (a concurrent writer): count it once
    this.blobs.set(hash, { size: stat.size, ino: stat.ino, mtimeMs: stat.mtimeMs });
    this.byIno.set(stat.ino, hash);
    this.totalBytes += stat.size;
  }

  forget(hash: string): void {
    const info = this.blobs.get(hash);
    if (!info) return;
    this.blobs.delete(hash);
    if (this.byIno.get(info.ino) === hash) this.byIno.delete(info.ino);
    this.totalBytes -= info.size;
  }

  /** Keeps the manifest's blobs out of eviction's reach while `work` needs them. */
  async withHeld<T>(files: ManifestEntry[], work: () => Promise<T>): Promise<T> {
    for (const f of files) this.held.set(f.hash, (this.held.get(f.hash) ?? 0) + 1);
    try {
      return await work();
    } finally {
      for (const f of files) decrement(this.held, f.hash);
    }
  }

  /** The hashes the index lacks; when it lacks some, the others are leased until the client sends those. */
  missing(files: ManifestEntry[]): string[] {
    const missing = [...new Set(files.filter((f) => !this.blobs.has(f.hash)).map((f) => f.hash))];
    if (missing.length > 0) {
      const until = this.now() + this.leaseMs;
      for (const f of files) if (this.blobs.has(f.hash)) this.leases.set(f.hash, until);
    }
    return missing;
  }

  /** What a failed upload stored that no snapshot links to is given back: its leases end, its blobs go; how many. */
  async reclaim(files: ManifestEntry[]): Promise<number> {
    this.endLeases(files);
    return this.deleteUnreferenced([...new Set(files.map((f) => f.hash))]);
  }

  /** The files are linked from a snapshot now: they need no lease. */
  endLeases(files: ManifestEntry[]): void {
    for (const file of files) this.leases.delete(file.hash);
  }

  /** Forgets expired leases; returns the bytes of the blobs still leased. */
  leasedBytes(): number {
    const now = this.now();
    let bytes = 0;
    for (const hash of this.leases.keys()) if (this.isLeased(hash, now)) bytes += this.blobs.get(hash)?.size ?? 0;
    return bytes;
  }

  private isLeased(hash: string, now: number): boolean {
    const until = this.leases.get(hash);
    if (until === undefined) return false;
    if (until > now) return true;
    this.leases.delete(hash);
    return false;
  }

  /** Deletes the given blobs that no snapshot links to (link count 1) and no upload, creation or lease holds. */
  async deleteUnreferenced(hashes: string[]): Promise<number> {
    let deleted = 0;
    const now = this.now();
    await forEachLimit(hashes, FS_CONCURRENCY, async (hash) => {
      if (this.held.has(hash) || this.writing.has(hash) || this.isLeased(hash, now) || !this.blobs.has(hash)) return;
      const file = this.pathOf(hash);
      const stat = await statOrUndefined(file);
      if (stat && stat.nlink > 1) return;
      if (stat) await fs.rm(file, { force: true });
      this.forget(hash);
      deleted += 1;
    });
    return deleted;
  }

  /**
   * Snapshot files are hard links to the blobs, and mode 0444 does not stop a job running as root from rewriting
   * one: the blob would then carry wrong bytes into every later snapshot. Before a new snapshot links the manifest's
   * blobs, a blob whose size or mtime changed since it was indexed is deleted and forgotten, so it counts as missing
   * and the client uploads it again. One lstat per held blob keeps this cheap.
   */
  async dropModified(files: ManifestEntry[]): Promise<void> {
    const present = files.filter((file) => this.blobs.has(file.hash) && !this.writing.has(file.hash));
    await forEachLimit(present, STAT_CONCURRENCY, async (file) => {
      const stat = await quickLstat(this.pathOf(file.hash));
      const info = this.blobs.get(file.hash); // read after the lstat: another entry of the same hash may have dropped it
      if (!info || (stat && stat.size === info.size && stat.mtimeMs === info.mtimeMs)) return;
      await this.drop(file, stat ? 'was modified after upload (a job wrote into its snapshot?)' : 'vanished from disk');
    });
  }

  // A dropped blob stays linked in the snapshots that already hold it; only new snapshots stop reusing it.
  private async drop(file: ManifestEntry, what: string): Promise<void> {
    await fs.rm(this.pathOf(file.hash), { force: true });
    this.forget(file.hash);
    this.log(`store: blob ${file.hash.slice(0, 12)} of ${file.path} ${what}; it will be uploaded again`);
  }
}
