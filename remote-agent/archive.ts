// Safe reading of an uploaded snapshot archive (a jszip zip holding the files the agent lacks). Entry names are only
// ever used to look files up in the manifest, never as paths; an entry is inflated into a file the store names, and
// checked against the manifest's size and hash as it is written.

import * as fs from 'node:fs';

import JSZip from 'jszip';

import { AgentError } from '../protocol/errors';
import { fileHasher, isSafeRelativePath, unsafePathMessage } from '../protocol/manifest';
import type { ManifestEntry } from '../protocol/messages';

/** One archive entry that passed the name, type and membership checks; its bytes are not read yet. */
export interface ArchiveFile {
  entry: ManifestEntry;
  object: JSZip.JSZipObject;
}

// File type bits of a Unix mode (st_mode & S_IFMT) as zip tools store them in the external attributes.
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

// jszip documents `internalStream` but its typings omit it; this is the part we use.
interface InternalStreamObject {
  internalStream(type: 'nodebuffer'): JSZip.JSZipStreamHelper<Buffer>;
}

/** An AgentError with own properties, which `toWireError` carries to the client as `props`. */
export function agentError(code: AgentError['code'], message: string, props: Record<string, unknown> = {}): AgentError {
  return Object.assign(new AgentError(code, message), props);
}

/**
 * Parses the archive and checks every entry's name, type and manifest membership before any byte is inflated, so a
 * bad entry anywhere refuses the whole upload before anything is written.
 */
export async function openArchive(
  archive: Buffer,
  manifest: ReadonlyMap<string, ManifestEntry>,
  maxArchiveBytes: number,
): Promise<ArchiveFile[]> {
  if (archive.length > maxArchiveBytes) {
    throw agentError(
      'TOO_LARGE',
      `the upload archive is ${archive.length} bytes, over the agent's bound maxArchiveBytes = ${maxArchiveBytes}: ` +
        'upload the missing files in several smaller archives, exclude large files, or raise maxArchiveBytes on the agent',
      { bound: 'maxArchiveBytes', limit: maxArchiveBytes, value: archive.length },
    );
  }
  const entries = checkEntryCount(archive, manifest.size);
  const zip = await loadZip(archive);
  const files: ArchiveFile[] = [];
  for (const object of Object.values(zip.files)) {
    const file = checkEntry(object, manifest);
    if (file) files.push(file);
  }
  checkDistinctNames(zip, entries); // after the names: an unsafe name that collided is reported as such
  return files;
}

// ---- entry count, before jszip ---------------------------------------------------------------------------------
//
// jszip parses the whole central directory synchronously, so millions of tiny entries would freeze the agent and can
// exhaust its heap. The count is read from the zip's own records first (APPNOTE.TXT 4.3.14-4.3.16), and the central
// directory is walked the way jszip will walk it (jszip ignores the declared count), stopping past the bound.

const EOCD_SIGNATURE = 0x06054b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const ZIP64_EOCD_SIZE = 56;
const CENTRAL_SIGNATURE = 0x02014b50;
const CENTRAL_SIZE = 46;

/** What the end records say: the declared entry count and where jszip will start reading central headers. */
interface CentralDirectory {
  declared: number;
  start: number;
}

/** Refuses an archive with more entries than the manifest can explain, before jszip parses any of them. */
function checkEntryCount(archive: Buffer, manifestFiles: number): number {
  // Each file, the directory entries zip tools add for its parents (a few per file at most), and some slack.
  const bound = 2 * manifestFiles + 16;
  const directory = readCentralDirectory(archive);
  if (directory.declared > bound)
    throw tooManyEntries(archive, `declares ${directory.declared} entries`, bound, manifestFiles);
  const actual = countCentralHeaders(archive, directory.start, bound + 1);
  if (actual > bound) throw tooManyEntries(archive, `holds more than ${bound} entries`, bound, manifestFiles);
  return actual;
}

/** jszip keeps the last of two entries with one name: refuse rather than let one entry hide another. */
function checkDistinctNames(zip: JSZip, entries: number): void {
  const names = Object.keys(zip.files).length;
  if (names < entries) {
    throw agentError(
      'UNSAFE_ARCHIVE',
      `the upload archive holds ${entries} entries under ${names} names: duplicate names, one hiding another. ` +
        'Send each file once, under its manifest path',
    );
  }
}

function tooManyEntries(archive: Buffer, what: string, bound: number, manifestFiles: number): AgentError {
  return agentError(
    'TOO_LARGE',
    `the upload archive (${archive.length} bytes) ${what}, over the bound of ${bound} entries for a manifest of ` +
      `${manifestFiles} files (2 per file + 16): put only the manifest's files (and their directories) in the archive`,
    { bound: 'archiveEntries', limit: bound },
  );
}

