// Who a client is, for detached jobs (detached/): on an agent without keys, the agent's own user (`local`: loopback
// only, so every client is a local process); on an agent with keys, the client's public key, proven with each request
// about detached jobs to be held by the client on that routing id (common/key-proof.ts). Proven per request, not per
// connection: the agent cannot see a connection end, so a routing id another client takes over later inherits
// nothing. A request without a proven key cannot use detached jobs.

import { checkKeyProof } from '../common/key-proof';
import type { KeyProof } from '../protocol/job-messages';
import type { AgentCurve } from './agent-options';

export const LOCAL_OWNER = 'local';

export function clientOwner(
  curve: AgentCurve | undefined,
  identity: Buffer,
  key: KeyProof | undefined,
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
