// The agent's content-addressed snapshot store.
//
//   <workdir>/blobs/<2 hex>/<hash>   one read-only file per content hash (fileHash of path + bytes): blob-index.ts
//   <workdir>/snapshots/<hash>/...   one directory per snapshot: the code root, hard links to the blobs
//   <workdir>/tmp/                   uploads and snapshot directories under construction; emptied on open
//
// A snapshot directory appears atomically (snapshot-tree.ts) and never changes afterwards, so workers can load
// modules from it while other snapshots come and go. Above the disk budget, eviction.ts removes the least recently
// used snapshots nobody holds. Manifests are checked by manifest-rules.ts before anything is trusted.

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import { AgentError } from '../../protocol/errors';
import type { ManifestEntry, StoreStats } from '../../protocol/messages';
import { inflateVerified, openArchive } from '../archive';
import { BlobIndex } from './blob-index';
import { Eviction } from './eviction';
import { forEachLimit } from '../../common/bounded';
import { decrement, FS_CONCURRENCY, hasErrorCode, isDiskFull, Limiter, nameTooLong } from './fs-helpers';
import { assertHash, HASH, validateManifest } from './manifest-rules';
import { buildTree, publish } from './snapshot-tree';

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
  /** The workers' compiled-TypeScript cache: counted in the budget, evicted with the snapshots. */
  compileCacheDir?: string;
  /** The time in ms (default Date.now): last uses and leases are read from it, so tests can move it. */
  now?: () => number;
  log: (line: string) => void;
}

type CheckResult = { ready: boolean; missing: string[] };

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export const DEFAULT_STORE_LIMITS: Omit<StoreOptions, 'workdir' | 'log'> = {
  diskBudgetBytes: 10 * GiB,
  maxArchiveBytes: 1 * GiB,
  maxFileBytes: 256 * MiB,
  maxSnapshotBytes: 1 * GiB,
  maxFiles: 100_000,
};

const DEFAULT_BLOB_LEASE_MS = 2 * 60_000;
/**
 * Archive entries inflated at once, per upload and in the whole store: inflating is CPU work on the agent's one
 * thread, and other clients' requests must still get their turn.
 */
const INFLATE_CONCURRENCY = 2;

export class SnapshotStore {
  readonly snapshotsRoot: string;
  private readonly tmpRoot: string;
  private readonly now: () => number;
  private readonly blobs: BlobIndex;
  private readonly eviction: Eviction;
  /** Snapshot hash → last use (ms); insertion order is irrelevant, eviction sorts by time. */
  private readonly snapshots = new Map<string, number>();
  /** Creations in flight: concurrent requests for one snapshot share one. */
  private readonly creating = new Map<string, Promise<void>>();
  private readonly pins = new Map<string, number>();
  private readonly inUse = new Map<string, ReadonlySet<string>>();
  private created = 0;
  private readonly inflating = new Limiter(INFLATE_CONCURRENCY);

  private constructor(private readonly options: StoreOptions) {
    this.snapshotsRoot = path.join(options.workdir, 'snapshots');
    this.tmpRoot = path.join(options.workdir, 'tmp');
    this.now = options.now ?? Date.now;
    const leaseMs = options.blobLeaseMs ?? DEFAULT_BLOB_LEASE_MS;
    this.blobs = new BlobIndex(path.join(options.workdir, 'blobs'), leaseMs, this.now, options.log);
    this.eviction = new Eviction({
      blobs: this.blobs,
      lastUsed: this.snapshots,
      isEvictable: (snapshot) => this.isEvictable(snapshot),
      dirOf: (snapshot) => this.dirOf(snapshot),
      compiledDir: options.compileCacheDir,
      budgetBytes: options.diskBudgetBytes,
      log: options.log,
    });
  }

