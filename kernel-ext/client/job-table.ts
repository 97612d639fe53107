// Detached jobs as a table, for %remote_jobs and `tslab-remote jobs`: id, name, state, started, elapsed, agent,
// worker, last output line.

import type { DetachedJobInfo } from '../../protocol/job-messages';

const HEADER = ['id', 'name', 'state', 'started', 'elapsed', 'agent', 'worker', 'last output'];

export function jobTable(jobs: readonly { agent: string; job: DetachedJobInfo }[]): string {
  const rows = jobs.map(({ agent, job }) => [
    job.id,
    job.name,
    job.state,
    clock(job.createdAt),
    elapsed(job),
    agent,
    job.worker === null ? '' : String(job.worker),
    job.lastLine,
  ]);
  const all = [HEADER, ...rows];
  const widths = HEADER.map((_, column) => Math.max(...all.map((row) => row[column]!.length)));
  return (
    all
      .map((row) =>
        row
          .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** How long the job has run (or ran): 42s, 3m07s, 2h05m. Empty while it is queued. */
export function elapsed(job: DetachedJobInfo, now = Date.now()): string {
  if (job.startedAt === null) return '';
  const seconds = Math.max(0, Math.round(((job.endedAt ?? now) - job.startedAt) / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return h > 0
    ? `${h}h${String(m).padStart(2, '0')}m`
    : m > 0
      ? `${m}m${String(seconds % 60).padStart(2, '0')}s`
      : `${seconds}s`;
}

/** A time of day today, else the date too. */
function clock(ms: number): string {
  const date = new Date(ms);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toTimeString().slice(0, 8)
    : `${date.toISOString().slice(0, 10)} ${date.toTimeString().slice(0, 5)}`;
}
