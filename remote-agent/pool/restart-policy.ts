// When a crashed worker comes back: at once after a single crash; with a doubling backoff (250 ms up to 10 s) while
// it keeps crashing soon after each start. A kill the pool made itself (a job that ignored a cancel) is no crash.

/** A worker that crashes again within this time of becoming ready counts as crash-looping. */
export const CRASH_LOOP_WINDOW_MS = 10_000;
const MAX_BACKOFF_MS = 10_000;

export interface RestartState {
  /** When the process last reported ready, or null if it never did. */
  readyAt: number | null;
  /** Crashes in a row, each soon after the previous start. */
  crashStreak: number;
}

/** Counts the crash (unless deliberate) and returns the delay before the next spawn. */
export function nextRestartDelay(state: RestartState, deliberate: boolean, now: number): number {
  if (!deliberate) {
    const quick = state.readyAt === null || now - state.readyAt < CRASH_LOOP_WINDOW_MS;
    state.crashStreak = quick ? state.crashStreak + 1 : 1;
  }
  return state.crashStreak <= 1 ? 0 : Math.min(250 * 2 ** (state.crashStreak - 2), MAX_BACKOFF_MS);
}

/** A worker that never became ready three times in a row cannot start: what waits for it should fail. */
export function cannotStart(state: RestartState): boolean {
  return state.readyAt === null && state.crashStreak >= 3;
}
