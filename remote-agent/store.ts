// The agent's content-addressed snapshot store.
//
//   <workdir>/blobs/<2 hex>/<hash>   one read-only file per content hash (fileHash of path + bytes)
//   <workdir>/snapshots/<hash>/...   one directory per snapshot: the code root, hard links to the blobs
//   <workdir>/tmp/                   uploads and snapshot directories under construction; emptied on open
//
// A snapshot directory appears atomically (built under tmp/, then renamed) and never changes afterwards, so workers
// can load modules from it while other snapshots come and go. Blob bytes are the disk cost (hard links share them);
// above the budget, the least recently used snapshots that no job or worker holds are removed, then the blobs no
// snapshot links to any more.

import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs, lstat as lstatCallback, Stats } from 'node:fs';
import * as path from 'node:path';

import { AgentError } from '../protocol/errors';
import { isSafeRelativePath, snapshotHash } from '../protocol/manifest';
import type { ManifestEntry, StoreStats } from '../protocol/messages';
import { agentError, openArchive, readVerified } from './archive';

export interface StoreOptions {
  /** Absolute; the store owns <workdir>/blobs, <workdir>/snapshots and <workdir>/tmp. */
  workdir: string;
  /** Bytes of blobs kept; least recently used snapshots are evicted above it. */
  diskBudgetBytes: number;
  /** Bound on one compressed upload archive. */
  maxArchiveBytes: number;
  /** Bound on one file's (uncompressed) size. */
  maxFileBytes: number;
  /** Bound on the sum of a manifest's sizes. */
  maxSnapshotBytes: number;
  /** Bound on the number of files in a manifest. */
  maxFiles: number;
  /**
   * How long blobs a check or partial upload reported present are spared by eviction (default 2 minutes, renewed
   * by each batch of an upload): the client uploads just the missing files next. An abandoned upload's blobs become
   * deletable after it.
   */
  blobLeaseMs?: number;
  log: (line: string) => void;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export const DEFAULT_STORE_LIMITS: Omit<StoreOptions, 'workdir' | 'log'> = {
  diskBudgetBytes: 10 * GiB,
  maxArchiveBytes: 1 * GiB,
  maxFileBytes: 256 * MiB,
  maxSnapshotBytes: 1 * GiB,
  maxFiles: 100_000,
};

/** File system operations in flight at once: enough to hide syscall latency, few enough not to starve libuv. */
const FS_CONCURRENCY = 32;
const DEFAULT_BLOB_LEASE_MS = 2 * 60_000;
/** Blob lstats in flight when checking blobs for writes through a snapshot: cheap calls, so more at once. */
const STAT_CONCURRENCY = 64;
/** Archive entries inflated at once: each holds its bytes in memory until verified. */
const INFLATE_CONCURRENCY = 4;

const HASH = /^[0-9a-f]{64}$/;

/** What a blob looked like when indexed: a write through a snapshot's hard link changes its size or mtime. */
interface BlobInfo {
  size: number;
  ino: number;
  mtimeMs: number;
}

export class SnapshotStore {
  readonly snapshotsRoot: string;
  private readonly blobsRoot: string;
  private readonly tmpRoot: string;
  /** Snapshot hash → last use (ms); insertion order is irrelevant, eviction sorts by time. */
  private readonly snapshots = new Map<string, number>();
  private readonly blobs = new Map<string, BlobInfo>();
  /** Inode → blob hash, to tell which blobs a removed snapshot directory was the last user of. */
  private readonly blobByIno = new Map<number, string>();
  private blobBytes = 0;
  /** Creations in flight: concurrent requests for one snapshot share one. */
  private readonly creating = new Map<string, Promise<void>>();
  /** Blob writes in flight: concurrent uploads of one file share one. */
  private readonly writingBlobs = new Map<string, Promise<void>>();
  /** Blob hash → number of uploads or creations that need it: eviction never deletes these. */
  private readonly heldBlobs = new Map<string, number>();
  /**
   * Blob hash → until when (ms) eviction leaves it alone: a client told that only some files are missing uploads
   * just those next, so the present ones must outlive an eviction in between.
   */
  private readonly leasedBlobs = new Map<string, number>();
  private readonly pins = new Map<string, number>();
  private readonly inUse = new Map<string, ReadonlySet<string>>();
  private readonly blobDirs = new Set<string>();
  private evicting: Promise<void> = Promise.resolve();
  private created = 0;
  private evicted = 0;

