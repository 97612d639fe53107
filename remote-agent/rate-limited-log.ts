// A log that cannot be flooded from outside: at most `lines` lines per window of `windowMs`; the rest are counted
// and summed up in one line when the next window opens.

export function rateLimitedLog(
  log: (line: string) => void,
  what: string,
  lines = 10,
  windowMs = 60_000,
): (line: string) => void {
  let windowStart = -Infinity;
  let written = 0;
  let suppressed = 0;
  return (line) => {
    const now = Date.now();
    if (now - windowStart >= windowMs) {
      if (suppressed > 0)
        log(`${suppressed} more ${what} in the last ${Math.round(windowMs / 1000)} s were not logged`);
      windowStart = now;
      written = 0;
      suppressed = 0;
    }
    if (written < lines) {
      written++;
      log(written === lines ? `${line} (further ${what} in this minute are counted, not logged)` : line);
    } else {
      suppressed++;
    }
  };
}
