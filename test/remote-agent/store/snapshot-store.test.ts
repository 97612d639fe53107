import { expect } from 'chai';

import { rejectionOf as rejectionOfType } from '../../support/rejection';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import JSZip from 'jszip';
import * as tmp from 'tmp-promise';

import { AgentError } from '../../../protocol/errors';
import { fileHash, snapshotHash } from '../../../protocol/manifest';
import type { ManifestEntry } from '../../../protocol/messages';
import { DEFAULT_STORE_LIMITS, SnapshotStore, StoreOptions } from '../../../remote-agent/store/snapshot-store';
import { manyEntryZip } from '../../support/zips';

type Tree = Record<string, Buffer>;

function manifestOf(tree: Tree): ManifestEntry[] {
  return Object.entries(tree).map(([p, bytes]) => ({ path: p, size: bytes.length, hash: fileHash(p, bytes) }));
}

function snapshotOf(tree: Tree): { snapshot: string; files: ManifestEntry[] } {
  const files = manifestOf(tree);
  return { snapshot: snapshotHash(files), files };
}

interface ZipEntry {
  name: string;
  bytes: Buffer | string;
  options?: JSZip.JSZipFileOptions;
}

async function zipOf(entries: ZipEntry[] | Tree): Promise<Buffer> {
  const list: ZipEntry[] = Array.isArray(entries)
    ? entries
    : Object.entries(entries).map(([name, bytes]) => ({ name, bytes }));
  const zip = new JSZip();
  for (const e of list) zip.file(e.name, e.bytes, e.options);
  return zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE', platform: 'UNIX' });
}

/** Every path under `root`, relative and sorted: before/after comparisons show any write anywhere. */
async function listing(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  return entries.map((e) => path.relative(root, path.join(e.parentPath, e.name)) + (e.isDirectory() ? '/' : '')).sort();
}

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

const rejectionOf = (promise: Promise<unknown>): Promise<AgentError> => rejectionOfType(promise, AgentError);

/**
 * Writes a read-only file as a job running as root could (root ignores mode 0444; others need the chmod). The mtime
 * is set apart from the upload's, as a later write's would be on a file system with coarse timestamps.
 */
async function writeAsRoot(file: string, text: string): Promise<void> {
  await fs.chmod(file, 0o644);
  await fs.writeFile(file, text);
  await fs.chmod(file, 0o444);
  await fs.utimes(file, 1_000, 1_000);
}

