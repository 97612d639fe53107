// tslab is an optional peer dependency: the kernel runs inside it, but a GPU host that only runs `remote-agent`
// (and scripts using `tslab-remote/client`) needs neither it nor its 38 MB TypeScript fork. The commands that need
// it check first, so a missing tslab is one line saying what to install, not a stack from a deep require.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { TSLAB_PEER_VERSION } from '../common/package-info';

/** The tslab version this package reaches into (deep requires of tslab/dist/*): package.json's peer range. */
export const TSLAB_VERSION = TSLAB_PEER_VERSION;

export class TslabMissingError extends Error {
  override name = 'TslabMissingError';
}

/** Throws a TslabMissingError saying how to install tslab when it cannot be required; warns on another version. */
export function checkTslab(warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): void {
  let manifest: string;
  try {
    manifest = require.resolve('tslab/package.json');
  } catch {
    throw new TslabMissingError(
      `the kernel needs tslab, which is not installed beside tslab-remote. Install it in the same project:\n` +
        `  npm install tslab@${TSLAB_VERSION}\n` +
        '(a host that only runs `remote-agent serve` does not need it)',
    );
  }
  const found = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { version?: string }).version;
  if (found !== TSLAB_VERSION) {
    warn(
      `tslab-remote: built for tslab ${TSLAB_VERSION}, found tslab ${found} (${path.dirname(manifest)}); if the kernel fails, npm install tslab@${TSLAB_VERSION}`,
    );
  }
}
