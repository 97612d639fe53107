// Agents a user's own batch job started with `remote-agent serve --endpoint-file DIR` (on a filesystem the kernel
// shares): one JSON file per agent. Files of agents that ended are removed by them; a stale one (a killed agent)
// shows up as an agent that cannot be reached, named by its file.

import * as fs from 'node:fs';
import * as path from 'node:path';

import type { AgentEndpoint } from '../types';

export function readEndpointDir(dir: string): AgentEndpoint[] {
  let names: string[];
  try {
    names = fs
      .readdirSync(dir)
      .filter((name) => name.endsWith('.json'))
      .sort();
  } catch (error) {
    throw new Error(`cannot read the endpoint directory ${dir}: ${(error as Error).message}`);
  }
  if (names.length === 0) {
    throw new Error(
      `no agent has written to ${dir} yet: start agents with \`remote-agent serve --endpoint-file ${dir}\` (in your sbatch script), then attach again`,
    );
  }
  return names.map((name) => {
    const file = path.join(dir, name);
    let record: { name?: unknown; endpoint?: unknown; host?: unknown; serverKey?: unknown };
    try {
      record = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof record;
    } catch (error) {
      throw new Error(`${file} is not an agent's endpoint file: ${(error as Error).message}`);
    }
    if (typeof record.endpoint !== 'string') throw new Error(`${file} names no endpoint`);
    return {
      name: typeof record.name === 'string' ? record.name : path.basename(name, '.json'),
      endpoint: record.endpoint,
      ...(typeof record.host === 'string' ? { host: record.host } : {}),
      ...(typeof record.serverKey === 'string' ? { serverKey: record.serverKey } : {}),
    };
  });
}
