// A worker's console output, captured: process.stdout/stderr writes go to the running job's output messages,
// consecutive writes to one stream within a tick coalesced into one message.

import { StringDecoder } from 'node:string_decoder';

export /** Writes the job's console output into `send`, coalescing consecutive writes to one stream within a tick. */
class OutputCapture {
  private pending: { job: string | null; stream: 'stdout' | 'stderr'; text: string } | null = null;
  private scheduled = false;
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };

  constructor(
    private readonly currentJob: () => string | null,
    private readonly send: (job: string | null, stream: 'stdout' | 'stderr', text: string) => void,
  ) {}

  install(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      // eslint-disable-next-line @typescript-eslint/no-this-alias -- the patched write needs both its stream `this` and the capture
      const capture = this;
      const replacement = function (chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
        const done = typeof encoding === 'function' ? encoding : callback;
        const text =
          typeof chunk === 'string'
            ? chunk
            : chunk instanceof Uint8Array
              ? capture.decoders[stream].write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
              : String(chunk);
        capture.write(stream, text);
        if (typeof done === 'function') process.nextTick(done);
        return true;
      };
      process[stream].write = replacement;
    }
  }

  write(stream: 'stdout' | 'stderr', text: string): void {
    if (text.length === 0) return;
    const job = this.currentJob();
    if (this.pending && (this.pending.stream !== stream || this.pending.job !== job)) this.flush();
    if (this.pending) this.pending.text += text;
    else this.pending = { job, stream, text };
    if (this.pending.text.length >= 64 * 1024) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  flush(): void {
    const pending = this.pending;
    this.pending = null;
    if (pending) this.send(pending.job, pending.stream, pending.text);
  }
}
