// Where this package is and which version it is: one place for every entry point (both CLIs, the kernel, the
// agent's welcome). Compiled, this file is dist/common/package-info.js; from source (ts-node, tests) common/.

import * as fs from 'node:fs';
import * as path from 'node:path';

function findPackageRoot(): string {
  for (const candidate of [path.join(__dirname, '..', '..'), path.join(__dirname, '..')]) {
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
  }
  return path.join(__dirname, '..', '..');
}

/** The package's root directory (holding package.json, bin/ and, when installed for development, node_modules). */
export const PACKAGE_ROOT = findPackageRoot();

/** This package's package.json, read once: its version and the tslab version it is built for. */
function readManifest(): { version: string; tslabPeer: string } {
  try {
    const manifest: unknown = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8'));
    const { version, peerDependencies } = (manifest ?? {}) as {
      version?: unknown;
      peerDependencies?: { tslab?: unknown };
    };
    return {
      version: typeof version === 'string' ? version : '0.0.0-unknown',
      tslabPeer: typeof peerDependencies?.tslab === 'string' ? peerDependencies.tslab : 'latest',
    };
  } catch {
    return { version: '0.0.0-unknown', tslabPeer: 'latest' };
  }
}

const MANIFEST = readManifest();

export const PACKAGE_VERSION = MANIFEST.version;

/** The tslab version this package reaches into (deep requires of tslab/dist/*): package.json's peer range. */
export const TSLAB_PEER_VERSION = MANIFEST.tslabPeer;

/** The executables in bin/, by absolute path, so a child process needs nothing on PATH. */
export const BIN = {
  tslabRemote: path.join(PACKAGE_ROOT, 'bin', 'tslab-remote.js'),
  remoteAgent: path.join(PACKAGE_ROOT, 'bin', 'remote-agent.js'),
};
