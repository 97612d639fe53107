// The detached-job table on its own, with a clock of the test's: the bounds on how many jobs are kept and how much
// disk their results and output hold, the time to live, what an agent restart finds, and why a job is gone.

import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { AgentError } from '../../../protocol/errors';
import { DetachedJobs, DetachedJobsOptions } from '../../../remote-agent/detached/detached-jobs';

const HOUR = 3600_000;

describe('remote-agent/detached/detached-jobs', () => {
  let root: string;
  let clock: number;
  const logs: string[] = [];
  const tables: DetachedJobs[] = [];

  const open = (options: Partial<DetachedJobsOptions> = {}): DetachedJobs => {
    const jobs = new DetachedJobs({
      root,
      maxOutputBytes: 1_000,
      maxResultBytes: 10_000,
      ttlMs: HOUR,
      maxJobs: 100,
      diskBudgetBytes: 100_000,
      log: (line) => logs.push(line),
      now: () => clock,
      ...options,
    });
    tables.push(jobs);
    return jobs;
  };
  /** A job of `owner`'s that ran and returned `bytes` bytes, `ms` after the clock's current time. */
  const finished = (jobs: DetachedJobs, name: string, bytes = 100, owner = 'alice') => {
    const job = jobs.create(owner, name, 'source', null);
    job.started(0);
    clock += 1_000;
    job.end('done', { frames: [Buffer.alloc(bytes, 1)], worker: 0 });
    jobs.ended();
    return job;
  };
  const unknown = (jobs: DetachedJobs, ref: string, owner = 'alice'): string => {
    try {
      jobs.find(owner, ref);
    } catch (error) {
      expect((error as AgentError).code).to.equal('JOB_UNKNOWN');
      return (error as Error).message;
    }
    throw new Error(`job ${ref} was found`);
  };

  beforeEach(async () => {
    root = (await tmp.dir({ unsafeCleanup: true, prefix: 'jobs-' })).path;
    clock = 1_700_000_000_000;
    logs.length = 0;
  });
  afterEach(() => tables.splice(0).forEach((jobs) => jobs.stop()));

  it('refuses a disk budget that cannot hold one job with the largest result and output allowed', () => {
    expect(() => open({ diskBudgetBytes: 10_999 })).to.throw(
      RangeError,
      /--jobs-disk-budget .* must hold at least one job/,
    );
  });

  it('forgets the oldest ended jobs past the disk budget, this one last, and says so when asked for one', () => {
    const jobs = open({ diskBudgetBytes: 25_000 });
    const first = finished(jobs, 'first', 9_000);
    finished(jobs, 'second', 9_000);
    finished(jobs, 'third', 9_000);
    expect(jobs.list('alice').map((job) => job.name)).to.deep.equal(['second', 'third']);
    expect(fs.existsSync(first.files.dir)).to.equal(false);
    expect(unknown(jobs, 'first')).to.match(/was forgotten: the detached jobs' disk budget .* was full/);
    expect(unknown(jobs, first.id)).to.match(/was forgotten: .*disk budget/);
  });

  it('keeps at most --max-detached-jobs: the oldest ended one makes room, and none is dropped while all run', () => {
    const jobs = open({ maxJobs: 2 });
    finished(jobs, 'old');
    finished(jobs, 'newer');
    const running = jobs.create('alice', 'running', 'source', null);
    expect(jobs.list('alice').map((job) => job.name)).to.deep.equal(['newer', 'running']);
    expect(unknown(jobs, 'old')).to.match(/forgotten: to make room for a new one \(--max-detached-jobs\)/);
    jobs.create('alice', 'also running', 'source', null);
    expect(() => jobs.create('bob', 'one more', 'source', null))
      .to.throw(AgentError, /already runs 2 detached jobs \(--max-detached-jobs\)/)
      .with.property('code', 'TOO_LARGE');
    expect(running.ended).to.equal(false);
  });

  it('forgets an ended job a time to live after it ended or was last fetched', () => {
    const jobs = open();
    const kept = finished(jobs, 'kept');
    const dropped = finished(jobs, 'dropped');
    clock += HOUR / 2;
    kept.fetched();
    clock += HOUR / 2 + 1;
    expect(jobs.list('alice').map((job) => job.name)).to.deep.equal(['kept']);
    expect(unknown(jobs, dropped.id)).to.match(/time to live ran out, 1 h after it ended or was last attached/);
    clock += HOUR;
    expect(jobs.list('alice')).to.deep.equal([]);
  });

  it("applies a smaller disk budget when the agent starts again, and reports the last run's running jobs lost", () => {
    const before = open();
    for (const name of ['a', 'b', 'c']) finished(before, name, 9_000);
    const cut = before.create('alice', 'cut', 'source', null);
    cut.output(['stdout', 'so far\n']);
    before.stop();
    const after = open({ diskBudgetBytes: 11_500 });
    const names = after.list('alice').map((job) => `${job.name}:${job.state}`);
    expect(names).to.deep.equal(['c:done', 'cut:lost']);
    expect(after.find('alice', 'cut').replay()).to.deep.equal([['stdout', 'so far\n']]);
  });

  it('shows a job only to its owner, and an id never seen is unknown without a reason it cannot know', () => {
    const jobs = open();
    const job = finished(jobs, 'mine');
    expect(unknown(jobs, job.id, 'bob')).to.match(/no detached job .* of yours: it never existed here/);
    expect(jobs.list('bob')).to.deep.equal([]);
    expect(unknown(jobs, 'nothing')).to.match(/never existed here/);
    expect(path.dirname(job.files.dir)).to.equal(root);
  });
});