  /** Creates the layout, clears what an earlier process left half-done, and indexes what it completed. */
  static async open(options: StoreOptions): Promise<SnapshotStore> {
    if (!path.isAbsolute(options.workdir)) {
      throw new AgentError(
        'BAD_MESSAGE',
        `store workdir ${JSON.stringify(options.workdir)} is not absolute: pass an absolute path`,
      );
    }
    const store = new SnapshotStore(options);
    const blobsRoot = path.join(options.workdir, 'blobs');
    await Promise.all([blobsRoot, store.snapshotsRoot].map((dir) => fs.mkdir(dir, { recursive: true })));
    // Leftovers in tmp/ are interrupted uploads and creations: never complete, never referenced.
    await fs.rm(store.tmpRoot, { recursive: true, force: true });
    await fs.mkdir(store.tmpRoot, { recursive: true });
    await store.indexSnapshots();
    await store.blobs.load();
    await store.evict(); // over the budget (a lowered --disk-budget, an earlier failed upload): make it fit now
    options.log(
      `store: ${store.snapshots.size} snapshot(s), ${store.blobs.count} blob(s), ${store.blobs.bytes} bytes in ${options.workdir}`,
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
  async check(snapshot: string, files: ManifestEntry[]): Promise<CheckResult> {
    return this.guardDisk(files, () => this.checkNow(snapshot, files));
  }

  private async checkNow(snapshot: string, files: ManifestEntry[]): Promise<CheckResult> {
    validateManifest(snapshot, files, this.options);
    if (this.snapshots.has(snapshot)) {
      void this.touch(snapshot); // logs its own failure
      return { ready: true, missing: [] };
    }
    await this.blobs.dropModified(files);
    const missing = this.blobs.missing(files);
    if (missing.length > 0) return { ready: false, missing };
    await this.blobs.withHeld(files, () => this.ensureSnapshot(snapshot, files));
    return { ready: true, missing: [] };
  }

  /**
   * Verifies the archive against the manifest and stores its files as blobs; creates the snapshot once no file is
   * missing. An upload may carry part of the missing files (clients send large sets in batches, for progress): the
   * reply lists what is still missing.
   */
  async upload(snapshot: string, files: ManifestEntry[], archive: Buffer): Promise<CheckResult> {
    return this.guardDisk(files, () => this.uploadNow(snapshot, files, archive));
  }

  private async uploadNow(snapshot: string, files: ManifestEntry[], archive: Buffer): Promise<CheckResult> {
    validateManifest(snapshot, files, this.options);
    if (this.snapshots.has(snapshot)) {
      void this.touch(snapshot); // logs its own failure
      return { ready: true, missing: [] };
    }
    return this.blobs.withHeld(files, async () => {
      await this.blobs.dropModified(files);
      await this.ingest(files, archive);
      const missing = this.blobs.missing(files);
      if (missing.length > 0) return { ready: false, missing };
      await this.ensureSnapshot(snapshot, files);
      return { ready: true, missing: [] };
    });
  }

  /**
   * A full disk: eviction makes room for the request below the budget, and it is tried once more. If it still does
   * not fit, what this snapshot's upload stored so far is given back (nothing half-made is kept) and DISK_FULL tells
   * the operator; the same request can simply be retried later.
   */
  private async guardDisk<T>(files: ManifestEntry[], work: () => Promise<T>): Promise<T> {
    try {
      return await this.nameErrors(work);
    } catch (error) {
      if (!isDiskFull(error)) throw error;
      const free = await fs.statfs(this.options.workdir).then(
        (f) => `${f.bavail * f.bsize} bytes free`,
        () => 'free space unknown',
      );
      this.options.log(
        `store: out of disk space in ${this.options.workdir} (${free}): ${(error as Error).message}; evicting to make room`,
      );
      await this.makeRoom(files);
    }
    try {
      return await this.nameErrors(work);
    } catch (error) {
      if (!isDiskFull(error)) throw error;
      const reclaimed = await this.blobs.reclaim(files);
      this.options.log(`store: still out of disk space; gave back ${reclaimed} blob(s) of the failed upload`);
      throw new AgentError(
        'DISK_FULL',
        `the agent's disk is full (workdir ${this.options.workdir}), even after evicting unused snapshots; nothing of ` +
          'this snapshot was kept. Free space there or lower --disk-budget on the agent, then run again',
        { cause: error },
      );
    }
  }

  private async nameErrors<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw hasErrorCode(error, 'ENAMETOOLONG') ? nameTooLong(error) : error;
    }
  }

