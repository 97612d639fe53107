// Where a job runs: its snapshot's directory (switching snapshots reloads the modules that changed, see
// module-reload.ts) and its working directory inside it, or the worker's own directory for a job without snapshot.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { AgentError } from '../../protocol/errors';
import { isSafeRelativePath } from '../../protocol/manifest';
import type { RunMessage } from './channel';
import { describeSwitch, type SwitchReport } from './module-reload';

export interface JobDirectoryDeps {
  snapshotsRoot: string;
  agentName: string;
  /** Loads another snapshot's modules in place of the current one's. */
  switchTo(snapshot: string): SwitchReport;
  /** The snapshot changed: compiled job code of others' files can go. */
  switched(root: string): void;
  log(line: string): void;
  /** Said to the job that sees the switch (its stderr). */
  notice(text: string): void;
}

export class JobDirectory {
  private readonly initialCwd = process.cwd();
  /** The snapshot whose modules are loaded. */
  loaded: string | null = null;

  constructor(private readonly deps: JobDirectoryDeps) {}

  snapshotDir(message: RunMessage): string | null {
    return message.snapshot === null ? null : path.join(this.deps.snapshotsRoot, message.snapshot);
  }

  /** Switches to the job's snapshot (purging the old one's modules) and its working directory; returns the latter. */
  enter(message: RunMessage): string {
    const root = this.snapshotDir(message);
    if (root === null || message.snapshot === null) {
      // No snapshot: the modules loaded last stay as they are; run where the worker started.
      if (process.cwd() !== this.initialCwd) process.chdir(this.initialCwd);
      return this.initialCwd;
    }
    if (!fs.existsSync(root))
      throw new AgentError('SNAPSHOT_MISSING', `snapshot ${message.snapshot} is not on agent ${this.deps.agentName}`);
    if (message.snapshot !== this.loaded) this.switchTo(message.snapshot, root);
    const cwd = message.options.cwd;
    if (cwd !== undefined && cwd !== '.' && !isSafeRelativePath(cwd))
      throw new AgentError('BAD_MESSAGE', `options.cwd ${JSON.stringify(cwd)} is not a relative path`);
    const dir = cwd && cwd !== '.' ? path.join(root, cwd) : root;
    try {
      if (process.cwd() !== dir) process.chdir(dir);
    } catch (err) {
      throw new AgentError('BAD_MESSAGE', `options.cwd ${JSON.stringify(cwd)} is not a directory of the snapshot`, {
        cause: err,
      });
    }
    return dir;
  }

  private switchTo(snapshot: string, root: string): void {
    const report = this.deps.switchTo(snapshot);
    this.deps.switched(root);
    if (this.loaded !== null) {
      const summary = describeSwitch(report);
      this.deps.log(`switched from snapshot ${this.loaded.slice(0, 12)} to ${snapshot.slice(0, 12)}: ${summary}`);
      // Said to the call that sees it, so a reset of module state is never silent.
      if (report.changed.length + report.importers.length > 0) this.deps.notice(`tslab-remote: ${summary}\n`);
      for (const failure of report.disposeErrors)
        this.deps.notice(`tslab-remote: a dispose callback threw: ${failure}\n`);
    }
    this.loaded = snapshot;
  }
}
