// serve's CurveZMQ keys: the agent's pair from --keys DIR with the client keys --allow and --allow-key admit, or,
// with --allow-key alone, a pair made for this run only; folders other users can write are refused.

import * as fs from 'node:fs';
import * as path from 'node:path';

import * as zmq from 'zeromq';

import { readKeyFile, readKeyPair } from '../common/key-files';
import { isZ85Key } from '../common/z85';
import type { AgentCurve } from './server';

/** The agent's key pair from DIR/agent.{key,pub} and the allowed client keys from files or directories of .pub. */
export function loadCurve(dir: string, allow: string[], allowKeys: string[]): AgentCurve {
  refuseWritableByOthers(path.resolve(dir), '--keys');
  const pair = readKeyPair(path.resolve(dir), 'agent');
  const files = allow.flatMap((entry) => {
    if (!fs.statSync(entry, { throwIfNoEntry: false })?.isDirectory()) return [entry];
    refuseWritableByOthers(path.resolve(entry), '--allow');
    return fs
      .readdirSync(entry)
      .filter((name) => name.endsWith('.pub'))
      .map((name) => path.join(entry, name));
  });
  if (files.length === 0 && allowKeys.length === 0) {
    throw new Error(
      '--keys needs at least one --allow FILE: the public key of each kernel allowed to connect (remote-agent keygen --name kernel creates one)',
    );
  }
  return { ...pair, allowedClientKeys: [...files.map(readKeyFile), ...allowKeys.map(checkedKey)] };
}

/** --allow-key without --keys: a key pair made for this run only, never written anywhere. */
export function sessionCurve(allowKeys: string[]): AgentCurve | undefined {
  if (allowKeys.length === 0) return undefined;
  const { publicKey, secretKey } = zmq.curveKeyPair();
  return { publicKey, secretKey, allowedClientKeys: allowKeys.map(checkedKey) };
}

function checkedKey(key: string): string {
  if (!isZ85Key(key))
    throw new Error(`--allow-key ${JSON.stringify(key)} is not a CurveZMQ public key (40 Z85 characters)`);
  return key;
}

/**
 * Whoever can write a key or allow folder can swap the agent's key or admit their own: refuse folders other users
 * can write, as key files readable by others are refused.
 */
function refuseWritableByOthers(dir: string, flag: string): void {
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (!stat?.isDirectory() || (stat.mode & 0o022) === 0) return;
  throw new Error(
    `${flag} ${dir} can be written by other users (mode ${(stat.mode & 0o777).toString(8)}): run chmod go-w ${dir}`,
  );
}
