// When `serve` shuts down: on SIGINT or SIGTERM (a second one means now), and with --exit-with-parent when the
// process that started it goes away.

/** Resolves with the reason to shut down: a signal, or with `exitWithParent` the parent going away. */
export function untilStopped(exitWithParent: boolean): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      // A second signal while shutting down means "now".
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve(signal);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    if (exitWithParent) watchParent(resolve);
  });
}

/**
 * A parent killed with SIGKILL cannot stop us, but its end of our stdin pipe closes (EOF), and we are re-parented.
 * Either one calls `gone`; the ppid check also covers a pipe some other process inherited and keeps open.
 */
function watchParent(gone: (why: string) => void): void {
  const parent = process.ppid;
  process.stdin.on('end', () => gone('stdin closed: the parent is gone'));
  process.stdin.on('error', () => gone('stdin failed: the parent is gone'));
  process.stdin.resume(); // read (and drop) whatever comes, so EOF is seen
  const timer = setInterval(() => {
    if (process.ppid !== parent) gone(`parent process ${parent} is gone`);
  }, 500);
  timer.unref();
}