// The end of central directory record: within the last 64 KiB + 22 bytes (the comment is at most 64 KiB).
function readCentralDirectory(archive: Buffer): CentralDirectory {
  const eocd = findEndRecord(archive);
  const declared16 = archive.readUInt16LE(eocd + 10);
  const start32 = eocd - archive.readUInt32LE(eocd + 12);
  // jszip switches to zip64 only when a field is saturated; the count is taken from zip64 whenever it exists.
  const saturated = isSaturated(archive, eocd);
  const hasLocator =
    eocd >= ZIP64_LOCATOR_SIZE && archive.readUInt32LE(eocd - ZIP64_LOCATOR_SIZE) === ZIP64_LOCATOR_SIGNATURE;
  if (!saturated && !hasLocator) return { declared: declared16, start: start32 };
  const zip64 = readZip64Record(archive);
  return {
    declared: zip64.declared,
    start: saturated ? eocd - ZIP64_LOCATOR_SIZE - zip64.size - zip64.centralSize : start32,
  };
}

// A field too small for its value is all ones, and the real value is in the zip64 record.
function isSaturated(archive: Buffer, eocd: number): boolean {
  const short = [4, 6, 8, 10].some((at) => archive.readUInt16LE(eocd + at) === 0xffff);
  return short || [12, 16].some((at) => archive.readUInt32LE(eocd + at) === 0xffffffff);
}

// Searched backwards from the end, as jszip does, so both read the same record.
function findEndRecord(archive: Buffer): number {
  const tailStart = Math.max(0, archive.length - EOCD_SIZE - MAX_COMMENT);
  const found = archive.subarray(tailStart).lastIndexOf(signature(EOCD_SIGNATURE));
  const eocd = found < 0 ? -1 : tailStart + found;
  if (eocd < 0 || eocd + EOCD_SIZE > archive.length) {
    throw new AgentError(
      'BAD_MESSAGE',
      `the upload archive (${archive.length} bytes) is not a readable zip file (it has no end of central directory ` +
        'record): send the missing files as one zip archive in frame 1',
    );
  }
  return eocd;
}

// The zip64 end record as jszip finds it: through the last locator, else the last zip64 end record signature.
function readZip64Record(archive: Buffer): { declared: number; size: number; centralSize: number } {
  const locator = archive.lastIndexOf(signature(ZIP64_LOCATOR_SIGNATURE));
  const pointed =
    locator >= 0 && locator + ZIP64_LOCATOR_SIZE <= archive.length ? Number(archive.readBigUInt64LE(locator + 8)) : -1;
  const at = hasSignature(archive, pointed, ZIP64_EOCD_SIGNATURE, ZIP64_EOCD_SIZE)
    ? pointed
    : archive.lastIndexOf(signature(ZIP64_EOCD_SIGNATURE));
  if (!hasSignature(archive, at, ZIP64_EOCD_SIGNATURE, ZIP64_EOCD_SIZE)) {
    throw new AgentError(
      'BAD_MESSAGE',
      `the upload archive (${archive.length} bytes) is a corrupt zip64 file (no zip64 end of central directory ` +
        'record): send the missing files as one zip archive in frame 1',
    );
  }
  return {
    declared: Number(archive.readBigUInt64LE(at + 32)),
    size: 12 + Number(archive.readBigUInt64LE(at + 4)),
    centralSize: Number(archive.readBigUInt64LE(at + 40)),
  };
}

/** Central file headers jszip would read from `start` (it reads while the signature matches), counted up to `limit`. */
function countCentralHeaders(archive: Buffer, start: number, limit: number): number {
  let count = 0;
  for (let at = start; count < limit && hasSignature(archive, at, CENTRAL_SIGNATURE, CENTRAL_SIZE); count++) {
    at += CENTRAL_SIZE + archive.readUInt16LE(at + 28) + archive.readUInt16LE(at + 30) + archive.readUInt16LE(at + 32);
  }
  return count;
}

function hasSignature(archive: Buffer, at: number, value: number, recordSize: number): boolean {
  return Number.isSafeInteger(at) && at >= 0 && at + recordSize <= archive.length && archive.readUInt32LE(at) === value;
}

function signature(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value);
  return bytes;
}

// jszip rejects anything that is not a zip with a plain Error; the client needs our code and advice.
async function loadZip(archive: Buffer): Promise<JSZip> {
  try {
    return await JSZip.loadAsync(archive, { createFolders: false });
  } catch (error) {
    throw new AgentError(
      'BAD_MESSAGE',
      `the upload archive (${archive.length} bytes) is not a readable zip file (${(error as Error).message}): ` +
        'send the missing files as one zip archive in frame 1',
      { cause: error },
    );
  }
}

