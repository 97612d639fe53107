// CurveZMQ key files, the same on both sides: `NAME.pub` holds the public key and `NAME.key` the secret key, each
// as one line of Z85 text; the secret file is readable by its owner only.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zmq from 'zeromq';

import { isZ85Key } from './z85';

export interface KeyPair {
  publicKey: string;
  secretKey: string;
}

/** Creates NAME.pub and NAME.key in `dir`; refuses to overwrite an existing pair. */
export function writeKeyPair(dir: string, name: string): { publicFile: string; secretFile: string; publicKey: string } {
  const { publicKey, secretKey } = zmq.curveKeyPair();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const publicFile = path.join(dir, `${name}.pub`);
  const secretFile = path.join(dir, `${name}.key`);
  for (const file of [publicFile, secretFile]) {
    if (fs.existsSync(file)) throw new Error(`${file} exists already: remove it first or choose another --name`);
  }
  fs.writeFileSync(secretFile, `${secretKey}\n`, { mode: 0o600, flag: 'wx' });
  fs.writeFileSync(publicFile, `${publicKey}\n`, { mode: 0o644, flag: 'wx' });
  return { publicFile, secretFile, publicKey };
}

/** Reads one Z85 key from a file, with an error that names the file when it holds anything else. */
export function readKeyFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new Error(`cannot read key file ${file}: ${(error as Error).message}`);
  }
  if (!isZ85Key(text))
    throw new Error(
      `${file} does not hold a CurveZMQ key (40 Z85 characters); create one with \`remote-agent keygen\``,
    );
  return text;
}

/** Reads NAME.pub and NAME.key from `dir`; warns through the error when the secret is readable by others. */
export function readKeyPair(dir: string, name: string): KeyPair {
  const secretFile = path.join(dir, `${name}.key`);
  const publicKey = readKeyFile(path.join(dir, `${name}.pub`));
  const secretKey = readKeyFile(secretFile);
  const mode = fs.statSync(secretFile).mode & 0o077;
  if (mode !== 0) throw new Error(`${secretFile} is readable by other users: run chmod 600 ${secretFile}`);
  return { publicKey, secretKey };
}
