// When a running cell must be stopped (its timeout, the caller's Ctrl-C) and how long each step of ending it may take.

import { setTimeout as sleep } from 'node:timers/promises';

/** What interrupted a cell: it ran past its timeout, or the caller asked to stop (Ctrl-C). */
export type StopReason = 'timeout' | 'signal';

/** How long an interrupted cell may take to end before the kernel is shut down under it. */
export const INTERRUPT_GRACE_MS = 15_000;
/** How long the execute_reply may lag behind the cell's idle status before it counts as lost. */
export const REPLY_AFTER_IDLE_MS = 30_000;

/** Why a cell must be interrupted: 'timeout' after timeoutMs, 'signal' once `signal` aborts; undefined once `done` settles first. */
export function stopReason(
  done: Promise<unknown>,
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
): Promise<StopReason | undefined> {
  if (signal?.aborted) return Promise.resolve('signal');
  return new Promise((resolve) => {
    const timer = timeoutMs ? setTimeout(() => finish('timeout'), timeoutMs) : undefined;
    const onAbort = (): void => finish('signal');
    const finish = (why: StopReason | undefined): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(why);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    done.then(
      () => finish(undefined),
      () => finish(undefined), // the caller sees the failure where it awaits `done`
    );
  });
}

/** `promise`'s value, or undefined when it takes longer than `ms` (the timer called off either way: no late wake-up). */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  const ended = new AbortController();
  try {
    return await Promise.race([promise, sleep(ms, undefined, { signal: ended.signal })]);
  } finally {
    ended.abort();
  }
}