  private constructor(private readonly options: StoreOptions) {
    this.snapshotsRoot = path.join(options.workdir, 'snapshots');
    this.blobsRoot = path.join(options.workdir, 'blobs');
    this.tmpRoot = path.join(options.workdir, 'tmp');
  }

  /** Creates the layout, clears what an earlier process left half-done, and indexes what it completed. */
  static async open(options: StoreOptions): Promise<SnapshotStore> {
    if (!path.isAbsolute(options.workdir)) {
      throw new AgentError('BAD_MESSAGE', `store workdir ${JSON.stringify(options.workdir)} is not absolute: pass an absolute path`);
    }
    const store = new SnapshotStore(options);
    await Promise.all([store.blobsRoot, store.snapshotsRoot].map((dir) => fs.mkdir(dir, { recursive: true })));
    // Leftovers in tmp/ are interrupted uploads and creations: never complete, never referenced.
    await fs.rm(store.tmpRoot, { recursive: true, force: true });
    await fs.mkdir(store.tmpRoot, { recursive: true });
    await store.indexSnapshots();
    await store.indexBlobs();
    options.log(
      `store: ${store.snapshots.size} snapshot(s), ${store.blobs.size} blob(s), ${store.blobBytes} bytes in ${options.workdir}`,
    );
    return store;
  }

  dirOf(snapshot: string): string {
    assertHash(snapshot, 'snapshot');
    return path.join(this.snapshotsRoot, snapshot);
  }

  has(snapshot: string): boolean {
    return this.snapshots.has(snapshot);
  }

  /** Which content hashes does the store lack? Creates the snapshot at once when it lacks none. */
  async check(snapshot: string, files: ManifestEntry[]): Promise<{ ready: boolean; missing: string[] }> {
    return this.guardDisk(() => this.checkNow(snapshot, files));
  }

  private async checkNow(snapshot: string, files: ManifestEntry[]): Promise<{ ready: boolean; missing: string[] }> {
    this.validateManifest(snapshot, files);
    if (this.snapshots.has(snapshot)) {
      this.touch(snapshot);
      return { ready: true, missing: [] };
    }
    await this.dropModifiedBlobs(files);
    const missing = this.missingHashes(files);
    if (missing.length > 0) return { ready: false, missing };
    await this.withHeldBlobs(files, () => this.ensureSnapshot(snapshot, files));
    return { ready: true, missing: [] };
  }

  /**
   * Verifies the archive against the manifest and stores its files as blobs; creates the snapshot once no file is
   * missing. An upload may carry part of the missing files (clients send large sets in batches, for progress): the
   * reply lists what is still missing.
   */
  async upload(snapshot: string, files: ManifestEntry[], archive: Buffer): Promise<{ ready: boolean; missing: string[] }> {
    return this.guardDisk(() => this.uploadNow(snapshot, files, archive));
  }

  private async uploadNow(snapshot: string, files: ManifestEntry[], archive: Buffer): Promise<{ ready: boolean; missing: string[] }> {
    this.validateManifest(snapshot, files);
    if (this.snapshots.has(snapshot)) {
      this.touch(snapshot);
      return { ready: true, missing: [] };
    }
    return this.withHeldBlobs(files, async () => {
      await this.dropModifiedBlobs(files);
      await this.ingest(files, archive);
      const missing = this.missingHashes(files);
      if (missing.length > 0) return { ready: false, missing };
      await this.ensureSnapshot(snapshot, files);
      return { ready: true, missing: [] };
    });
  }