describe('remote-agent/store', () => {
  let parent: tmp.DirectoryResult;
  let workdir: string;
  let logs: string[];
  /** The store's clock: tests move it instead of sleeping. */
  let clock: number;
  const later = (ms = 1_000): void => {
    clock += ms;
  };

  const open = (overrides: Partial<StoreOptions> = {}): Promise<SnapshotStore> =>
    SnapshotStore.open({
      ...DEFAULT_STORE_LIMITS,
      workdir,
      log: (line) => logs.push(line),
      now: () => clock,
      ...overrides,
    });

  beforeEach(async () => {
    // The store lives one level below a private parent, so a listing of the parent shows escapes of any depth.
    parent = await tmp.dir({ unsafeCleanup: true, prefix: 'store-test-' });
    workdir = path.join(parent.path, 'work');
    logs = [];
    clock = Date.UTC(2030, 0, 1);
  });

  afterEach(async () => {
    await parent.cleanup();
  });

  const treeA: Tree = {
    'package.json': Buffer.from('{"name":"demo"}'),
    'src/index.ts': Buffer.from('export const x = 1;\n'),
    'src/lib/util.ts': bytes(3000, 1),
  };

  describe('check and upload', () => {
    it('check reports exactly the hashes it lacks', async () => {
      const store = await open();
      const a = snapshotOf(treeA);
      const first = await store.check(a.snapshot, a.files);
      expect(first.ready).to.equal(false);
      expect([...first.missing].sort()).to.deep.equal(a.files.map((f) => f.hash).sort());

      await store.upload(a.snapshot, a.files, await zipOf(treeA));
      const treeB = { ...treeA, 'src/new.ts': Buffer.from('new'), 'README.md': Buffer.from('# b') };
      const b = snapshotOf(treeB);
      const second = await store.check(b.snapshot, b.files);
      expect(second.ready).to.equal(false);
      expect([...second.missing].sort()).to.deep.equal(
        [fileHash('src/new.ts', treeB['src/new.ts']), fileHash('README.md', treeB['README.md'])].sort(),
      );
      expect(store.has(b.snapshot)).to.equal(false);
    });

    it('upload creates the snapshot directory with the files; check then answers ready', async () => {
      const store = await open();
      const a = snapshotOf(treeA);
      expect(await store.upload(a.snapshot, a.files, await zipOf(treeA))).to.deep.equal({ ready: true, missing: [] });
      expect(await store.check(a.snapshot, a.files)).to.deep.equal({ ready: true, missing: [] });
      expect(store.has(a.snapshot)).to.equal(true);
      const dir = store.dirOf(a.snapshot);
      expect(dir).to.equal(path.join(workdir, 'snapshots', a.snapshot));
      for (const [p, content] of Object.entries(treeA)) {
        expect(await fs.readFile(path.join(dir, p))).to.deep.equal(content);
        expect((await fs.stat(path.join(dir, p))).mode & 0o777).to.equal(0o444);
      }
      expect(await listing(dir)).to.deep.equal(['package.json', 'src/', 'src/index.ts', 'src/lib/', 'src/lib/util.ts']);
      expect(store.stats()).to.deep.include({ snapshots: 1, blobs: 3, created: 1, evicted: 0 });
      expect(store.stats().bytes).to.equal(Object.values(treeA).reduce((n, b) => n + b.length, 0));
      expect(await fs.readdir(path.join(workdir, 'tmp'))).to.deep.equal([]);
    });

    it('concurrent uploads and checks of one snapshot create one directory', async () => {
      const store = await open();
      const a = snapshotOf(treeA);
      const archive = await zipOf(treeA);
      const results = await Promise.all(Array.from({ length: 5 }, () => store.upload(a.snapshot, a.files, archive)));
      expect(results.every((r) => r.ready)).to.equal(true);
      expect(store.stats().created).to.equal(1);

      // Every blob present: five concurrent checks of a new manifest share one creation.
      const subset = { 'package.json': treeA['package.json']!, 'src/index.ts': treeA['src/index.ts']! };
      const s = snapshotOf(subset);
      const checks = await Promise.all(Array.from({ length: 5 }, () => store.check(s.snapshot, s.files)));
      expect(checks.every((r) => r.ready && r.missing.length === 0)).to.equal(true);
      expect(store.stats().created).to.equal(2);
      expect(await fs.readdir(path.join(workdir, 'snapshots'))).to.have.members([a.snapshot, s.snapshot]);
      expect(await fs.readdir(path.join(workdir, 'tmp'))).to.deep.equal([]);
    });

    it('a second snapshot sharing files needs only the changed file and shares the rest on disk', async () => {
      const store = await open();
      const a = snapshotOf(treeA);
      await store.upload(a.snapshot, a.files, await zipOf(treeA));
      const treeB = { ...treeA, 'src/index.ts': Buffer.from('export const x = 2;\n') };
      const b = snapshotOf(treeB);
      const status = await store.check(b.snapshot, b.files);
      expect(status).to.deep.equal({ ready: false, missing: [fileHash('src/index.ts', treeB['src/index.ts'])] });
      await store.upload(b.snapshot, b.files, await zipOf({ 'src/index.ts': treeB['src/index.ts'] }));
      const dirA = store.dirOf(a.snapshot);
      const dirB = store.dirOf(b.snapshot);
      expect(await fs.readFile(path.join(dirB, 'src/index.ts'), 'utf8')).to.equal('export const x = 2;\n');
      expect(await fs.readFile(path.join(dirA, 'src/index.ts'), 'utf8')).to.equal('export const x = 1;\n');
      const inoA = (await fs.stat(path.join(dirA, 'src/lib/util.ts'))).ino;
      expect((await fs.stat(path.join(dirB, 'src/lib/util.ts'))).ino).to.equal(inoA);
      expect(store.stats()).to.deep.include({ snapshots: 2, blobs: 4, created: 2 });
    });

    it('uploads again a blob a job rewrote through its snapshot (root ignores 0444), so new snapshots get true bytes', async () => {
      const store = await open();
      const a = snapshotOf(treeA);
      await store.upload(a.snapshot, a.files, await zipOf(treeA));
      const dirA = store.dirOf(a.snapshot);
      await writeAsRoot(path.join(dirA, 'package.json'), '{"name":"tampered"}'); // another size
      await writeAsRoot(path.join(dirA, 'src/index.ts'), 'export const x = 9;\n'); // the same size
      const treeB = { ...treeA, 'README.md': Buffer.from('# b') };
      const b = snapshotOf(treeB);
      const rewritten = ['package.json', 'src/index.ts'].map((p) => fileHash(p, treeA[p]!));
      const status = await store.check(b.snapshot, b.files);
      expect(status.missing).to.have.members([...rewritten, fileHash('README.md', treeB['README.md'])]);
      expect(logs).to.include(
        `store: blob ${rewritten[0]!.slice(0, 12)} of package.json was modified after upload (a job wrote into its snapshot?); ` +
          'it will be uploaded again',
      );
      expect(store.stats()).to.deep.include({ blobs: 1, bytes: treeA['src/lib/util.ts']!.length });
      const resent = {
        'package.json': treeA['package.json']!,
        'src/index.ts': treeA['src/index.ts']!,
        'README.md': treeB['README.md'],
      };
      expect(await store.upload(b.snapshot, b.files, await zipOf(resent))).to.deep.equal({ ready: true, missing: [] });
      for (const [p, content] of Object.entries(treeB))
        expect(await fs.readFile(path.join(store.dirOf(b.snapshot), p))).to.deep.equal(content);
    });

    it('checks 2,000 held blobs for writes by their stat, reading none of them', async () => {
      const store = await open();
      const tree: Tree = Object.fromEntries(
        Array.from({ length: 2000 }, (_, i) => [`src/f${i}.ts`, Buffer.from(`export const v = ${i};\n`)]),
      );
      const a = snapshotOf(tree);
      await store.upload(a.snapshot, a.files, await zipOf(tree));
      const b = snapshotOf({ ...tree, 'new.ts': Buffer.from('1') });
      const promises = require('node:fs').promises as {
        readFile: (...args: unknown[]) => unknown;
        open: (...args: unknown[]) => unknown;
      };
      const [readFile, openFile] = [promises.readFile, promises.open];
      let reads = 0;
      promises.readFile = (...args) => (reads++, readFile(...args));
      promises.open = (...args) => (reads++, openFile(...args));
      try {
        expect((await store.check(b.snapshot, b.files)).missing).to.have.length(1);
      } finally {
        [promises.readFile, promises.open] = [readFile, openFile];
      }
      expect(reads).to.equal(0); // its cost is in bench/ (the edit-to-result figure)
    });

    it('takes an upload in batches: a partial one stores its files and lists what is still missing', async () => {
      const store = await open();
      const a = snapshotOf(treeA);
      const rest = a.files.filter((f) => f.path !== 'package.json');
      const first = await store.upload(a.snapshot, a.files, await zipOf({ 'package.json': treeA['package.json']! }));
      expect(first.ready).to.equal(false);
      expect(first.missing).to.have.members(rest.map((f) => f.hash));
      expect(store.has(a.snapshot)).to.equal(false);
      expect(await fs.readdir(path.join(workdir, 'snapshots'))).to.deep.equal([]);
      const restTree = Object.fromEntries(rest.map((f) => [f.path, treeA[f.path]!]));
      expect(await store.upload(a.snapshot, a.files, await zipOf(restTree))).to.deep.equal({
        ready: true,
        missing: [],
      });
      expect(store.has(a.snapshot)).to.equal(true);
    });
  });

  describe('refusals: nothing written, no snapshot directory', () => {
    /** Runs `attempt` and checks the code, that the parent's tree is unchanged, and that no snapshot appeared. */
    async function expectRefused(
      store: SnapshotStore,
      snapshot: string,
      attempt: () => Promise<unknown>,
      code: AgentError['code'],
    ): Promise<AgentError> {
      const before = await listing(parent.path);
      const error = await rejectionOf(attempt());
      expect(error.code, error.message).to.equal(code);
      expect(await listing(parent.path)).to.deep.equal(before);
      expect(store.has(snapshot)).to.equal(false);
      expect(await fs.readdir(path.join(workdir, 'snapshots'))).to.deep.equal([]);
      expect(store.stats().created).to.equal(0);
      return error;
    }

    for (const name of ['../evil', '/abs', 'a/../../x', 'a\\..\\evil', './a']) {
      it(`refuses the entry name ${JSON.stringify(name)} with UNSAFE_ARCHIVE`, async () => {
        const store = await open();
        const tree = {
          evil: Buffer.from('pwned'),
          x: Buffer.from('pwned'),
          abs: Buffer.from('pwned'),
          a: Buffer.from('ok'),
        };
        const s = snapshotOf(tree);
        // The other entry is legitimate, so only the bad name can cause the refusal. It comes first: jszip keeps the
        // last of two entries that resolve to one name ("./a" and "a"), and never reads the other.
        const archive = await zipOf([
          { name: 'a', bytes: 'ok' },
          { name, bytes: 'pwned' },
        ]);
        const error = await expectRefused(
          store,
          s.snapshot,
          () => store.upload(s.snapshot, s.files, archive),
          'UNSAFE_ARCHIVE',
        );
        expect(error.message).to.contain(JSON.stringify(name));
      });
    }

    it('refuses a symlink entry', async () => {
      const store = await open();
      const tree = { link: Buffer.from('/etc/passwd') };
      const s = snapshotOf(tree);
      const archive = await zipOf([{ name: 'link', bytes: '/etc/passwd', options: { unixPermissions: 0o120777 } }]);
      const error = await expectRefused(
        store,
        s.snapshot,
        () => store.upload(s.snapshot, s.files, archive),
        'UNSAFE_ARCHIVE',
      );
      expect(error.message).to.contain('symbolic link').and.contain('"link"');
    });

    it('refuses an entry that is not in the manifest', async () => {
      const store = await open();
      const s = snapshotOf(treeA);
      const archive = await zipOf({ ...treeA, 'extra.js': Buffer.from('1') });
      const error = await expectRefused(
        store,
        s.snapshot,
        () => store.upload(s.snapshot, s.files, archive),
        'UNSAFE_ARCHIVE',
      );
      expect(error.message).to.contain('"extra.js"').and.contain('not in the snapshot');
    });

    it('refuses bytes that do not match the manifest hash', async () => {
      const store = await open();
      const s = snapshotOf(treeA);
      const archive = await zipOf({ ...treeA, 'src/index.ts': Buffer.from('export const x = 9;\n') }); // same size
      const error = await expectRefused(
        store,
        s.snapshot,
        () => store.upload(s.snapshot, s.files, archive),
        'HASH_MISMATCH',
      );
      expect(error.message).to.contain('"src/index.ts"');
    });

    it('refuses a manifest whose hash is not the snapshot named', async () => {
      const store = await open();
      const s = snapshotOf(treeA);
      const other = snapshotOf({ x: Buffer.from('x') }).snapshot;
      await expectRefused(store, other, () => store.check(other, s.files), 'HASH_MISMATCH');
      await expectRefused(store, other, async () => store.upload(other, s.files, await zipOf(treeA)), 'HASH_MISMATCH');
    });

    it('stops inflating a 50 MB zip bomb declared as 10 bytes at once', async () => {
      const store = await open();
      const declared = Buffer.alloc(10);
      const s = snapshotOf({ 'bomb.bin': declared });
      const bomb = await new JSZip()
        .file('bomb.bin', Buffer.alloc(50 * 1024 * 1024))
        .generateAsync({ type: 'nodebuffer', compression: 'DEFLATE', compressionOptions: { level: 9 } });
      expect(bomb.length).to.be.below(100_000);
      const error = await expectRefused(store, s.snapshot, () => store.upload(s.snapshot, s.files, bomb), 'TOO_LARGE');
      expect(error.message).to.contain('"bomb.bin"').and.contain('10 bytes');
      // Inflation stopped within a block or two of passing the declared size, far short of the 50 MB.
      expect((error as unknown as { inflatedBytes: number }).inflatedBytes).to.be.below(1024 * 1024);
    });

    it('refuses manifests over maxFiles, maxFileBytes and maxSnapshotBytes, naming the bound and value', async () => {
      const store = await open({ maxFiles: 3, maxFileBytes: 2000, maxSnapshotBytes: 4000 });
      const many = snapshotOf({ a: Buffer.from('1'), b: Buffer.from('2'), c: Buffer.from('3'), d: Buffer.from('4') });
      let error = await expectRefused(store, many.snapshot, () => store.check(many.snapshot, many.files), 'TOO_LARGE');
      expect(error.message).to.contain('4 files').and.contain('maxFiles = 3');

      const big = snapshotOf({ 'data/big.bin': bytes(2001, 1) });
      error = await expectRefused(store, big.snapshot, () => store.check(big.snapshot, big.files), 'TOO_LARGE');
      expect(error.message).to.contain('"data/big.bin"').and.contain('2001 bytes').and.contain('maxFileBytes = 2000');

      const tree = { 'one.bin': bytes(1990, 2), 'two.bin': bytes(2000, 3), 'three.bin': bytes(1500, 4) };
      const total = snapshotOf(tree);
      const archive = await zipOf(tree);
      error = await expectRefused(
        store,
        total.snapshot,
        () => store.upload(total.snapshot, total.files, archive),
        'TOO_LARGE',
      );
      expect(error.message)
        .to.contain('5490 bytes')
        .and.contain('maxSnapshotBytes = 4000')
        .and.contain('two.bin (2000)');
    });

    it('refuses an archive over maxArchiveBytes and one that is not a zip', async () => {
      const store = await open({ maxArchiveBytes: 1000 });
      const tree = { 'noise.bin': randomBytes(5000) };
      const s = snapshotOf(tree);
      const archive = await zipOf(tree);
      expect(archive.length).to.be.above(1000);
      const error = await expectRefused(
        store,
        s.snapshot,
        () => store.upload(s.snapshot, s.files, archive),
        'TOO_LARGE',
      );
      expect(error.message).to.contain(`${archive.length} bytes`).and.contain('maxArchiveBytes = 1000');
      await expectRefused(
        store,
        s.snapshot,
        () => store.upload(s.snapshot, s.files, Buffer.from('not a zip')),
        'BAD_MESSAGE',
      );
    });

    it('refuses an archive of 200,000 empty entries for a 3-file manifest from its entry count, writing nothing', async () => {
      const store = await open();
      const s = snapshotOf(treeA);
      const error = await expectRefused(
        store,
        s.snapshot,
        () => store.upload(s.snapshot, s.files, manyEntryZip(200_000)),
        'TOO_LARGE',
      );
      // The count comes from the zip's end record, before jszip would parse 200,000 headers (seconds).
      expect(error.message).to.contain('200000 entries').and.contain('bound of 22');
    });

    it('refuses a manifest path with a name over 255 bytes with UNSAFE_ARCHIVE naming it, not INTERNAL', async () => {
      const store = await open();
      const name = `src/${'é'.repeat(128)}.js`; // 256 bytes of UTF-8 in 128 characters
      const tree = { [name]: Buffer.from('module.exports = 1;') };
      const s = snapshotOf(tree);
      const error = await expectRefused(
        store,
        s.snapshot,
        () => store.upload(s.snapshot, s.files, Buffer.alloc(0)),
        'UNSAFE_ARCHIVE',
      );
      expect(error.message).to.contain(JSON.stringify(name)).and.contain('255 bytes').and.not.contain(workdir);
    });

    it('refuses a path too long for the file system once inside the workdir (ENAMETOOLONG) with UNSAFE_ARCHIVE', async () => {
      const store = await open();
      const name = Array.from({ length: 17 }, (_, i) => `${i}`.padEnd(240, 'd')).join('/'); // 4096 bytes: allowed
      const tree = { [name]: Buffer.from('x') };
      const s = snapshotOf(tree);
      const error = await rejectionOf(store.upload(s.snapshot, s.files, await zipOf(tree)));
      expect(error.code, error.message).to.equal('UNSAFE_ARCHIVE');
      expect(error.message).to.contain(JSON.stringify(name)).and.contain('too long').and.not.contain(workdir);
      expect(store.has(s.snapshot)).to.equal(false);
      expect(await fs.readdir(path.join(workdir, 'tmp'))).to.deep.equal([]);
    });

    it('refuses unsafe, duplicate and conflicting manifest paths', async () => {
      const store = await open();
      const unsafe: ManifestEntry[] = [{ path: '../x', size: 1, hash: fileHash('../x', Buffer.from('x')) }];
      await expectRefused(
        store,
        snapshotHash(unsafe),
        () => store.check(snapshotHash(unsafe), unsafe),
        'UNSAFE_ARCHIVE',
      );
      const one = manifestOf({ a: Buffer.from('a') });
      const dup = [...one, ...one];
      await expectRefused(store, snapshotHash(dup), () => store.check(snapshotHash(dup), dup), 'BAD_MESSAGE');
      const conflict = manifestOf({ a: Buffer.from('a'), 'a/b': Buffer.from('b') });
      await expectRefused(
        store,
        snapshotHash(conflict),
        () => store.check(snapshotHash(conflict), conflict),
        'BAD_MESSAGE',
      );
    });
  });

  describe('eviction', () => {
    it('evicts the least recently used snapshot, never pinned or in-use ones, and deletes unreferenced blobs', async () => {
      const store = await open({ diskBudgetBytes: 2500 });
      const shared = bytes(100, 0);
      const t1 = { 'a.bin': bytes(1000, 1) };
      const t2 = { 'b.bin': bytes(1000, 2), 'shared.bin': shared };
      const t3 = { 'c.bin': bytes(1000, 3), 'shared.bin': shared };
      const t4 = { 'd.bin': bytes(1000, 4) };
      const [s1, s2, s3, s4] = [t1, t2, t3, t4].map(snapshotOf);
      const put = async (s: { snapshot: string; files: ManifestEntry[] }, t: Tree): Promise<void> => {
        await store.upload(s.snapshot, s.files, await zipOf(t));
        later(); // distinct last-use times
      };
      await put(s1!, t1);
      await put(s2!, t2);
      const release = store.pin(s1!.snapshot);
      store.setInUse('worker-0', [s2!.snapshot]);

      await put(s3!, t3); // 3100 bytes > 2500, but s1 is pinned, s2 in use, s3 just created
      expect(store.stats()).to.deep.include({ snapshots: 3, evicted: 0, bytes: 3100 });
      expect(logs.some((l) => l.includes('nothing evicted'))).to.equal(true);

      await put(s4!, t4); // 4100: s3 is the only candidate although s1 and s2 are older
      expect([s1, s2, s3, s4].map((s) => store.has(s!.snapshot))).to.deep.equal([true, true, false, true]);
      await fs.access(store.dirOf(s3!.snapshot)).then(
        () => expect.fail('the evicted directory still exists'),
        (error: NodeJS.ErrnoException) => expect(error.code).to.equal('ENOENT'),
      );
      const blobFile = (p: string, b: Buffer): string => {
        const h = fileHash(p, b);
        return path.join(workdir, 'blobs', h.slice(0, 2), h);
      };
      await fs.access(blobFile('c.bin', t3['c.bin'])).then(
        () => expect.fail('the blob only s3 used still exists'),
        (error: NodeJS.ErrnoException) => expect(error.code).to.equal('ENOENT'),
      );
      await fs.access(blobFile('shared.bin', shared)); // s2 still links it
      expect(store.stats()).to.deep.include({ snapshots: 3, blobs: 4, bytes: 3100, evicted: 1 });
      expect(logs.some((l) => l.includes(`evicted snapshot ${s3!.snapshot.slice(0, 12)}`))).to.equal(true);

      release();
      release(); // idempotent: must not release a second pin
      store.setInUse('worker-0', []);
      await store.evict(); // now s1 (least recently used) goes; 2100 fits
      expect([s1, s2, s4].map((s) => store.has(s!.snapshot))).to.deep.equal([false, true, true]);
      expect(store.stats()).to.deep.include({ snapshots: 2, bytes: 2100, evicted: 2 });
      expect(await fs.readdir(path.join(workdir, 'snapshots'))).to.have.members([s2!.snapshot, s4!.snapshot]);
    });

    it('a pin released twice does not release another holder of the same snapshot', async () => {
      const store = await open({ diskBudgetBytes: 500 });
      const t = { 'a.bin': bytes(1000, 1) };
      const s = snapshotOf(t);
      const first = store.pin(s.snapshot);
      const second = store.pin(s.snapshot);
      await store.upload(s.snapshot, s.files, await zipOf(t));
      first();
      first();
      await store.evict();
      expect(store.has(s.snapshot)).to.equal(true);
      second();
      await store.evict();
      expect(store.has(s.snapshot)).to.equal(false);
      expect(store.stats()).to.deep.include({ snapshots: 0, blobs: 0, bytes: 0 });
    });

    it('keeps blobs a check reported present through an eviction before the upload that follows', async () => {
      const store = await open({ diskBudgetBytes: 1000 });
      const shared = bytes(500, 7);
      const tOld = { 'shared.bin': shared, 'old.bin': bytes(500, 8) };
      const tNew = { 'shared.bin': shared, 'new.bin': bytes(500, 9) };
      const tOther = { 'other.bin': bytes(1000, 10) };
      const [sOld, sNew, sOther] = [tOld, tNew, tOther].map(snapshotOf);
      await store.upload(sOld!.snapshot, sOld!.files, await zipOf(tOld));
      later();
      // A client checks sNew: shared.bin is there, only new.bin is missing...
      const newHash = fileHash('new.bin', tNew['new.bin']);
      expect(await store.check(sNew!.snapshot, sNew!.files)).to.deep.equal({ ready: false, missing: [newHash] });
      // ...then another client's upload evicts sOld, the only snapshot linking shared.bin...
      await store.upload(sOther!.snapshot, sOther!.files, await zipOf(tOther));
      expect(store.has(sOld!.snapshot)).to.equal(false);
      // ...and the first client's upload of new.bin alone still makes sNew.
      const onlyNew = await zipOf({ 'new.bin': tNew['new.bin'] });
      expect(await store.upload(sNew!.snapshot, sNew!.files, onlyNew)).to.deep.equal({ ready: true, missing: [] });
      expect(await fs.readFile(path.join(store.dirOf(sNew!.snapshot), 'shared.bin'))).to.deep.equal(shared);
    });

    /** Snapshot s1 stored, then the first of two batches of s2's upload: a blob no snapshot links to yet. */
    async function partialUpload(store: SnapshotStore) {
      const t1 = { 'a.bin': bytes(1000, 1) };
      const s1 = snapshotOf(t1);
      await store.upload(s1.snapshot, s1.files, await zipOf(t1));
      const t2 = { 'e.bin': bytes(1000, 5), 'f.bin': bytes(1000, 6) };
      const s2 = snapshotOf(t2);
      expect((await store.upload(s2.snapshot, s2.files, await zipOf({ 'e.bin': t2['e.bin'] }))).ready).to.equal(false);
      expect(store.stats()).to.deep.include({ blobs: 2, bytes: 2000 });
      return { s1, s2, t2 };
    }

    it('deletes blobs no snapshot links to, once their lease has run out, before evicting any snapshot', async () => {
      const store = await open({ diskBudgetBytes: 1500, blobLeaseMs: 50 });
      const { s1, s2 } = await partialUpload(store);
      later(60); // the upload was abandoned
      await store.evict();
      expect(store.has(s1.snapshot)).to.equal(true);
      expect(store.stats()).to.deep.include({ snapshots: 1, blobs: 1, bytes: 1000, evicted: 0 });
      expect((await store.check(s2.snapshot, s2.files)).missing).to.have.length(2);
    });

    it('does not evict snapshots to make up for leased blobs, and drops the lease once the snapshot exists', async () => {
      const store = await open({ diskBudgetBytes: 1500 });
      const x = bytes(1000, 11);
      const tA = { 'x.bin': x };
      const tD = { 'd.bin': bytes(400, 12) };
      const tB = { 'x.bin': x, 'z.bin': bytes(100, 13) };
      const tC = { 'c.bin': bytes(600, 14) };
      const [sA, sD, sB, sC] = [tA, tD, tB, tC].map(snapshotOf);
      await store.upload(sA!.snapshot, sA!.files, await zipOf(tA));
      await store.upload(sD!.snapshot, sD!.files, await zipOf(tD));
      expect((await store.check(sB!.snapshot, sB!.files)).missing).to.have.length(1); // x.bin leased for B's upload
      await store.upload(sC!.snapshot, sC!.files, await zipOf(tC)); // 2000 bytes, 1000 of them leased
      expect([sA, sD, sC].map((s) => store.has(s!.snapshot))).to.deep.equal([true, true, true]);
      // B is made: x.bin is linked from it, no longer leased, and counts against the budget again.
      await store.upload(sB!.snapshot, sB!.files, await zipOf({ 'z.bin': tB['z.bin'] }));
      expect(store.has(sB!.snapshot)).to.equal(true);
      expect(store.stats().bytes).to.be.at.most(1500 + 100);
      expect(store.has(sA!.snapshot) && store.has(sD!.snapshot)).to.equal(false); // the least recently used went
    });

    it('keeps the blobs of an upload in batches through an eviction between the batches', async () => {
      const store = await open({ diskBudgetBytes: 900 });
      const { s1, s2, t2 } = await partialUpload(store);
      await store.evict();
      expect(store.has(s1.snapshot)).to.equal(false); // the older snapshot goes, not the upload in progress
      expect(await store.upload(s2.snapshot, s2.files, await zipOf({ 'f.bin': t2['f.bin'] }))).to.deep.equal({
        ready: true,
        missing: [],
      });
    });
  });

  describe('reopening', () => {
    it('finds existing snapshots and blobs, keeps their LRU order and clears tmp/', async () => {
      const first = await open();
      const tOld = { 'old.bin': bytes(1000, 1) };
      const tNew = { 'new.bin': bytes(1000, 2) };
      const sOld = snapshotOf(tOld);
      const sNew = snapshotOf(tNew);
      await first.upload(sNew.snapshot, sNew.files, await zipOf(tNew)); // created first ...
      later();
      await first.upload(sOld.snapshot, sOld.files, await zipOf(tOld));
      later();
      await first.touch(sNew.snapshot); // ... but used last
      await fs.writeFile(path.join(workdir, 'tmp', 'leftover'), 'half-written');

      const within = await open();
      expect(within.stats()).to.deep.equal({ snapshots: 2, blobs: 2, bytes: 2000, created: 0, evicted: 0 });
      await fs.writeFile(path.join(workdir, 'tmp', 'leftover'), 'half-written');
      // Over the (lowered) budget at once: the snapshot created last but used first goes, by the directory mtimes
      // the first store kept.
      const second = await open({ diskBudgetBytes: 1500 });
      expect(await fs.readdir(path.join(workdir, 'tmp'))).to.deep.equal([]);
      expect(second.has(sOld.snapshot)).to.equal(false);
      expect(second.has(sNew.snapshot)).to.equal(true);
      expect(await second.check(sNew.snapshot, sNew.files)).to.deep.equal({ ready: true, missing: [] });
      expect(second.stats()).to.deep.include({ snapshots: 1, blobs: 1, created: 0, evicted: 1 });
    });
  });
});
