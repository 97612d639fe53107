// The agent's side of detached jobs (protocol/job-messages.ts): a detached call is queued on the pool to outlive its
// client and answered at once; `attach` replays a job's output then streams the rest to the client until its end,
// whose final reply is kept for redelivery like a call's; `jobs` lists, `job.cancel` cancels. Only a job's owner
// (the key that started it) sees it.

import { AgentError, toWireError, WireError } from '../../protocol/errors';
import type { Frame } from '../../protocol/frames';
import type { AttachRequest, JobCancelRequest, JobsRequest, KeyProof } from '../../protocol/job-messages';
import type { CallRequest, Reply, Unversioned } from '../../protocol/messages';
import { ClientSession, droppedOutputNotice } from '../client-session';
import type { WorkerPool } from '../pool/worker-pool';
import type { DetachedJob, Watcher } from './detached-job';
import type { DetachedJobs } from './detached-jobs';
import type { OutputLine } from './job-files';

export interface JobRequestsDeps {
  detached: DetachedJobs;
  pool: WorkerPool;
  /**
   * --max-jobs-per-client: the running or queued detached jobs one owner may have, and the calls and attaches one
   * client may have open.
   */
  maxJobsPerOwner: number;
  /** The owner a request proves (client-owner.ts): undefined when its key is missing or unproven. */
  ownerOf(client: string, key: KeyProof | undefined): string | undefined;
  encode(reply: Unversioned<Reply>, payload?: readonly Frame[]): Frame[];
}

/** Replayed output travels in messages of at most this much text. */
const REPLAY_CHUNK_CHARS = 64 * 1024;

export class JobRequests {
  /** Attaches in progress, by `client/request id`. */
  private readonly watches = new Map<
    string,
    { job: DetachedJob; watcher: Watcher; session: ClientSession; re: string }
  >();

  constructor(private readonly deps: JobRequestsDeps) {}

  /** A call with `options.detach`, answered by `detached` or `error`; `release` unpins its snapshot when it ends. */
  detach(
    client: string,
    session: ClientSession,
    request: CallRequest,
    args: Uint8Array[],
    release: () => void,
  ): Unversioned<Reply> {
    try {
      return this.start(client, session, request, args, release);
    } catch (error) {
      release(); // idempotent: whatever refused the job, its snapshot is not pinned for it
      return { type: 'error', re: request.id, error: toWireError(error) };
    }
  }

  private start(
    client: string,
    session: ClientSession,
    request: CallRequest,
    args: Uint8Array[],
    release: () => void,
  ): Unversioned<Reply> {
    const { detached, maxJobsPerOwner } = this.deps;
    const owner = this.owner(session, request.options.detach?.key);
    const active = detached.running().filter((job) => job.meta.owner === owner).length;
    if (active >= maxJobsPerOwner) {
      throw new AgentError(
        'TOO_LARGE',
        `you have ${active} detached jobs queued or running here (--max-jobs-per-client): wait for some to end or cancel them`,
      );
    }
    const job = detached.create(owner, request.options.detach?.name, request.code.kind, request.snapshot);
    const refused = this.submit(job, client, request, args, release);
    if (refused) {
      detached.discard(job);
      throw new AgentError(refused.code, refused.message);
    }
    return { type: 'detached', re: request.id, job: job.info() };
  }

  /**
   * Queues the job on the pool; its output and end go to its record. The pool refuses some jobs at once (a worker
   * index it lacks, a stopping agent): that refusal is returned, to answer as an error rather than a failed job.
   */
  private submit(
    job: DetachedJob,
    client: string,
    request: CallRequest,
    args: Uint8Array[],
    release: () => void,
  ): WireError | undefined {
    const { detached, pool } = this.deps;
    const end = (...outcome: Parameters<DetachedJob['end']>): void => {
      job.end(...outcome);
      release();
      detached.ended();
    };
    const { detach: _detach, ...options } = request.options;
    let submitting = true;
    let refused: WireError | undefined;
    pool.submit(
      {
        id: poolId(job),
        label: `${job.meta.name} (detached job ${job.id})`,
        client,
        outlivesClient: true,
        snapshot: request.snapshot,
        code: request.code,
        options,
        args,
      },
      {
        started: (worker) => job.started(worker),
        output: (stream, text) => job.output([stream, text]),
        display: (content) => job.output(['display', content]),
        result: (frames, info) => {
          const size = frames.reduce((sum, frame) => sum + frame.byteLength, 0);
          if (size <= detached.maxResultBytes) return end('done', { frames, worker: info.worker });
          const message = `the result of detached job ${job.id} is ${size} bytes, over the agent's bound of ${detached.maxResultBytes} (--job-result-mb): return less, or write it to a file`;
          end('failed', { error: { code: 'TOO_LARGE', name: 'AgentError', message } });
        },
        error: (error) => {
          if (submitting) refused = error;
          else end(stateAfter(error), { error });
        },
      },
    );
    submitting = false;
    return refused;
  }

  list(session: ClientSession, request: JobsRequest): Unversioned<Reply> {
    return { type: 'jobs', re: request.id, jobs: this.deps.detached.list(this.owner(session, request.key)) };
  }

  cancel(session: ClientSession, request: JobCancelRequest): Unversioned<Reply> {
    const job = this.deps.detached.find(this.owner(session, request.key), request.job);
    if (!job.ended) this.deps.pool.cancel(poolId(job), 'CANCELLED');
    return { type: 'jobs', re: request.id, jobs: [job.info()] };
  }

