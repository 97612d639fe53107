// One agent per workdir: a second agent would empty tmp/ under the first one's uploads and remove its worker socket.
// The lock is <workdir>/agent.lock, created exclusively, holding the owner's pid and host. A lock whose process is
// gone (the agent was SIGKILLed) is taken over; a live one refuses the start, naming the process.

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
      fs.writeFileSync(file, JSON.stringify(me), { flag: 'wx', mode: 0o600 });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = readOwner(file);
      if (attempt > 0 || (owner && isHeld(owner))) throw lockedError(workdir, file, owner);
      // Left by an agent that died without releasing it: take it over (once, so two starts cannot loop).
      fs.rmSync(file, { force: true });
    }
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (readOwner(file)?.pid === process.pid) fs.rmSync(file, { force: true });
  };
}

function readOwner(file: string): LockOwner | undefined {
  try {
    const value = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (typeof value.pid !== 'number' || typeof value.host !== 'string') return undefined;
    return { pid: value.pid, host: value.host, since: String(value.since) };
  } catch {
    return undefined; // unreadable or half-written: treated as stale
  }
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
