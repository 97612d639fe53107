// The package version, read once from package.json (two levels above dist/remote-agent/ and remote-agent/).

import * as fs from 'node:fs';
import * as path from 'node:path';

function readVersion(): string {
  for (const candidate of [path.join(__dirname, '..', '..', 'package.json'), path.join(__dirname, '..', 'package.json')]) {
    if (fs.existsSync(candidate)) return (JSON.parse(fs.readFileSync(candidate, 'utf8')) as { version: string }).version;
  }
  return '0.0.0-unknown';
}

export const AGENT_VERSION = readVersion();

/** The package's root directory (holding package.json and, when installed for development, node_modules). */
export const PACKAGE_ROOT = fs.existsSync(path.join(__dirname, '..', '..', 'package.json'))
  ? path.join(__dirname, '..', '..')
  : path.join(__dirname, '..');