/** The entry's checked manifest file, or undefined for a directory entry. */
function checkEntry(object: JSZip.JSZipObject, manifest: ReadonlyMap<string, ManifestEntry>): ArchiveFile | undefined {
  // Nothing is created from a directory entry (directories come from manifest paths), so its name cannot escape.
  if (object.dir) return undefined;
  // jszip resolves `..` in `name` (so "../evil" would look like "evil"); judge the name as the archive spelled it.
  const name = object.unsafeOriginalName ?? object.name;
  if (!isSafeRelativePath(name)) {
    throw agentError(
      'UNSAFE_ARCHIVE',
      unsafePathMessage('archive entry', name, 'name entries by their manifest paths, relative to the code root'),
      { path: name },
    );
  }
  checkFileType(object, name);
  const entry = manifest.get(name);
  if (!entry) {
    throw agentError(
      'UNSAFE_ARCHIVE',
      `archive entry ${JSON.stringify(name)} is not in the snapshot's manifest: upload only files the manifest lists`,
      { path: name },
    );
  }
  return { entry, object };
}

// Only regular files may be extracted: a symlink could point out of the snapshot, a device or FIFO could block.
function checkFileType(object: JSZip.JSZipObject, name: string): void {
  const mode = typeof object.unixPermissions === 'number' ? object.unixPermissions : 0;
  const type = mode & S_IFMT;
  if (type === 0 || type === S_IFREG) return;
  const what = type === S_IFLNK ? 'a symbolic link' : `not a regular file (mode ${mode.toString(8)})`;
  throw agentError(
    'UNSAFE_ARCHIVE',
    `archive entry ${JSON.stringify(name)} is ${what}: snapshots hold regular files only; ` +
      'upload the file the link points to under its own path instead',
    { path: name, mode },
  );
}

/**
 * Inflates one entry into the new file `target` as a stream, hashing as it goes, so memory stays at a chunk however
 * large the entry; stops as soon as it passes the manifest's size (a zip bomb is never inflated in full), then
 * checks the exact size and the content hash. On a failure `target` may hold part of the entry: the caller's
 * staging directory goes with it.
 */
export function inflateVerified(file: ArchiveFile, target: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const { entry } = file;
    const hash = fileHasher(entry.path);
    const out = fs.createWriteStream(target, { flags: 'wx', mode: 0o444 });
    let total = 0;
    let settled = false;
    const settle = (error: Error | null): void => {
      if (settled) return;
      settled = true;
      if (error) {
        stream.pause();
        out.destroy();
        reject(error);
      } else {
        resolve();
      }
    };
    const stream = (file.object as unknown as InternalStreamObject).internalStream('nodebuffer');
    stream
      .on('data', (chunk) => {
        if (settled) return; // the inflater finishes its current input block synchronously after we pause; drop it
        total += chunk.length;
        if (total > entry.size) return settle(oversizedEntry(entry, total));
        hash.update(chunk);
        if (!out.write(chunk)) {
          stream.pause();
          out.once('drain', () => settled || stream.resume());
        }
      })
      .on('error', (error) => settle(corruptEntry(entry, error)))
      .on('end', () => {
        if (settled) return;
        const mismatch = verify(entry, total, hash.digest('hex'));
        if (mismatch) return settle(mismatch);
        out.end(() => settle(null));
      });
    out.on('error', (error) => settle(error));
    stream.resume();
  });
}

/** Null when the size and hash match the manifest; else HASH_MISMATCH naming the path. */
function verify(entry: ManifestEntry, size: number, actual: string): AgentError | null {
  if (size !== entry.size) {
    return agentError(
      'HASH_MISMATCH',
      `archive entry ${JSON.stringify(entry.path)} holds ${size} bytes but the manifest says ${entry.size}: ` +
        'the file probably changed while it was packaged; run the call again to re-package it',
      { path: entry.path, expected: entry.size, value: size },
    );
  }
  if (actual !== entry.hash) {
    return agentError(
      'HASH_MISMATCH',
      `archive entry ${JSON.stringify(entry.path)} hashes to ${actual.slice(0, 12)}, the manifest says ` +
        `${entry.hash.slice(0, 12)}: the file probably changed while it was packaged; run the call again to re-package it`,
      { path: entry.path, expected: entry.hash, value: actual },
    );
  }
  return null;
}

function oversizedEntry(entry: ManifestEntry, inflated: number): AgentError {
  return agentError(
    'TOO_LARGE',
    `archive entry ${JSON.stringify(entry.path)} inflates to more than its manifest size of ${entry.size} bytes ` +
      `(stopped after ${inflated} bytes): the archive does not match its manifest (a changed file or a zip bomb); ` +
      'run the call again to re-package the snapshot',
    { path: entry.path, limit: entry.size, inflatedBytes: inflated },
  );
}

function corruptEntry(entry: ManifestEntry, error: unknown): AgentError {
  return Object.assign(
    new AgentError(
      'BAD_MESSAGE',
      `archive entry ${JSON.stringify(entry.path)} cannot be inflated (${(error as Error).message}): ` +
        'the archive is corrupt; run the call again to re-package the snapshot',
      { cause: error },
    ),
    { path: entry.path },
  );
}
