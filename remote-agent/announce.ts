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

/** Writes DIR/<name>.json atomically (a reader never sees half a file); returns a function that removes it. */
export function writeEndpointFile(dir: string, record: Omit<EndpointRecord, 'name'>): { file: string; remove(): void } {
  fs.mkdirSync(dir, { recursive: true });
  const port = /:(\d+)$/.exec(record.endpoint)?.[1] ?? String(record.pid);
  // One file per agent: a second agent on the same host (another node of a test cluster, say) adds its port.
  const name = fs.existsSync(path.join(dir, `${record.host}.json`)) ? `${record.host}-${port}` : record.host;
  const file = path.join(dir, `${name}.json`);
  const staging = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(staging, `${JSON.stringify({ name, ...record }, null, 2)}\n`);
  fs.renameSync(staging, file);
  const remove = (): void => fs.rmSync(file, { force: true });
  process.once('exit', remove); // also when the agent ends without its orderly stop
  return { file, remove };
}
