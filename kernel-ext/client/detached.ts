// Detached jobs from the client's side (protocol/job-messages.ts): a call that runs on the agent on its own, outliving
// this client; the caller's jobs listed; a job's output replayed and followed to its result from any later client
// holding the same key; a job cancelled. The agent keeps each job's output and result (README, "Detached jobs").

import type { DetachedJobInfo, DetachOptions, KeyProof } from '../../protocol/job-messages';
import type { AgentLimits, DisplayContent, JobCode, JobOptions } from '../../protocol/messages';
import type { JobSettings } from './client-options';
import { checkBound, showDisplay } from './jobs';
import { RequestChannel, unexpected } from './request-channel';

export interface AttachOptions {
  /** The job as it is when the attach begins, before its output. */
  onJob?: (job: DetachedJobInfo) => void;
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  /** Rich output. Without it, a display's text/plain goes to onOutput. */
  onDisplay?: (display: DisplayContent) => void;
  /** Stops watching (the job goes on): the result rejects with CANCELLED, saying so. */
  signal?: AbortSignal;
}

export type DecodeResult<T> = (kind: DetachedJobInfo['kind'], payload: Buffer[]) => T;

export class DetachedCalls {
  constructor(
    private readonly channel: RequestChannel,
    private readonly limits: () => AgentLimits | undefined,
    /** Our proven key, sent with each request (the agent checks it on each). */
    private readonly keyProof: () => KeyProof | undefined,
  ) {}

  /** `{key}` on an agent with keys, else nothing. */
  private key(): { key?: KeyProof } {
    const key = this.keyProof();
    return key ? { key } : {};
  }

  /**
   * Starts a job that outlives this client. Sent once (a lost reply is asked for again after a reconnect, never the
   * job sent twice): resolves with the job as the agent took it.
   */
  start(code: JobCode, args: Uint8Array[], job: JobSettings, detach: DetachOptions): Promise<DetachedJobInfo> {
    for (const frame of args)
      checkBound(this.limits(), 'maxMessageBytes', frame.byteLength, 'an argument frame', '--max-message-mb');
    const options: JobOptions = {
      timeoutMs: job.timeoutMs,
      worker: job.worker,
      cwd: job.cwd,
      detach: { ...detach, ...this.key() },
    };
    return new Promise((resolve, reject) => {
      this.channel.send(this.channel.newId(), { type: 'call', snapshot: job.snapshot ?? null, code, options }, args, {
        isJob: true,
        fail: reject,
        onReply: (reply) => (reply.type === 'detached' ? resolve(reply.job) : reject(unexpected(reply))),
      });
    });
  }

  async list(): Promise<DetachedJobInfo[]> {
    const reply = await this.channel.request({ type: 'jobs', ...this.key() });
    if (reply.type !== 'jobs') throw unexpected(reply);
    return reply.jobs;
  }

  /** Cancels a job by id or name; resolves with the job as it was when the cancel was sent. */
  async cancel(job: string): Promise<DetachedJobInfo> {
    const reply = await this.channel.request({ type: 'job.cancel', job, ...this.key() });
    if (reply.type !== 'jobs' || reply.jobs.length !== 1) throw unexpected(reply);
    return reply.jobs[0]!;
  }

  /** Replays a job's output so far, follows the rest, and resolves with its result (rejects with its error). */
  attach<T>(job: string, decode: DecodeResult<T>, options: AttachOptions = {}): Promise<T> {
    const id = this.channel.newId();
    const { signal } = options;
    let kind: DetachedJobInfo['kind'] | undefined;
    const result = new Promise<T>((resolve, reject) => {
      this.channel.send(id, { type: 'attach', job, ...this.key() }, [], {
        isJob: true,
        fail: reject,
        notice: (text) => options.onOutput?.('stderr', text),
        onReply: (reply, payload) => {
          if (reply.type === 'job') {
            kind = reply.job.kind;
            options.onJob?.(reply.job);
          } else if (reply.type === 'output') options.onOutput?.(reply.stream, reply.text);
          else if (reply.type === 'display') showDisplay(reply.display, options);
          else if (reply.type === 'result' && kind) resolve(decode(kind, payload));
          else reject(unexpected(reply));
        },
      });
    });
    if (signal) {
      // The agent ends the watch with CANCELLED ("stopped watching ...; the job goes on").
      const stop = (): void => void this.channel.request({ type: 'cancel', job: id }).catch(() => undefined);
      if (signal.aborted) stop();
      else signal.addEventListener('abort', stop, { once: true });
      void result.catch(() => undefined).finally(() => signal.removeEventListener('abort', stop));
    }
    return result;
  }
}
