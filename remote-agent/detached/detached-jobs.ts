// The agent's detached jobs, kept under WORKDIR/jobs: made by a call with `options.detach`, found by their owner's
// key and their id or name, forgotten a time to live after they ended or were last fetched. On start, a job the
// disk shows queued or running was lost with the agent that ran it; it is reported `lost`, with its output so far.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { AgentError } from '../../protocol/errors';
import type { DetachedJobInfo } from '../../protocol/job-messages';
import { DetachedJob, DetachedJobLimits } from './detached-job';
import { JobFiles, JobMeta, safeReaddir } from './job-files';

export interface DetachedJobsOptions extends DetachedJobLimits {
  /** WORKDIR/jobs. */
  root: string;
  /** A result larger than this fails the job (TOO_LARGE) instead of being kept. */
  maxResultBytes: number;
  /** Jobs kept in all; the oldest ended ones make room for new ones. */
  maxJobs: number;
  /** Bytes the ended jobs' results and output may hold on disk; past it, the oldest are forgotten. */
  diskBudgetBytes: number;
  log: (line: string) => void;
  now?: () => number;
}

const MiB = 1024 * 1024;
export const DEFAULT_DETACHED_LIMITS = {
  maxOutputBytes: 8 * MiB,
  maxResultBytes: 256 * MiB,
  ttlMs: 7 * 24 * 3600_000,
  maxJobs: 1_000,
  diskBudgetBytes: 4096 * MiB,
};

const SWEEP_MS = 60_000;
/** Forgotten jobs remembered, so that asking for one says why it is gone. */
const FORGOTTEN_KEPT = 1_000;

