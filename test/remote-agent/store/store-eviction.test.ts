// The snapshot store's disk budget: least recently used snapshots evicted first, never one in use, leases and pins kept.

import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import { fileHash } from '../../../protocol/manifest';
import { SnapshotStore } from '../../../remote-agent/store/snapshot-store';
import type { ManifestEntry } from '../../../protocol/messages';
import { Tree, bytes, snapshotOf, useStoreWorkdir, zipOf } from './store-harness';

describe('remote-agent/store: eviction', () => {
  const fixture = useStoreWorkdir();

  describe('eviction', () => {
    it('evicts the least recently used snapshot, never pinned or in-use ones, and deletes unreferenced blobs', async () => {
      const store = await fixture.open({ diskBudgetBytes: 2500 });
      const shared = bytes(100, 0);
      const t1 = { 'a.bin': bytes(1000, 1) };
      const t2 = { 'b.bin': bytes(1000, 2), 'shared.bin': shared };
      const t3 = { 'c.bin': bytes(1000, 3), 'shared.bin': shared };
      const t4 = { 'd.bin': bytes(1000, 4) };
      const [s1, s2, s3, s4] = [t1, t2, t3, t4].map(snapshotOf);
      const put = async (s: { snapshot: string; files: ManifestEntry[] }, t: Tree): Promise<void> => {
        await store.upload(s.snapshot, s.files, await zipOf(t));
        fixture.later(); // distinct last-use times
      };
      await put(s1!, t1);
      await put(s2!, t2);
      const release = store.pin(s1!.snapshot);
      store.setInUse('worker-0', [s2!.snapshot]);

      await put(s3!, t3); // 3100 bytes > 2500, but s1 is pinned, s2 in use, s3 just created
      expect(store.stats()).to.deep.include({ snapshots: 3, evicted: 0, bytes: 3100 });
      expect(fixture.logs.some((l) => l.includes('nothing evicted'))).to.equal(true);

      await put(s4!, t4); // 4100: s3 is the only candidate although s1 and s2 are older
      expect([s1, s2, s3, s4].map((s) => store.has(s!.snapshot))).to.deep.equal([true, true, false, true]);
      await fs.access(store.dirOf(s3!.snapshot)).then(
        () => expect.fail('the evicted directory still exists'),
        (error: NodeJS.ErrnoException) => expect(error.code).to.equal('ENOENT'),
      );
      const blobFile = (p: string, b: Buffer): string => {
        const h = fileHash(p, b);
        return path.join(fixture.workdir, 'blobs', h.slice(0, 2), h);
      };
      await fs.access(blobFile('c.bin', t3['c.bin'])).then(
        () => expect.fail('the blob only s3 used still exists'),
        (error: NodeJS.ErrnoException) => expect(error.code).to.equal('ENOENT'),
      );
      await fs.access(blobFile('shared.bin', shared)); // s2 still links it
      expect(store.stats()).to.deep.include({ snapshots: 3, blobs: 4, bytes: 3100, evicted: 1 });
      expect(fixture.logs.some((l) => l.includes(`evicted snapshot ${s3!.snapshot.slice(0, 12)}`))).to.equal(true);

      release();
      release(); // idempotent: must not release a second pin
      store.setInUse('worker-0', []);
      await store.evict(); // now s1 (least recently used) goes; 2100 fits
      expect([s1, s2, s4].map((s) => store.has(s!.snapshot))).to.deep.equal([false, true, true]);
      expect(store.stats()).to.deep.include({ snapshots: 2, bytes: 2100, evicted: 2 });
      expect(await fs.readdir(path.join(fixture.workdir, 'snapshots'))).to.have.members([s2!.snapshot, s4!.snapshot]);
    });

    it('a pin released twice does not release another holder of the same snapshot', async () => {
      const store = await fixture.open({ diskBudgetBytes: 500 });
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
      const store = await fixture.open({ diskBudgetBytes: 1000 });
      const shared = bytes(500, 7);
      const tOld = { 'shared.bin': shared, 'old.bin': bytes(500, 8) };
      const tNew = { 'shared.bin': shared, 'new.bin': bytes(500, 9) };
      const tOther = { 'other.bin': bytes(1000, 10) };
      const [sOld, sNew, sOther] = [tOld, tNew, tOther].map(snapshotOf);
      await store.upload(sOld!.snapshot, sOld!.files, await zipOf(tOld));
      fixture.later();
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
      const store = await fixture.open({ diskBudgetBytes: 1500, blobLeaseMs: 50 });
      const { s1, s2 } = await partialUpload(store);
      fixture.later(60); // the upload was abandoned
      await store.evict();
      expect(store.has(s1.snapshot)).to.equal(true);
      expect(store.stats()).to.deep.include({ snapshots: 1, blobs: 1, bytes: 1000, evicted: 0 });
      expect((await store.check(s2.snapshot, s2.files)).missing).to.have.length(2);
    });

    it('does not evict snapshots to make up for leased blobs, and drops the lease once the snapshot exists', async () => {
      const store = await fixture.open({ diskBudgetBytes: 1500 });
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
      const store = await fixture.open({ diskBudgetBytes: 900 });
      const { s1, s2, t2 } = await partialUpload(store);
      await store.evict();
      expect(store.has(s1.snapshot)).to.equal(false); // the older snapshot goes, not the upload in progress
      expect(await store.upload(s2.snapshot, s2.files, await zipOf({ 'f.bin': t2['f.bin'] }))).to.deep.equal({
        ready: true,
        missing: [],
      });
    });
  });
});
