// The snapshot store tests' helpers: trees, manifests and zips made in memory, listings of a directory tree, and a
// fresh workdir per test with a clock the test moves.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import JSZip from 'jszip';
import * as tmp from 'tmp-promise';

import { AgentError } from '../../../protocol/errors';
import { fileHash, snapshotHash } from '../../../protocol/manifest';
import type { ManifestEntry } from '../../../protocol/messages';
import { DEFAULT_STORE_LIMITS, SnapshotStore, StoreOptions } from '../../../remote-agent/store/snapshot-store';
import { rejectionOf as rejectionOfType } from '../../support/rejection';

export type Tree = Record<string, Buffer>;

export function manifestOf(tree: Tree): ManifestEntry[] {
  return Object.entries(tree).map(([p, bytes]) => ({ path: p, size: bytes.length, hash: fileHash(p, bytes) }));
}

export function snapshotOf(tree: Tree): { snapshot: string; files: ManifestEntry[] } {
  const files = manifestOf(tree);
  return { snapshot: snapshotHash(files), files };
}

export interface ZipEntry {
  name: string;
  bytes: Buffer | string;
  options?: JSZip.JSZipFileOptions;
}

export async function zipOf(entries: ZipEntry[] | Tree): Promise<Buffer> {
  const list: ZipEntry[] = Array.isArray(entries)
    ? entries
    : Object.entries(entries).map(([name, bytes]) => ({ name, bytes }));
  const zip = new JSZip();
  for (const e of list) zip.file(e.name, e.bytes, e.options);
  return zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE', platform: 'UNIX' });
}

/** Every path under `root`, relative and sorted: before/after comparisons show any write anywhere. */
export async function listing(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  return entries.map((e) => path.relative(root, path.join(e.parentPath, e.name)) + (e.isDirectory() ? '/' : '')).sort();
}

export function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

export const rejectionOf = (promise: Promise<unknown>): Promise<AgentError> => rejectionOfType(promise, AgentError);

/**
 * Writes a read-only file as a job running as root could (root ignores mode 0444; others need the chmod). The mtime
 * is set apart from the upload's, as a later write's would be on a file system with coarse timestamps.
 */
export async function writeAsRoot(file: string, text: string): Promise<void> {
  await fs.chmod(file, 0o644);
  await fs.writeFile(file, text);
  await fs.chmod(file, 0o444);
  await fs.utimes(file, 1_000, 1_000);
}

/** A small code tree most tests upload. */
export const treeA: Tree = {
  'package.json': Buffer.from('{"name":"demo"}'),
  'src/index.ts': Buffer.from('export const x = 1;\n'),
  'src/lib/util.ts': bytes(3000, 1),
};

export interface StoreWorkdir {
  /** A private parent of the workdir: a listing of it shows escapes of any depth. */
  readonly parent: tmp.DirectoryResult;
  readonly workdir: string;
  readonly logs: string[];
  /** Opens a store on the workdir with the test's clock and log. */
  open(overrides?: Partial<StoreOptions>): Promise<SnapshotStore>;
  /** Moves the store's clock on: tests do this instead of sleeping. */
  later(ms?: number): void;
}

/** For a describe block: a fresh workdir (and clock, and log) for each test, removed after it. */
export function useStoreWorkdir(): StoreWorkdir {
  let clock = 0;
  const t = {
    logs: [] as string[],
    open: (overrides: Partial<StoreOptions> = {}) =>
      SnapshotStore.open({
        ...DEFAULT_STORE_LIMITS,
        workdir: t.workdir,
        log: (line) => t.logs.push(line),
        now: () => clock,
        ...overrides,
      }),
    later: (ms = 1_000) => {
      clock += ms;
    },
  } as { -readonly [K in keyof StoreWorkdir]: StoreWorkdir[K] };
  beforeEach(async () => {
    t.parent = await tmp.dir({ unsafeCleanup: true, prefix: 'store-test-' });
    t.workdir = path.join(t.parent.path, 'work');
    t.logs = [];
    clock = Date.UTC(2030, 0, 1);
  });
  afterEach(async () => {
    await t.parent.cleanup();
  });
  return t;
}