  /** Evicts until the request's missing bytes would fit under what is left (blobs held for uploads stay). */
  private async makeRoom(files: ManifestEntry[]): Promise<void> {
    const needed = files.reduce((sum, f) => sum + (this.blobs.has(f.hash) ? 0 : f.size), 0);
    const evictable = this.blobs.bytes - this.blobs.leasedBytes();
    await this.evict(Math.max(0, evictable - needed)).catch((error: Error) =>
      this.options.log(`store: eviction failed: ${error.message}`),
    );
  }

  /** Records a use of the snapshot; resolves once the use is on disk too. */
  touch(snapshot: string): Promise<void> {
    if (!this.snapshots.has(snapshot)) return Promise.resolve();
    const now = this.now();
    this.snapshots.set(snapshot, now);
    // The directory's mtime carries the LRU order across restarts; losing it only makes the order less exact.
    return fs
      .utimes(this.dirOf(snapshot), now / 1000, now / 1000)
      .catch((error: Error) =>
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
      blobs: this.blobs.count,
      bytes: this.blobs.bytes,
      created: this.created,
      evicted: this.eviction.evicted,
    };
  }

  /** Removes least recently used snapshots until the blobs fit the budget (or `targetBytes`); one at a time. */
  evict(targetBytes?: number): Promise<void> {
    return this.eviction.run(targetBytes);
  }

  private isEvictable(snapshot: string): boolean {
    if (this.pins.has(snapshot) || this.creating.has(snapshot)) return false;
    for (const set of this.inUse.values()) if (set.has(snapshot)) return false;
    return true;
  }

  /** All-or-nothing: entries are verified into a private temp dir and become blobs only when every one passed. */
  private async ingest(files: ManifestEntry[], archive: Buffer): Promise<void> {
    const manifest = new Map(files.map((f) => [f.path, f]));
    const entries = await openArchive(archive, manifest, this.options.maxArchiveBytes);
    const staging = await fs.mkdtemp(path.join(this.tmpRoot, 'upload.'));
    try {
      const staged: { entry: ManifestEntry; file: string }[] = [];
      await forEachLimit(entries, INFLATE_CONCURRENCY, async (archived, i) => {
        const file = path.join(staging, String(i));
        await this.inflating.run(() => inflateVerified(archived, file));
        if (!this.blobs.has(archived.entry.hash)) staged.push({ entry: archived.entry, file }); // else already held
      });
      await forEachLimit(staged, FS_CONCURRENCY, ({ entry, file }) => this.blobs.add(entry, file));
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
  }

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
      await buildTree(building, files, this.blobs);
      await publish(building, this.dirOf(snapshot), this.options.log);
    } finally {
      await fs.rm(building, { recursive: true, force: true });
    }
    this.snapshots.set(snapshot, this.now());
    await this.touch(snapshot); // its first use, on disk too: the LRU order across restarts follows the clock
    this.blobs.endLeases(files); // linked from the snapshot now
    this.created += 1;
    const ms = (performance.now() - started).toFixed(1);
    this.options.log(`store: created snapshot ${snapshot.slice(0, 12)} (${files.length} files) in ${ms} ms`);
    // The new snapshot counts as being created until eviction has run, so it cannot evict itself. The snapshot is
    // complete whatever eviction does, so its failure is logged, not thrown at the request.
    await this.evict().catch((error: Error) => this.options.log(`store: eviction failed: ${error.message}`));
  }

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
}
