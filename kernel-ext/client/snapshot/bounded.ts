// Bounded concurrency: enough reads in flight to keep the disk and the thread pool busy, few enough that a large
// tree never holds thousands of file buffers (or descriptors) at once.

/** Calls `task` on every item with at most `limit` calls pending; rejects with the first error after all settle. */
export async function forEachLimit<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  // One worker pulls items until none are left; `limit` workers run side by side.
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await task(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}