  /** Sends the job's description and output so far, then streams the rest and ends with its result or error. */
  attach(client: string, session: ClientSession, request: AttachRequest): void {
    const job = this.deps.detached.find(this.owner(session, request.key), request.job);
    const re = request.id;
    if (session.knows(re))
      throw new AgentError('BAD_MESSAGE', `request id ${re} was already used by this client; use a new id`);
    // An attach holds output and, at its end, the job's result for this client, like a call: bounded the same way.
    if (session.jobs.size >= this.deps.maxJobsPerOwner) {
      throw new AgentError(
        'TOO_LARGE',
        `this client has ${session.jobs.size} calls and attaches open, the agent's bound (--max-jobs-per-client): ` +
          'wait for some to finish or cancel them',
      );
    }
    session.jobs.add(re);
    const send = (reply: Unversioned<Reply>): void => void session.output(re, this.deps.encode(reply));
    const replay = job.replay(); // counts what was dropped
    send({ type: 'job', re, job: job.info() });
    if (job.meta.droppedBytes > 0) {
      send({
        type: 'output',
        re,
        stream: 'stderr',
        text: `[tslab-remote: the oldest ${job.meta.droppedBytes} bytes of this job's output were dropped (--job-output-mb)]\n`,
      });
    }
    for (const line of chunks(replay)) send(outputReply(re, line));
    if (job.ended) return this.finish(session, re, job);
    const watcher: Watcher = {
      output: (line) => send(outputReply(re, line)),
      end: () => {
        this.watches.delete(`${client}/${re}`);
        this.finish(session, re, job);
      },
    };
    job.watchers.add(watcher);
    this.watches.set(`${client}/${re}`, { job, watcher, session, re });
  }

  /** A `cancel` of an attach stops watching (the job goes on); false when `re` is not one of the client's attaches. */
  unwatch(client: string, re: string): boolean {
    const watch = this.watches.get(`${client}/${re}`);
    if (!watch) return false;
    this.watches.delete(`${client}/${re}`);
    watch.job.watchers.delete(watch.watcher);
    const { id, name } = watch.job.meta;
    const message = `stopped watching detached job ${id} (${name}); the job goes on: attach to it again to see the rest`;
    this.endWatch(watch.session, re, { code: 'CANCELLED', name: 'AgentError', message });
    return true;
  }

  /** The client went away: its attaches end (the jobs go on). How many there were. */
  unwatchClient(client: string): number {
    const mine = [...this.watches.entries()].filter(([key]) => key.startsWith(`${client}/`));
    for (const [, watch] of mine) this.unwatch(client, watch.re);
    return mine.length;
  }

  private owner(session: ClientSession, key: KeyProof | undefined): string {
    return provenOwner(this.deps.ownerOf(session.key, key));
  }

  private finish(session: ClientSession, re: string, job: DetachedJob): void {
    const { meta } = job;
    if (meta.state !== 'done')
      return this.endWatch(
        session,
        re,
        meta.error ?? {
          code: 'INTERNAL',
          name: 'AgentError',
          message: `job ${meta.id} ended ${meta.state} without an error`,
        },
      );
    let frames: Buffer[];
    try {
      frames = job.files.readResult();
    } catch (error) {
      return this.endWatch(session, re, {
        code: 'INTERNAL',
        name: 'AgentError',
        message: `cannot read the result of job ${meta.id}: ${(error as Error).message}`,
      });
    }
    job.fetched();
    const elapsedMs = Math.max(0, (meta.endedAt ?? 0) - (meta.startedAt ?? meta.createdAt));
    session.finish(
      re,
      this.deps.encode({ type: 'result', re, worker: meta.worker ?? 0, elapsedMs }, frames),
      this.notice(re),
    );
  }

  private endWatch(session: ClientSession, re: string, error: WireError): void {
    session.finish(re, this.deps.encode({ type: 'error', re, error }), this.notice(re));
  }

  /** Output of an attach that the client was too slow to take is counted; the count comes before the end. */
  private notice(re: string): (count: number) => Frame[] {
    return (count) => this.deps.encode({ type: 'output', re, stream: 'stderr', text: droppedOutputNotice(count) });
  }
}

function poolId(job: DetachedJob): string {
  return `detached/${job.id}`;
}

/** A job's state after the pool reported its error: a dead worker or a stopping agent lost it. */
function stateAfter(error: WireError): 'failed' | 'cancelled' | 'lost' {
  if (error.code === 'CANCELLED') return 'cancelled';
  if (error.code === 'WORKER_CRASHED' || error.code === 'SHUTTING_DOWN') return 'lost';
  return 'failed';
}

function provenOwner(owner: string | undefined): string {
  if (owner !== undefined) return owner;
  throw new AgentError(
    'AUTH_FAILED',
    'detached jobs belong to the key that started them, and this request did not prove its key: ' +
      'connect with a tslab-remote client of the same version as the agent, with your key pair',
  );
}

function outputReply(re: string, line: OutputLine): Unversioned<Reply> {
  return line[0] === 'display'
    ? { type: 'display', re, display: line[1] }
    : { type: 'output', re, stream: line[0], text: line[1] };
}

/** Consecutive writes of one stream, merged into messages of at most REPLAY_CHUNK_CHARS; displays as they are. */
function chunks(lines: readonly OutputLine[]): OutputLine[] {
  const out: OutputLine[] = [];
  for (const line of lines) {
    const last = out[out.length - 1];
    if (last && last[0] !== 'display' && line[0] === last[0] && last[1].length + line[1].length <= REPLAY_CHUNK_CHARS)
      last[1] += line[1];
    else out.push(line[0] === 'display' ? line : [line[0], line[1]]);
  }
  return out;
}
