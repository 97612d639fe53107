// Jobs on the agent: a call or a source job is encoded, checked against the agent's bounds, sent, and streams its
// output until exactly one result or error. An abort before sending keeps it from ever being sent; after, it is
// cancelled on the agent, and abandoned if the agent does not even acknowledge the cancel in time.

import { RemoteError } from '../../protocol/errors';
import type { AgentLimits, DisplayContent, JobCode, JobOptions } from '../../protocol/messages';
import { AbortError, afterPendingEvents } from './abort';
import type { ClientSettings, JobSettings, RunningJob } from './client-options';
import { localError, RequestChannel, unexpected } from './request-channel';

/** Refuses locally what the agent would refuse, naming its bound, instead of sending it across the network. */
export function checkBound(
  limits: AgentLimits | undefined,
  bound: keyof AgentLimits,
  size: number,
  what: string,
  flag: string,
): void {
  const limit = limits?.[bound];
  if (limit !== undefined && size > limit) {
    throw new RemoteError(
      localError(
        'TOO_LARGE',
        `${what} is ${size} bytes, over the agent's bound ${bound} = ${limit} (${flag} on the agent)`,
      ),
    );
  }
}

/** A display to its handler; without one, its plain-text form to the output (a display with none shows nothing). */
export function showDisplay(display: DisplayContent, to: Pick<JobSettings, 'onDisplay' | 'onOutput'>): void {
  if (to.onDisplay) return to.onDisplay(display);
  const text = display.data['text/plain'];
  if (typeof text === 'string' && !display.update) to.onOutput?.('stdout', text.endsWith('\n') ? text : `${text}\n`);
}

export class Jobs {
  constructor(
    private readonly channel: RequestChannel,
    private readonly settings: ClientSettings,
    private readonly limits: () => AgentLimits | undefined,
  ) {}

  start<T>(
    code: JobCode,
    encodeArgs: () => Uint8Array[],
    job: JobSettings,
    decode: (payload: Buffer[]) => T,
  ): RunningJob<T> {
    const id = this.channel.newId();
    const options: JobOptions = { timeoutMs: job.timeoutMs, worker: job.worker, cwd: job.cwd };
    const header = { type: 'call' as const, snapshot: job.snapshot ?? null, code, options };
    const { signal } = job;
    // Without a signal the call is sent before start() returns; with one, a moment later (see below).
    let state: 'encoding' | 'sent' | 'dropped' = 'encoding';
    const result = new Promise<T>((resolve, reject) => {
      const args = encodeArgs();
      for (const frame of args)
        checkBound(this.limits(), 'maxMessageBytes', frame.byteLength, 'an argument frame', '--max-message-mb');
      const send = (): void => {
        state = 'sent';
        this.channel.send(id, header, args, {
          isJob: true,
          fail: reject,
          notice: (text) => job.onOutput?.('stderr', text),
          onReply: (reply, payload) => {
            if (reply.type === 'output') job.onOutput?.(reply.stream, reply.text);
            else if (reply.type === 'display') showDisplay(reply.display, job);
            else if (reply.type === 'result') resolve(decode(payload));
            else reject(unexpected(reply));
          },
        });
      };
      if (!signal) return send();
      // Encoding is synchronous and may take long: an abort caused by something that happened meanwhile (a SIGINT)
      // only comes once the event loop turns, and must still keep the call from being sent.
      void afterPendingEvents().then(() => {
        if (state === 'dropped')
          return reject(new RemoteError(localError('CANCELLED', `call ${id} was cancelled before it was sent`)));
        if (signal.aborted) return reject(new AbortError(`call ${id} was not sent: aborted`));
        send();
        const cancel = (): void => this.cancelOrAbandon(id, reject);
        signal.addEventListener('abort', cancel, { once: true });
        void result.catch(() => undefined).finally(() => signal.removeEventListener('abort', cancel));
      });
    });
    const cancel = async (): Promise<void> => {
      if (state === 'sent') return this.cancel(id);
      state = 'dropped';
    };
    return { id, result, cancel };
  }

  /** Asks the agent to cancel a job; the job's own promise then rejects with CANCELLED (unless it already ended). */
  async cancel(jobId: string): Promise<void> {
    const reply = await this.channel.request({ type: 'cancel', job: jobId });
    if (reply.type !== 'ack') throw unexpected(reply);
  }

  /**
   * An aborted call: cancelled on the agent, whose final reply then ends it; but if the agent does not even
   * acknowledge the cancel in time, the call stops waiting now (and is cancelled again if the connection comes back).
   */
  private cancelOrAbandon(id: string, reject: (error: Error) => void): void {
    const timer = setTimeout(() => {
      if (!this.channel.pending.delete(id)) return;
      this.channel.abandoned.add(id);
      const seconds = this.settings.cancelAckMs / 1000;
      reject(
        new RemoteError(
          localError(
            'CANCELLED',
            `the agent at ${this.channel.endpoint} did not acknowledge the cancel of call ${id} within ${seconds} s (it may be stuck): ` +
              'stopped waiting; the call is cancelled there if it answers again',
          ),
        ),
      );
    }, this.settings.cancelAckMs);
    timer.unref();
    this.cancel(id).then(
      () => clearTimeout(timer),
      () => undefined,
    );
  }
}
