// A local agent serving with CURVE keys, and the client keys to reach it: for the "encryption on" rows.

import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import type { ClientCurve } from '../kernel-ext/client/client-options';
import { LocalAgent, startLocalAgent } from '../kernel-ext/client/local-agent';
import { readKeyFile, readKeyPair, writeKeyPair } from '../common/key-files';
// Its temp directories are removed when the process exits, through process.exit() and after a failure too.
import '../test/support/temp-cleanup';

export async function startCurveAgent(args: string[] = []): Promise<{ agent: LocalAgent; curve: ClientCurve }> {
  const keys = (await tmp.dir({ unsafeCleanup: true, prefix: 'bench-keys-' })).path;
  writeKeyPair(keys, 'agent');
  writeKeyPair(keys, 'kernel');
  const agent = await startLocalAgent({ args: [...args, '--keys', keys, '--allow', path.join(keys, 'kernel.pub')] });
  return { agent, curve: { serverKey: readKeyFile(path.join(keys, 'agent.pub')), ...readKeyPair(keys, 'kernel') } };
}
