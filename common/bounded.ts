// Bounded concurrency: enough calls in flight to keep the disk and libuv's thread pool busy, few enough that a large
// tree never holds thousands of file buffers (or descriptors) at once. One helper for the snapshot (kernel side)
// and the store (agent side).

/**
 * Calls `fn` on every item with at most `limit` calls pending. After the first failure no new call starts (the
 * result is a failure either way); it rejects with that first error once the calls in flight have settled.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  // One lane pulls items until none are left; `limit` lanes run side by side.
  const lane = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const index = next++;
      try {
        await fn(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.error;
}