  /**
   * A full disk is the operator's to fix, not a bug: say so with DISK_FULL. Uploads and creations work in tmp/ and
   * clean up after themselves, so nothing half-made remains and the same request can simply be retried.
   */
  private async guardDisk<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (hasErrorCode(error, 'ENAMETOOLONG')) throw nameTooLong(error);
      if (!isDiskFull(error)) throw error;
      this.options.log(`store: out of disk space in ${this.options.workdir}: ${(error as Error).message}`);
      throw new AgentError(
        'DISK_FULL',
        `the agent's disk is full (workdir ${this.options.workdir}); nothing of this snapshot was kept. Free space ` +
          'there or lower --disk-budget on the agent, then run again',
        { cause: error },
      );
    }
  }

  touch(snapshot: string): void {
    if (!this.snapshots.has(snapshot)) return;
    const now = Date.now();
    this.snapshots.set(snapshot, now);
    // The directory's mtime carries the LRU order across restarts; losing it only makes the order less exact.
    fs.utimes(this.dirOf(snapshot), now / 1000, now / 1000).catch((error: Error) =>
      this.options.log(`store: cannot record use of snapshot ${snapshot.slice(0, 12)}: ${error.message}`),
    );
  }

  pin(snapshot: string): () => void {
    this.pins.set(snapshot, (this.pins.get(snapshot) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      decrement(this.pins, snapshot);
    };
  }

  setInUse(owner: string, snapshots: Iterable<string>): void {
    const set = new Set(snapshots);
    if (set.size === 0) this.inUse.delete(owner);
    else this.inUse.set(owner, set);
  }

  stats(): StoreStats {
    return {
      snapshots: this.snapshots.size,
      blobs: this.blobs.size,
      bytes: this.blobBytes,
      created: this.created,
      evicted: this.evicted,
    };
  }

  /** Removes least recently used snapshots until the blobs fit the budget; one eviction at a time. */
  evict(): Promise<void> {
    const run = this.evicting.then(() => this.evictNow());
    // The chain must survive a failed run; the caller of that run sees (and reports) its error.
    this.evicting = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  // ---- manifest validation ----------------------------------------------------------------------------------

  /** Checks shape, paths, bounds and the snapshot hash before the manifest is trusted for anything. */
  private validateManifest(snapshot: string, files: ManifestEntry[]): void {
    assertHash(snapshot, 'snapshot');
    const { maxFiles } = this.options;
    if (files.length > maxFiles) {
      throw agentError(
        'TOO_LARGE',
        `the snapshot has ${files.length} files, over the agent's bound maxFiles = ${maxFiles}: ` +
          'exclude generated or data directories from the code root (.gitignore or excludes) or raise maxFiles on the agent',
        { bound: 'maxFiles', limit: maxFiles, value: files.length },
      );
    }
    for (const file of files) this.validateEntry(file);
    assertNoPathConflicts(files);
    this.assertTotalSize(files);
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

  private validateEntry(file: ManifestEntry): void {
    if (typeof file.path !== 'string' || !isSafeRelativePath(file.path)) {
      throw agentError(
        'UNSAFE_ARCHIVE',
        `manifest path ${JSON.stringify(file.path)} is not a safe relative path (absolute, "..", ".", empty segment, ` +
          'backslash, drive letter, a name over 255 bytes or over 4096 bytes in all): list files relative to the code ' +
          'root with "/" separators, and rename or exclude files with such long names',
        { path: file.path },
      );
    }
    assertHash(file.hash, `hash of ${JSON.stringify(file.path)}`);
    if (!Number.isSafeInteger(file.size) || file.size < 0) {
      throw agentError('BAD_MESSAGE', `manifest size of ${JSON.stringify(file.path)} is ${file.size}: send a byte count`, {
        path: file.path,
      });
    }
    const { maxFileBytes } = this.options;
    if (file.size > maxFileBytes) {
      throw agentError(
        'TOO_LARGE',
        `file ${JSON.stringify(file.path)} is ${file.size} bytes, over the agent's per-file bound maxFileBytes = ` +
          `${maxFileBytes}: exclude it from the code root (.gitignore or excludes) or raise maxFileBytes on the agent`,
        { path: file.path, bound: 'maxFileBytes', limit: maxFileBytes, value: file.size },
      );
    }
  }

  private assertTotalSize(files: ManifestEntry[]): void {
    const total = files.reduce((sum, f) => sum + f.size, 0);
    const { maxSnapshotBytes } = this.options;
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

  /** The hashes the store lacks; when it lacks some, the others are leased until the client sends those. */
  private missingHashes(files: ManifestEntry[]): string[] {
    const missing = [...new Set(files.filter((f) => !this.blobs.has(f.hash)).map((f) => f.hash))];
    if (missing.length > 0) {
      const until = Date.now() + (this.options.blobLeaseMs ?? DEFAULT_BLOB_LEASE_MS);
      for (const f of files) if (this.blobs.has(f.hash)) this.leasedBlobs.set(f.hash, until);
    }
    return missing;
  }

  private isLeased(hash: string, now: number): boolean {
    const until = this.leasedBlobs.get(hash);
    if (until === undefined) return false;
    if (until > now) return true;
    this.leasedBlobs.delete(hash);
    return false;
  }

  // ---- upload -----------------------------------------------------------------------------------------------

  /** All-or-nothing: entries are verified into a private temp dir and become blobs only when every one passed. */
  private async ingest(files: ManifestEntry[], archive: Buffer): Promise<void> {
    const manifest = new Map(files.map((f) => [f.path, f]));
    const entries = await openArchive(archive, manifest, this.options.maxArchiveBytes);
    const staging = await fs.mkdtemp(path.join(this.tmpRoot, 'upload.'));
    try {
      const staged: { entry: ManifestEntry; file: string }[] = [];
      await forEachLimit(entries, INFLATE_CONCURRENCY, async (archived, i) => {
        const bytes = await readVerified(archived);
        if (this.blobs.has(archived.entry.hash)) return; // verified, but already held
        const file = path.join(staging, String(i));
        await fs.writeFile(file, bytes, { mode: 0o444 });
        staged.push({ entry: archived.entry, file });
      });
      await forEachLimit(staged, FS_CONCURRENCY, ({ entry, file }) => this.addBlob(entry, file));
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
  }

  /** Moves a verified file into place as a blob (rename is atomic); concurrent writers of one hash share one. */
  private addBlob(entry: ManifestEntry, file: string): Promise<void> {
    if (this.blobs.has(entry.hash)) return Promise.resolve();
    const pending = this.writingBlobs.get(entry.hash);
    if (pending) return pending;
    const write = this.renameIntoBlobs(entry, file).finally(() => this.writingBlobs.delete(entry.hash));
    this.writingBlobs.set(entry.hash, write);
    return write;
  }

  private async renameIntoBlobs(entry: ManifestEntry, file: string): Promise<void> {
    const dir = path.join(this.blobsRoot, entry.hash.slice(0, 2));
    if (!this.blobDirs.has(dir)) {
      await fs.mkdir(dir, { recursive: true });
      this.blobDirs.add(dir);
    }
    const target = path.join(dir, entry.hash);
    await fs.rename(file, target);
    this.indexBlob(entry.hash, await fs.lstat(target));
  }

  private blobPath(hash: string): string {
    return path.join(this.blobsRoot, hash.slice(0, 2), hash);
  }

  private indexBlob(hash: string, stat: BlobInfo): void {
    const previous = this.blobs.get(hash);
    if (previous) this.forgetBlob(hash); // replaced in place (a concurrent writer): count it once
    this.blobs.set(hash, { size: stat.size, ino: stat.ino, mtimeMs: stat.mtimeMs });
    this.blobByIno.set(stat.ino, hash);
    this.blobBytes += stat.size;
  }

  private forgetBlob(hash: string): void {
    const info = this.blobs.get(hash);
    if (!info) return;
    this.blobs.delete(hash);
    if (this.blobByIno.get(info.ino) === hash) this.blobByIno.delete(info.ino);
    this.blobBytes -= info.size;
  }

  /** Keeps the manifest's blobs out of eviction's reach while `work` needs them. */
  private async withHeldBlobs<T>(files: ManifestEntry[], work: () => Promise<T>): Promise<T> {
    for (const f of files) this.heldBlobs.set(f.hash, (this.heldBlobs.get(f.hash) ?? 0) + 1);
    try {
      return await work();
    } finally {
      for (const f of files) decrement(this.heldBlobs, f.hash);
    }
  }

  // ---- blobs written through a snapshot ---------------------------------------------------------------------

  /**
   * Snapshot files are hard links to the blobs, and mode 0444 does not stop a job running as root from rewriting
   * one: the blob would then carry wrong bytes into every later snapshot. Before a new snapshot links the manifest's
   * blobs, a blob whose size or mtime changed since it was indexed is deleted and forgotten, so it counts as missing
   * and the client uploads it again. One lstat per held blob keeps this cheap.
   */
  private async dropModifiedBlobs(files: ManifestEntry[]): Promise<void> {
    const held = files.filter((file) => this.blobs.has(file.hash) && !this.writingBlobs.has(file.hash));
    await forEachLimit(held, STAT_CONCURRENCY, async (file) => {
      const stat = await quickLstat(this.blobPath(file.hash));
      const info = this.blobs.get(file.hash); // read after the lstat: another entry of the same hash may have dropped it
      if (!info || (stat && stat.size === info.size && stat.mtimeMs === info.mtimeMs)) return;
      await this.dropBlob(file, stat ? 'was modified after upload (a job wrote into its snapshot?)' : 'vanished from disk');
    });
  }

  // A dropped blob stays linked in the snapshots that already hold it; only new snapshots stop reusing it.
  private async dropBlob(file: ManifestEntry, what: string): Promise<void> {
    await fs.rm(this.blobPath(file.hash), { force: true });
    this.forgetBlob(file.hash);
    this.options.log(`store: blob ${file.hash.slice(0, 12)} of ${file.path} ${what}; it will be uploaded again`);
  }

  // ---- snapshot creation ------------------------------------------------------------------------------------

  /** Creates the snapshot directory once per process, however many requests ask at the same time. */
  private ensureSnapshot(snapshot: string, files: ManifestEntry[]): Promise<void> {
    if (this.snapshots.has(snapshot)) return Promise.resolve();
    const pending = this.creating.get(snapshot);
    if (pending) return pending;
    const creation = this.createSnapshot(snapshot, files).finally(() => this.creating.delete(snapshot));
    this.creating.set(snapshot, creation);
    return creation;
  }

  private async createSnapshot(snapshot: string, files: ManifestEntry[]): Promise<void> {
    const started = performance.now();
    const building = path.join(this.tmpRoot, `${snapshot}.${randomBytes(6).toString('hex')}`);
    try {
      await this.buildTree(building, files);
      await this.publish(building, snapshot);
    } finally {
      await fs.rm(building, { recursive: true, force: true });
    }
    this.snapshots.set(snapshot, Date.now());
    for (const file of files) this.leasedBlobs.delete(file.hash); // linked from the snapshot now
    this.created += 1;
    const ms = (performance.now() - started).toFixed(1);
    this.options.log(`store: created snapshot ${snapshot.slice(0, 12)} (${files.length} files) in ${ms} ms`);
    // The new snapshot counts as being created until eviction has run, so it cannot evict itself. The snapshot is
    // complete whatever eviction does, so its failure is logged, not thrown at the request.
    await this.evict().catch((error: Error) => this.options.log(`store: eviction failed: ${error.message}`));
  }

  /** Directories first (each once, parents before children), then one hard link per file. */
  private async buildTree(root: string, files: ManifestEntry[]): Promise<void> {
    await fs.mkdir(root);
    for (const level of directoriesByDepth(files)) {
      await forEachLimit(level, FS_CONCURRENCY, (dir) => fs.mkdir(path.join(root, dir)).catch((error) => throwFor(dir, error)));
    }
    await forEachLimit(files, FS_CONCURRENCY, (file) => this.linkBlob(file, path.join(root, file.path)));
  }

  // Hard links cost no space and no copy; some file systems or mounts refuse them, so copy there.
  private async linkBlob(file: ManifestEntry, target: string): Promise<void> {
    const blob = this.blobPath(file.hash);
    try {
      await fs.link(blob, target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw this.blobVanished(file, error);
      if (code === 'ENAMETOOLONG') throwFor(file.path, error);
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw fsFailure(`link ${blob} to ${target}`, error);
      await fs.copyFile(blob, target, fsConstants.COPYFILE_FICLONE);
    }
  }

  private blobVanished(file: ManifestEntry, cause: unknown): AgentError {
    this.forgetBlob(file.hash);
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

  /** Renames the finished tree into place; if another process won the race, its identical tree is used. */
  private async publish(building: string, snapshot: string): Promise<void> {
    try {
      await fs.rename(building, this.dirOf(snapshot));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw fsFailure(`move ${building} to ${this.dirOf(snapshot)}`, error);
      this.options.log(`store: snapshot ${snapshot.slice(0, 12)} was created concurrently; using the existing one`);
    }
  }

  // ---- eviction ---------------------------------------------------------------------------------------------

  private async evictNow(): Promise<void> {
    const now = Date.now();
    for (const hash of this.leasedBlobs.keys()) this.isLeased(hash, now); // forgets expired leases
    if (this.blobBytes <= this.options.diskBudgetBytes) return;
    // Blobs no snapshot links to (failed uploads, earlier evictions) are the cheapest space to win back.
    await this.deleteUnreferencedBlobs([...this.blobs.keys()]);
    // Leased blobs stay whatever is evicted (an upload in progress needs them), so they do not count against the
    // budget: evicting snapshots to make up for them would remove everything and free nothing.
    const leased = this.leasedBytes();
    while (this.blobBytes - leased > this.options.diskBudgetBytes) {
      const victim = this.leastRecentlyUsedEvictable();
      if (!victim) {
        this.options.log(
          `store: blobs use ${this.blobBytes} bytes (${leased} of them held for uploads in progress), over ` +
            `diskBudgetBytes = ${this.options.diskBudgetBytes}, but every snapshot is pinned by a job or in use by a worker; nothing evicted`,
        );
        return;
      }
      await this.removeSnapshot(victim);
    }
  }

  private leasedBytes(): number {
    let bytes = 0;
    for (const hash of this.leasedBlobs.keys()) bytes += this.blobs.get(hash)?.size ?? 0;
    return bytes;
  }

  private leastRecentlyUsedEvictable(): string | undefined {
    let best: string | undefined;
    let bestTime = Infinity;
    for (const [snapshot, lastUsed] of this.snapshots) {
      if (lastUsed < bestTime && this.isEvictable(snapshot)) {
        best = snapshot;
        bestTime = lastUsed;
      }
    }
    return best;
  }

  private isEvictable(snapshot: string): boolean {
    if (this.pins.has(snapshot) || this.creating.has(snapshot)) return false;
    for (const set of this.inUse.values()) if (set.has(snapshot)) return false;
    return true;
  }

  /** Removes the directory, then the blobs whose last other link it held. */
  private async removeSnapshot(snapshot: string): Promise<void> {
    const lastUsed = this.snapshots.get(snapshot) ?? 0;
    this.snapshots.delete(snapshot); // first, so no new job finds it while it goes
    const dir = this.dirOf(snapshot);
    const candidates = await this.blobsLinkedFrom(dir);
    await fs.rm(dir, { recursive: true, force: true });
    const freed = await this.deleteUnreferencedBlobs(candidates);
    this.evicted += 1;
    this.options.log(
      `store: evicted snapshot ${snapshot.slice(0, 12)} (last used ${new Date(lastUsed).toISOString()}), ` +
        `deleted ${freed} blob(s); blobs now use ${this.blobBytes} of diskBudgetBytes = ${this.options.diskBudgetBytes}`,
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
        const hash = this.blobByIno.get((await fs.lstat(path.join(f.parentPath, f.name))).ino);
        if (hash) hashes.push(hash);
      },
    );
    return hashes;
  }

  /** Deletes the given blobs that no snapshot links to (link count 1) and no upload, creation or lease holds. */
  private async deleteUnreferencedBlobs(hashes: string[]): Promise<number> {
    let deleted = 0;
    const now = Date.now();
    await forEachLimit(hashes, FS_CONCURRENCY, async (hash) => {
      if (this.heldBlobs.has(hash) || this.writingBlobs.has(hash) || this.isLeased(hash, now) || !this.blobs.has(hash)) return;
      const file = this.blobPath(hash);
      const stat = await statOrUndefined(file);
      if (stat && stat.nlink > 1) return;
      if (stat) await fs.rm(file, { force: true });
      this.forgetBlob(hash);
      deleted += 1;
    });
    return deleted;
  }

  // ---- indexing on open -------------------------------------------------------------------------------------

  private async indexSnapshots(): Promise<void> {
    const entries = await fs.readdir(this.snapshotsRoot, { withFileTypes: true });
    await forEachLimit(entries, FS_CONCURRENCY, async (entry) => {
      if (!entry.isDirectory() || !HASH.test(entry.name)) {
        this.options.log(`store: ignoring ${path.join(this.snapshotsRoot, entry.name)}: not a snapshot directory`);
        return;
      }
      const stat = await fs.stat(path.join(this.snapshotsRoot, entry.name));
      this.snapshots.set(entry.name, stat.mtimeMs);
    });
  }

  private async indexBlobs(): Promise<void> {
    const dirs = (await fs.readdir(this.blobsRoot, { withFileTypes: true })).filter((d) => d.isDirectory());
    for (const dir of dirs) {
      const full = path.join(this.blobsRoot, dir.name);
      this.blobDirs.add(full);
      const names = (await fs.readdir(full)).filter((name) => HASH.test(name) && name.startsWith(dir.name));
      await forEachLimit(names, FS_CONCURRENCY, async (name) => {
        const stat = await fs.lstat(path.join(full, name));
        if (stat.isFile()) this.indexBlob(name, stat);
      });
    }
  }
}

// ---- helpers ------------------------------------------------------------------------------------------------

function assertHash(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || !HASH.test(value)) {
    throw agentError('BAD_MESSAGE', `${what} ${JSON.stringify(value)?.slice(0, 80)} is not a SHA-256 hex digest: send 64 lowercase hex digits`);
  }
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

/** Runs `fn` over `items` with at most `limit` calls pending; the first failure rejects after the others settle. */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const index = next++;
      try {
        await fn(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.error;
}

/** ENOSPC or EDQUOT, on the error or anywhere down its cause chain. */
function isDiskFull(error: unknown): boolean {
  return hasErrorCode(error, 'ENOSPC') || hasErrorCode(error, 'EDQUOT');
}

/** Whether the error, or one down its cause chain, is a system error with this code. */
function hasErrorCode(error: unknown, code: string): boolean {
  for (let at: unknown = error, depth = 0; at instanceof Error && depth < 5; at = at.cause, depth++) {
    if ((at as NodeJS.ErrnoException).code === code) return true;
  }
  return false;
}

/**
 * A manifest path that passed the length rules but is still too long once placed under the agent's workdir: the
 * client's to fix (shorter paths), not the operator's. Names the path as the manifest spells it, not the agent's.
 */
function nameTooLong(error: unknown): AgentError {
  const relative = (error as { manifestPath?: string }).manifestPath;
  const what = relative === undefined ? 'a path of the snapshot' : `path ${JSON.stringify(relative)}`;
  return agentError(
    'UNSAFE_ARCHIVE',
    `${what} is too long for the agent's file system once placed in its snapshot directory: shorten the path, or ` +
      'exclude the file from the code root',
    relative === undefined ? {} : { path: relative },
  );
}

/** Rethrows a file system error tagged with the manifest path it concerns, for the messages made from it. */
function throwFor(manifestPath: string, error: unknown): never {
  throw Object.assign(error as Error, { manifestPath });
}

/** A file system failure the client cannot fix: the agent's operator must look at the workdir. */
function fsFailure(what: string, cause: unknown): AgentError {
  return new AgentError(
    'INTERNAL',
    `the snapshot store could not ${what} (${(cause as Error).message}): check the agent's workdir (free space, ` +
      'permissions, a file system that supports hard links and rename)',
    { cause },
  );
}

/** lstat through the callback API, about twice as fast as fs.promises over thousands of calls; undefined if absent. */
function quickLstat(file: string): Promise<Stats | undefined> {
  return new Promise((resolve, reject) =>
    lstatCallback(file, (error, stat) => {
      if (!error) resolve(stat);
      else if (error.code === 'ENOENT') resolve(undefined);
      else reject(fsFailure(`inspect ${file}`, error));
    }),
  );
}

async function statOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsFailure(`inspect ${file}`, error);
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
