// What the snapshot store refuses (hostile or malformed archives, manifests past the bounds): the code, and nothing written.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import JSZip from 'jszip';

import { manyEntryZip } from '../../support/zips';
import { AgentError } from '../../../protocol/errors';
import { fileHash, snapshotHash } from '../../../protocol/manifest';
import { SnapshotStore } from '../../../remote-agent/store/snapshot-store';
import type { ManifestEntry } from '../../../protocol/messages';
import { bytes, listing, manifestOf, rejectionOf, snapshotOf, treeA, useStoreWorkdir, zipOf } from './store-harness';

describe('remote-agent/store: refusals', () => {
  const fixture = useStoreWorkdir();

  describe('refusals: nothing written, no snapshot directory', () => {
    /** Runs `attempt` and checks the code, that the parent's tree is unchanged, and that no snapshot appeared. */
    async function expectRefused(
      store: SnapshotStore,
      snapshot: string,
      attempt: () => Promise<unknown>,
      code: AgentError['code'],
    ): Promise<AgentError> {
      const before = await listing(fixture.parent.path);
      const error = await rejectionOf(attempt());
      expect(error.code, error.message).to.equal(code);
      expect(await listing(fixture.parent.path)).to.deep.equal(before);
      expect(store.has(snapshot)).to.equal(false);
      expect(await fs.readdir(path.join(fixture.workdir, 'snapshots'))).to.deep.equal([]);
      expect(store.stats().created).to.equal(0);
      return error;
    }

    for (const name of ['../evil', '/abs', 'a/../../x', 'a\\..\\evil', './a']) {
      it(`refuses the entry name ${JSON.stringify(name)} with UNSAFE_ARCHIVE`, async () => {
        const store = await fixture.open();
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
      const store = await fixture.open();
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
      const store = await fixture.open();
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
      const store = await fixture.open();
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
      const store = await fixture.open();
      const s = snapshotOf(treeA);
      const other = snapshotOf({ x: Buffer.from('x') }).snapshot;
      await expectRefused(store, other, () => store.check(other, s.files), 'HASH_MISMATCH');
      await expectRefused(store, other, async () => store.upload(other, s.files, await zipOf(treeA)), 'HASH_MISMATCH');
    });

    it('stops inflating a 50 MB zip bomb declared as 10 bytes at once', async () => {
      const store = await fixture.open();
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
      const store = await fixture.open({ maxFiles: 3, maxFileBytes: 2000, maxSnapshotBytes: 4000 });
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
      const store = await fixture.open({ maxArchiveBytes: 1000 });
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
      const store = await fixture.open();
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
      const store = await fixture.open();
      const name = `src/${'é'.repeat(128)}.js`; // 256 bytes of UTF-8 in 128 characters
      const tree = { [name]: Buffer.from('module.exports = 1;') };
      const s = snapshotOf(tree);
      const error = await expectRefused(
        store,
        s.snapshot,
        () => store.upload(s.snapshot, s.files, Buffer.alloc(0)),
        'UNSAFE_ARCHIVE',
      );
      expect(error.message).to.contain(JSON.stringify(name)).and.contain('255 bytes').and.not.contain(fixture.workdir);
    });

    it('refuses a path too long for the file system once inside the workdir (ENAMETOOLONG) with UNSAFE_ARCHIVE', async () => {
      const store = await fixture.open();
      const name = Array.from({ length: 17 }, (_, i) => `${i}`.padEnd(240, 'd')).join('/'); // 4096 bytes: allowed
      const tree = { [name]: Buffer.from('x') };
      const s = snapshotOf(tree);
      const error = await rejectionOf(store.upload(s.snapshot, s.files, await zipOf(tree)));
      expect(error.code, error.message).to.equal('UNSAFE_ARCHIVE');
      expect(error.message).to.contain(JSON.stringify(name)).and.contain('too long').and.not.contain(fixture.workdir);
      expect(store.has(s.snapshot)).to.equal(false);
      expect(await fs.readdir(path.join(fixture.workdir, 'tmp'))).to.deep.equal([]);
    });

    it('refuses unsafe, duplicate and conflicting manifest paths', async () => {
      const store = await fixture.open();
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
});
