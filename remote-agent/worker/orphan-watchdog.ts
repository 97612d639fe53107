// A worker whose agent was killed must end even while a job loops synchronously: a thread of its own watches the
// parent pid.

import * as fs from 'node:fs';
import { Worker as Thread } from 'node:worker_threads';

/** Checks the parent pid from a thread of its own, since a job in an endless synchronous loop starves our own. */
const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
setInterval(() => {
  if (process.ppid !== workerData.ppid) process.kill(workerData.pid, 'SIGKILL');
}, 500);
`;

/** 'disconnect' needs a free event loop: a job stuck in for(;;){} would otherwise outlive a SIGKILLed agent. */
export function startOrphanWatchdog(): void {
  try {
    const thread = new Thread(WATCHDOG_SOURCE, { eval: true, workerData: { ppid: process.ppid, pid: process.pid } });
    thread.unref(); // it never keeps the worker alive by itself
    thread.on('error', watchdogFailed);
  } catch (err) {
    watchdogFailed(err);
  }
}

// Not fatal: the worker still ends on 'disconnect' whenever its event loop is free. The pool logs this stderr line.
function watchdogFailed(err: unknown): void {
  fs.writeSync(
    2,
    `worker: the orphan watchdog thread failed (${String(err)}): this worker may outlive its agent if the agent is killed while a job loops\n`,
  );
}
