import { expect } from 'chai';
import * as fs from 'node:fs/promises';
import * as nodePath from 'node:path';
import * as tmp from 'tmp-promise';

import { rejectionOf } from '../support/rejection';
import JSZip from 'jszip';

import { AgentError } from '../../protocol/errors';
import { fileHash } from '../../protocol/manifest';
import type { ManifestEntry } from '../../protocol/messages';
import { ArchiveFile, inflateVerified, openArchive } from '../../remote-agent/archive';
import { manyEntryZip } from '../support/zips';

const caught = (promise: Promise<unknown>): Promise<AgentError> => rejectionOf(promise, AgentError);

/** Inflates the entry into a temp file, as the store does, and reads it back. */
async function readVerified(file: ArchiveFile): Promise<Buffer> {
  const dir = await tmp.dir({ unsafeCleanup: true, prefix: 'inflate-' });
  try {
    await inflateVerified(file, nodePath.join(dir.path, 'entry'));
    return await fs.readFile(nodePath.join(dir.path, 'entry'));
  } finally {
    await dir.cleanup();
  }
}

function entryOf(path: string, bytes: Buffer): ManifestEntry {
  return { path, size: bytes.length, hash: fileHash(path, bytes) };
}

function threeFiles(): Map<string, ManifestEntry> {
  return new Map(['a.js', 'b.js', 'src/c.js'].map((p) => [p, entryOf(p, Buffer.from(p))]));
}

describe('remote-agent/archive', () => {
  it('skips directory entries and returns verified bytes of each file', async () => {
    const content = Buffer.from('export const deep = true;\n');
    const zip = new JSZip();
    zip.folder('a')!.folder('b')!.file('c.ts', content); // jszip writes entries "a/", "a/b/" and "a/b/c.ts"
    const archive = await zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE', platform: 'UNIX' });
    const manifest = new Map([['a/b/c.ts', entryOf('a/b/c.ts', content)]]);
    const files = await openArchive(archive, manifest, 1 << 20);
    expect(files.map((f) => f.entry.path)).to.deep.equal(['a/b/c.ts']);
    expect(await readVerified(files[0]!)).to.deep.equal(content);
  });

  it('refuses an entry shorter than its manifest size with HASH_MISMATCH naming both sizes', async () => {
    const full = Buffer.from('0123456789');
    const archive = await new JSZip().file('f.txt', full.subarray(0, 4)).generateAsync({ type: 'nodebuffer' });
    const [file] = await openArchive(archive, new Map([['f.txt', entryOf('f.txt', full)]]), 1 << 20);
    const error = await caught(readVerified(file!));
    expect(error.code).to.equal('HASH_MISMATCH');
    expect(error.message).to.contain('"f.txt"').and.contain('4 bytes').and.contain('says 10');
  });

  it('stops reading a stored (uncompressed) entry as soon as it passes its manifest size', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    const archive = await new JSZip().file('big.bin', big).generateAsync({ type: 'nodebuffer', compression: 'STORE' });
    const declared = entryOf('big.bin', big.subarray(0, 100));
    const [file] = await openArchive(archive, new Map([['big.bin', declared]]), 8 * 1024 * 1024);
    const error = await caught(readVerified(file!));
    expect(error.code).to.equal('TOO_LARGE');
    expect((error as unknown as { inflatedBytes: number }).inflatedBytes).to.be.below(big.length);
  });

  it('refuses an archive of 200,000 empty entries for a 3-file manifest at once, before jszip parses it', async () => {
    const archive = manyEntryZip(200_000);
    const error = await caught(openArchive(archive, threeFiles(), 1 << 30));
    expect(error.code).to.equal('TOO_LARGE');
    // "declares": read from the end record, before jszip would parse 200,000 headers (seconds of a stalled loop).
    expect(error.message)
      .to.contain('declares 200000 entries')
      .and.contain('bound of 22 entries')
      .and.contain('3 files');
  });

  it('reads the entry count from the zip64 end record even when the 16-bit count is not saturated', async () => {
    const error = await caught(openArchive(manyEntryZip(100, { zip64: true }), threeFiles(), 1 << 30));
    expect(error.code).to.equal('TOO_LARGE');
    expect(error.message).to.contain('declares 100 entries');
  });

  it('allows 2 entries per manifest file + 16 (directory entries), and refuses one more', async () => {
    const within = await caught(openArchive(manyEntryZip(22), threeFiles(), 1 << 20));
    expect(within.code, within.message).to.equal('UNSAFE_ARCHIVE'); // past the count: jszip parsed it, the names fail
    const over = await caught(openArchive(manyEntryZip(23), threeFiles(), 1 << 20));
    expect(over.code).to.equal('TOO_LARGE');
    expect(over.message).to.contain('declares 23 entries');
  });

  it('counts the central headers jszip would read when the end record understates them', async () => {
    const error = await caught(openArchive(manyEntryZip(50_000, { declared: 1 }), threeFiles(), 1 << 30));
    expect(error.code).to.equal('TOO_LARGE');
    expect(error.message).to.contain('holds more than 22 entries');
  });

  it('still calls something without an end of central directory record not a zip (BAD_MESSAGE)', async () => {
    const error = await caught(openArchive(Buffer.from('PK\x03\x04 not really a zip'), threeFiles(), 1 << 20));
    expect(error.code).to.equal('BAD_MESSAGE');
    expect(error.message).to.contain('not a readable zip file');
  });

  it('refuses a device-like entry type (not a regular file) with UNSAFE_ARCHIVE', async () => {
    const archive = await new JSZip()
      .file('fifo', 'x', { unixPermissions: 0o010644 })
      .generateAsync({ type: 'nodebuffer', platform: 'UNIX' });
    const error = await caught(openArchive(archive, new Map([['fifo', entryOf('fifo', Buffer.from('x'))]]), 1 << 20));
    expect(error.code).to.equal('UNSAFE_ARCHIVE');
    expect(error.message).to.contain('"fifo"').and.contain('not a regular file');
  });
});
