// Stack rewriting: the user wrote `src/model.ts`, the worker ran `<snapshotsRoot>/<hash>/src/model.ts`. Frames and
// messages name the user's relative path; frames of the worker's own machinery (this folder, the trampoline that
// calls the job, and everything below it) are dropped because they only hide the user's frames. TypeScript
// positions come from Node's source-map support (enabled in main.ts), which maps frames before we see them.

import * as path from 'node:path';

import type { WireError } from '../../protocol/errors';

/** The vm filename of the script that calls a job's function: every frame at and below it is the worker's. */
export const TRAMPOLINE_FILENAME = 'tslab-remote:job-entry';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class StackRewriter {
  private readonly snapshotPath: RegExp;
  private readonly ownDirs: string[];

  /** `roots`: the snapshots root as given and as real path; `ownDirs`: directories whose frames are ours. */
  constructor(roots: readonly string[], ownDirs: readonly string[]) {
    const alternatives = [...new Set(roots.map((r) => r.replace(/[\\/]+$/, '')))].map(escapeRegExp).join('|');
    // An optional file:// prefix, the root, a 64-hex snapshot directory: all replaced by nothing.
    this.snapshotPath = new RegExp(`(?:file://)?(?:${alternatives})[\\\\/][0-9a-f]{64}[\\\\/]`, 'g');
    this.ownDirs = ownDirs.map((d) => d.replace(/[\\/]+$/, '') + path.sep);
  }

  /** Snapshot paths in any text become relative paths. */
  paths(text: string): string {
    return text.replace(this.snapshotPath, '');
  }

  /** A stack with relative paths and without the worker's frames. */
  stack(stack: string): string {
    const lines = stack.split('\n');
    const out: string[] = [];
    for (const line of lines) {
      const isFrame = /^\s+at /.test(line);
      if (isFrame && line.includes(TRAMPOLINE_FILENAME)) break;
      if (isFrame && this.ownDirs.some((dir) => line.includes(dir))) continue;
      out.push(line);
    }
    return this.paths(out.join('\n'));
  }

  /** Rewrites a WireError in place: message, stack, string props, and its causes. */
  wire(error: WireError, depth = 0): WireError {
    error.message = this.paths(error.message);
    if (error.stack) error.stack = this.stack(error.stack);
    if (error.props) error.props = this.deep(error.props) as Record<string, unknown>;
    if (error.cause && depth < 8) this.wire(error.cause, depth + 1);
    return error;
  }

  private deep(value: unknown, depth = 0): unknown {
    if (typeof value === 'string') return this.paths(value);
    if (depth > 8 || typeof value !== 'object' || value === null) return value;
    if (Array.isArray(value)) return value.map((v) => this.deep(v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = this.deep(v, depth + 1);
    return out;
  }
}
