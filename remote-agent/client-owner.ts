// Who a client is, for detached jobs (detached/): on an agent without keys, the agent's own user (`local`: loopback
// only, so every client is a local process); on an agent with keys, the client's public key, once it has proven in
// `hello` that it holds the secret (common/key-proof.ts). A client without a proven key cannot use detached jobs.

import { checkKeyProof } from '../common/key-proof';
import type { HelloRequest } from '../protocol/messages';
import type { AgentCurve } from './agent-options';

export const LOCAL_OWNER = 'local';

export function clientOwner(
  curve: AgentCurve | undefined,
  identity: Buffer,
  key: HelloRequest['key'],
  log: (line: string) => void,
): string | undefined {
  if (!curve) return LOCAL_OWNER;
  if (key === undefined) return undefined;
  if (
    curve.allowedClientKeys.includes(key.publicKey) &&
    checkKeyProof(curve.secretKey, key.publicKey, identity, key.proof)
  )
    return key.publicKey;
  log(
    `client ${identity.toString('hex')} named key ${key.publicKey} without proving it holds it: it cannot use detached jobs`,
  );
  return undefined;
}
