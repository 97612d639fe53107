// One agent per workdir: a second agent would empty tmp/ under the first one's uploads and remove its worker socket.
// The lock is <workdir>/agent.lock, created exclusively, holding the owner's pid and host. A lock whose process is
// gone (the agent was SIGKILLed) is taken over; a live one refuses the start, naming the process.
//
// Taking over is a compare-and-remove: two agents starting at once may both find the same stale lock, and the second
// must not remove the lock the first has just written. So the remover holds a marker directory (mkdir is atomic)
// while it checks that the file still holds the stale text and removes it; the lock itself is only ever created
// exclusively and whole (link), so exactly one of them ends up holding it.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { AgentError } from '../protocol/errors';

interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

/** Takes the workdir's lock; returns its release (idempotent). Throws AgentError when another agent holds it. */
export function lockWorkdir(workdir: string): () => void {
  fs.mkdirSync(workdir, { recursive: true });
  const file = path.join(workdir, 'agent.lock');
  const me: LockOwner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      createWhole(file, JSON.stringify(me));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const text = readText(file);
      const owner = text === undefined ? undefined : parseOwner(text);
      if ((owner && isHeld(owner)) || attempt >= MAX_ATTEMPTS) throw lockedError(workdir, file, owner);
      // Left by an agent that died without releasing it: take it over, unless another start is doing so.
      if (text !== undefined && !removeIfUnchanged(file, text)) sleep(RETRY_MS);
    }
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (readOwner(file)?.pid === process.pid) fs.rmSync(file, { force: true });
  };
}

/**
 * Creates `file` with `text` if it does not exist (EEXIST otherwise), whole at once: written beside it, then linked
 * into place, so no one ever reads it half-written (and takes an empty lock for a stale one).
 */
function createWhole(file: string, text: string): void {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(temp, text, { mode: 0o600 });
  try {
    fs.linkSync(temp, file);
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

const MAX_ATTEMPTS = 100;
const RETRY_MS = 20;
/** A takeover marker older than this was left by a start that died while taking over (it takes microseconds). */
const MARKER_STALE_MS = 5_000;

/** Removes the stale lock if it still holds `text`, under the takeover marker; false when another start holds it. */
function removeIfUnchanged(file: string, text: string): boolean {
  const marker = `${file}.takeover`;
  try {
    fs.mkdirSync(marker);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const age = Date.now() - (statMtime(marker) ?? Date.now());
    if (age > MARKER_STALE_MS) fs.rmSync(marker, { recursive: true, force: true });
    return false;
  }
  try {
    if (readText(file) === text) fs.rmSync(file, { force: true });
  } finally {
    fs.rmSync(marker, { recursive: true, force: true });
  }
  return true;
}

function readOwner(file: string): LockOwner | undefined {
  const text = readText(file);
  return text === undefined ? undefined : parseOwner(text);
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined; // removed meanwhile
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (typeof value.pid !== 'number' || typeof value.host !== 'string') return undefined;
    return { pid: value.pid, host: value.host, since: String(value.since) };
  } catch {
    return undefined; // unreadable or half-written: treated as stale
  }
}

function statMtime(file: string): number | undefined {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** The lock is taken before the agent serves anything, so a short synchronous wait blocks nothing. */
function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A lock from another host (a shared file system) cannot be checked, so it counts as held. */
function isHeld(owner: LockOwner): boolean {
  if (owner.host !== os.hostname()) return true;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

function lockedError(workdir: string, file: string, owner: LockOwner | undefined): AgentError {
  const who = owner ? `process ${owner.pid} on ${owner.host} (since ${owner.since})` : `another process (see ${file})`;
  return new AgentError(
    'INTERNAL',
    `workdir ${workdir} is in use by another agent: ${who}. Stop that agent, or give this one another --workdir; ` +
      `if no agent runs there any more, remove ${file}`,
  );
}
