// Who a client is, on an agent with keys: its CURVE public key. zeromq.js does not expose the key a connection
// authenticated with (libzmq's "User-Id" message property), so a client that names its key in `hello` proves it
// holds the matching secret key: an HMAC over its routing id, keyed with the X25519 secret it shares with the agent.
// Only the holders of the client's or the agent's secret key can compute it, and CURVE's encryption keeps it from
// being seen, so no other client can replay it.

import { createHmac, createPrivateKey, createPublicKey, diffieHellman, KeyObject, timingSafeEqual } from 'node:crypto';

import { z85Decode } from './z85';

// DER prefixes of an X25519 PKCS#8 private key and SPKI public key, before the 32 raw key bytes.
const PRIVATE_DER = Buffer.from('302e020100300506032b656e04220420', 'hex');
const PUBLIC_DER = Buffer.from('302a300506032b656e032100', 'hex');

function privateKey(z85: string): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PRIVATE_DER, z85Decode(z85)]), format: 'der', type: 'pkcs8' });
}
function publicKey(z85: string): KeyObject {
  return createPublicKey({ key: Buffer.concat([PUBLIC_DER, z85Decode(z85)]), format: 'der', type: 'spki' });
}

function proof(secret: Buffer, routingId: Buffer): Buffer {
  return createHmac('sha256', secret).update('tslab-remote client key proof v1\n').update(routingId).digest();
}

/** The client side: the proof for `hello`, from the client's secret key and the agent's public key. */
export function keyProof(clientSecretKey: string, agentPublicKey: string, routingId: string): string {
  const shared = diffieHellman({ privateKey: privateKey(clientSecretKey), publicKey: publicKey(agentPublicKey) });
  return proof(shared, Buffer.from(routingId)).toString('hex');
}

/** The agent side: whether `proofHex` shows the client on `routingId` holds the secret of `clientPublicKey`. */
export function checkKeyProof(
  agentSecretKey: string,
  clientPublicKey: string,
  routingId: Buffer,
  proofHex: string,
): boolean {
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: privateKey(agentSecretKey), publicKey: publicKey(clientPublicKey) });
  } catch {
    return false; // not a key
  }
  const expected = proof(shared, routingId);
  const given = Buffer.from(proofHex, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
