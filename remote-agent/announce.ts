// How an agent tells where it is: the endpoint it prints and writes is one others can connect to (a wildcard bind
// becomes the advertised host name), and with --endpoint-file a JSON file per agent in a shared directory, for a
// batch job's agents to be attached by a kernel elsewhere. Removed when the agent stops.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** What `--endpoint-file DIR` writes to DIR/<name>.json. */
export interface EndpointRecord {
  name: string;
  endpoint: string;
  host: string;
  /** The agent's CURVE public key (Z85), when it serves with keys. */
  serverKey?: string;
  workers: number;
  gpus: string[];
  pid: number;
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '*', '[::]', '::']);

/** The bound endpoint with its host replaced by `advertise`; a wildcard host by the host name when none is given. */
export function advertisedEndpoint(bound: string, advertise: string | undefined): string {
  const match = /^tcp:\/\/(\[[^\]]+\]|[^:]+):(\d+)$/.exec(bound);
  if (!match) return bound;
  const host = advertise ?? (WILDCARD_HOSTS.has(match[1]!) ? os.hostname() : match[1]!);
  return `tcp://${host}:${match[2]}`;
}

/**
 * Writes DIR/<host>.json atomically (a reader never sees half a file), or DIR/<host>-<port>.json when a live agent
 * of this host holds that name; returns a function that removes it.
 */
export function writeEndpointFile(dir: string, record: Omit<EndpointRecord, 'name'>): { file: string; remove(): void } {
  fs.mkdirSync(dir, { recursive: true });
  const port = /:(\d+)$/.exec(record.endpoint)?.[1] ?? String(record.pid);
  const staged = (name: string): string => {
    const staging = path.join(dir, `${name}.json.${process.pid}.tmp`);
    fs.writeFileSync(staging, `${JSON.stringify({ name, ...record }, null, 2)}\n`);
    return staging;
  };
  let file = path.join(dir, `${record.host}.json`);
  const staging = staged(record.host);
  if (!claim(staging, file)) {
    fs.rmSync(staging, { force: true });
    file = path.join(dir, `${record.host}-${port}.json`);
    fs.renameSync(staged(`${record.host}-${port}`), file);
  }
  const remove = (): void => fs.rmSync(file, { force: true });
  process.once('exit', remove); // also when the agent ends without its orderly stop
  return { file, remove };
}

/**
 * Moves `staging` to `file` unless a live agent holds it. Linking fails when the file exists, so two agents of one
 * host starting together never take the same name; a file whose agent is gone (killed with SIGKILL, which leaves
 * it behind, say by a previous job) is replaced, so attaching does not trip over it.
 */
function claim(staging: string, file: string): boolean {
  try {
    fs.linkSync(staging, file);
    fs.rmSync(staging, { force: true });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  if (holderAlive(file)) return false;
  fs.renameSync(staging, file);
  return true;
}

/** Whether the agent that wrote `file` still runs: the file names its pid, and it ran on this host (same name). */
function holderAlive(file: string): boolean {
  let pid: unknown;
  try {
    pid = (JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: unknown }).pid;
  } catch {
    return true; // unreadable or gone meanwhile: leave it, take the other name
  }
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}
