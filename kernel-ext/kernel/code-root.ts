// The code root (%remote_root, TSLAB_REMOTE_CODE_ROOT, or the nearest directory with a package.json) and its
// snapshots, with one stat cache per kernel so that unchanged files are not read again.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { findCodeRoot, snapshot, SnapshotResult, StatCache } from '../client/snapshot';
import { formatBytes } from './display';
import type { CellIO } from './io';
import { CellFailure } from './io';
import type { CellInterrupt } from './interrupt';

export const ENV_CODE_ROOT = 'TSLAB_REMOTE_CODE_ROOT';

/** The code root and its snapshot, taken while the cell is type-checked (the file system work overlaps it). */
export interface Prepared {
  root: Promise<string | null>;
  snapshot: Promise<SnapshotResult | null>;
}

export class CodeRoot {
  private readonly statCache = new StatCache();
  private codeRoot?: string;

  constructor(private readonly notebookDir: string) {
    const root = process.env[ENV_CODE_ROOT];
    if (root) this.codeRoot = path.resolve(notebookDir, root);
  }

  /** The code root: %remote_root, TSLAB_REMOTE_CODE_ROOT, or the nearest directory with a package.json; else null. */
  async root(): Promise<string | null> {
    if (this.codeRoot === undefined) {
      try {
        this.codeRoot = await findCodeRoot(this.notebookDir);
      } catch {
        return null; // asked again next time: a package.json may appear
      }
    }
    return this.codeRoot;
  }

  /** %remote_root [DIR]: shows the code root, or sets it once DIR can be snapshotted. */
  async show(dir: string | undefined, io: CellIO, cell: CellInterrupt): Promise<void> {
    let root: string | null;
    if (dir !== undefined) {
      root = userPath(this.notebookDir, dir);
      if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
        throw new CellFailure({ ename: 'UsageError', evalue: `${root} is not a directory`, traceback: [] });
      }
    } else {
      root = await this.root();
    }
    if (root === null) {
      io.stream(
        'stdout',
        `no code root: no package.json in ${this.notebookDir} or above it; calls run without your local files (set one with %remote_root DIR)\n`,
      );
      return;
    }
    // A new root is kept only once it can be snapshotted: a bad one must not break every later %remote.
    const taken = snapshot(root, { statCache: this.statCache }).catch((error: unknown) => {
      throw new CellFailure({
        ename: 'UsageError',
        evalue: `cannot snapshot ${root} as the code root: ${(error as Error).message}. Pick another with %remote_root DIR`,
        traceback: [],
      });
    });
    const snap = await cell.during(`taking the snapshot of ${root}`, taken);
    this.codeRoot = root;
    const cwd = this.cwdIn(root);
    io.stream(
      'stdout',
      `code root ${root}\n  ${snap.files.length} files, ${formatBytes(snap.bytes)}, snapshot ${snap.hash.slice(0, 12)}\n` +
        (cwd !== undefined || this.notebookDir === root
          ? `  the notebook's directory on the agent: ${cwd ?? '(the root itself)'}\n`
          : "  the notebook's directory is outside the code root: calls run in the root's copy on the agent\n"),
    );
    for (const warning of snap.warnings) io.stream('stderr', `${warning}\n`);
  }

  /** Starts taking the snapshot. Started before the type check, so the two overlap. */
  prepare(): Prepared {
    // Started synchronously when the root is known, so the first file system calls run while tslab type-checks.
    const root = this.codeRoot !== undefined ? Promise.resolve(this.codeRoot) : this.root();
    const snap =
      this.codeRoot !== undefined
        ? snapshot(this.codeRoot, { statCache: this.statCache })
        : root.then((dir) => (dir === null ? null : snapshot(dir, { statCache: this.statCache })));
    root.catch(() => undefined);
    snap.catch(() => undefined);
    return { root, snapshot: snap };
  }

  /** The notebook's directory relative to the root; undefined: the snapshot's root (the notebook lies outside it). */
  cwdIn(root: string): string | undefined {
    const rel = path.relative(root, this.notebookDir);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
    return rel.split(path.sep).join('/');
  }
}

/** A path the user typed in a magic: `~/` is the home directory (no shell expands it), relative is to the notebook. */
export function userPath(notebookDir: string, typed: string): string {
  const home = typed === '~' || typed.startsWith('~/') ? os.homedir() + typed.slice(1) : typed;
  return path.resolve(notebookDir, home);
}