export class DetachedJobs {
  private readonly jobs = new Map<string, DetachedJob>();
  /** Why a job was forgotten, by owner and id, and by owner and name (the newest of a name), oldest first. */
  private readonly forgotten = new Map<string, string>();
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: DetachedJobsOptions) {
    const { maxResultBytes, maxOutputBytes, diskBudgetBytes } = options;
    if (maxResultBytes + maxOutputBytes > diskBudgetBytes) {
      // Else a job with the largest result allowed is forgotten the moment it ends.
      throw new RangeError(
        `--jobs-disk-budget (${diskBudgetBytes / MiB} MB) must hold at least one job's largest result and output ` +
          `(--job-result-mb ${maxResultBytes / MiB} + --job-output-mb ${maxOutputBytes / MiB}): raise it or lower those`,
      );
    }
    this.now = options.now ?? Date.now;
    this.recover();
    this.ended(); // the budget may have shrunk since the last run
    this.sweep();
    this.timer = setInterval(() => this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  get maxResultBytes(): number {
    return this.options.maxResultBytes;
  }

  /** A new job of `owner`'s, queued. */
  create(owner: string, name: string | undefined, kind: 'source' | 'pickle', snapshot: string | null): DetachedJob {
    this.makeRoom();
    const id = this.newId();
    const meta: JobMeta = {
      id,
      name: name ?? id,
      state: 'queued',
      kind,
      createdAt: this.now(),
      startedAt: null,
      endedAt: null,
      worker: null,
      lastLine: '',
      outputBytes: 0,
      droppedBytes: 0,
      expiresAt: null,
      owner,
      snapshot,
      fetchedAt: null,
    };
    const job = new DetachedJob(JobFiles.create(this.options.root, id, this.options.log), meta, this.options, this.now);
    job.files.writeMeta(meta);
    this.jobs.set(id, job);
    return job;
  }

  /** `owner`'s job by id, else the newest of that name. */
  find(owner: string, idOrName: string): DetachedJob {
    this.sweep();
    const byId = this.jobs.get(idOrName);
    if (byId?.meta.owner === owner) return byId;
    const named = this.own(owner).filter((job) => job.meta.name === idOrName);
    const job = named[named.length - 1];
    if (job) return job;
    const why = this.forgotten.get(`${owner}\0${idOrName}`);
    throw new AgentError(
      'JOB_UNKNOWN',
      why !== undefined
        ? `detached job ${JSON.stringify(idOrName)} was forgotten: ${why}. %remote_jobs lists the jobs this agent keeps for you`
        : `this agent has no detached job ${JSON.stringify(idOrName)} of yours: it never existed here, was started ` +
            `with another key, or was forgotten before the agent's last restart. %remote_jobs lists yours`,
    );
  }

  list(owner: string): DetachedJobInfo[] {
    this.sweep();
    return this.own(owner).map((job) => job.info());
  }

  /** A job ended: past the disk budget, the oldest ended jobs (this one last) are forgotten. */
  ended(): void {
    const ended = [...this.jobs.values()].filter((job) => job.ended).sort((a, b) => a.meta.endedAt! - b.meta.endedAt!);
    const sizes = new Map(ended.map((job) => [job, job.files.size()]));
    let total = [...sizes.values()].reduce((sum, size) => sum + size, 0);
    for (const job of ended) {
      if (total <= this.options.diskBudgetBytes) return;
      total -= sizes.get(job)!;
      this.forget(
        job,
        `the detached jobs' disk budget (--jobs-disk-budget, ${Math.round(this.options.diskBudgetBytes / MiB)} MB) was full`,
      );
    }
  }

  /** A job that never started (the pool refused it): gone without a trace. */
  discard(job: DetachedJob): void {
    this.jobs.delete(job.id);
    job.files.remove();
  }

  /** Jobs still queued or running, of everyone (the agent's stop reports them lost). */
  running(): DetachedJob[] {
    return [...this.jobs.values()].filter((job) => !job.ended);
  }

  stop(): void {
    clearInterval(this.timer);
    for (const job of this.jobs.values()) job.flush();
  }

  private own(owner: string): DetachedJob[] {
    return [...this.jobs.values()]
      .filter((job) => job.meta.owner === owner)
      .sort((a, b) => a.meta.createdAt - b.meta.createdAt);
  }

  /** At the bound, forgets the oldest ended job; refuses when every kept job is still running. */
  private makeRoom(): void {
    this.sweep();
    if (this.jobs.size < this.options.maxJobs) return;
    const oldest = [...this.jobs.values()]
      .filter((job) => job.ended)
      .sort((a, b) => a.meta.endedAt! - b.meta.endedAt!)[0];
    if (!oldest) {
      throw new AgentError(
        'TOO_LARGE',
        `the agent already runs ${this.jobs.size} detached jobs (--max-detached-jobs): wait for some to end or cancel them`,
      );
    }
    this.forget(oldest, 'to make room for a new one (--max-detached-jobs)');
  }

  /** A short id to type (`%remote_attach 1a2b3c4d`), unused here. */
  private newId(): string {
    for (;;) {
      const id = randomBytes(4).toString('hex');
      if (!this.jobs.has(id) && !fs.existsSync(path.join(this.options.root, id))) return id;
    }
  }

  private sweep(): void {
    const now = this.now();
    for (const job of [...this.jobs.values()]) {
      if (job.meta.expiresAt !== null && job.meta.expiresAt <= now)
        this.forget(
          job,
          `its time to live ran out, ${+(this.options.ttlMs / 3600_000).toPrecision(3)} h after it ended or was last attached (--job-ttl-hours)`,
        );
    }
  }

  private forget(job: DetachedJob, why: string): void {
    this.jobs.delete(job.id);
    for (const ref of [job.id, job.meta.name]) {
      const key = `${job.meta.owner}\0${ref}`;
      this.forgotten.delete(key); // re-inserted as the newest
      this.forgotten.set(key, why);
    }
    while (this.forgotten.size > FORGOTTEN_KEPT) this.forgotten.delete(this.forgotten.keys().next().value!);
    try {
      job.files.remove();
    } catch (error) {
      this.options.log(`could not remove ${job.files.dir}: ${(error as Error).message}`);
    }
    this.options.log(`forgot detached job ${job.id} (${job.meta.name}): ${why}`);
  }

  private recover(): void {
    for (const name of safeReaddir(this.options.root)) {
      const files = new JobFiles(path.join(this.options.root, name), this.options.log);
      let meta: JobMeta;
      try {
        meta = files.readMeta();
      } catch (error) {
        this.options.log(`removed ${files.dir}: its meta.json is unreadable (${(error as Error).message})`);
        files.remove();
        continue;
      }
      const job = new DetachedJob(files, meta, this.options, this.now);
      this.jobs.set(meta.id, job);
      if (!job.ended) {
        const message = `the agent that ran detached job ${meta.id} (${meta.name}) stopped before the job ended; its output so far is kept`;
        job.end('lost', { error: { code: 'WORKER_CRASHED', name: 'AgentError', message } });
      }
    }
  }
}
