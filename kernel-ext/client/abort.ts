// Giving up a wait when asked to: the AbortSignal that connect(), startLocalAgent(), uploads and calls take, and
// the kernel's interrupt of a cell.

/** What an aborted operation rejects with; named AbortError, as Node's own APIs name theirs. */
export class AbortError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AbortError';
  }
}

/** Settles as `work` does, or rejects with `aborted()` as soon as `signal` aborts (at once if it has). */
export function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined, aborted: () => Error): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(aborted());
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Resolves once the event loop has polled for I/O, so that what arrived during synchronous work just done (a
 * SIGINT, a message) has had its handler run. Two setImmediate turns: one queued from an I/O callback runs before
 * the next poll.
 */
export async function afterPendingEvents(): Promise<void> {
  for (let turn = 0; turn < 2; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
}
