// The proof a client gives in `hello` that it holds the secret of the key it names (common/key-proof.ts).

import { expect } from 'chai';
import * as zmq from 'zeromq';

import { checkKeyProof, keyProof } from '../../common/key-proof';

describe('client key proof', () => {
  const agent = zmq.curveKeyPair();
  const client = zmq.curveKeyPair();
  const other = zmq.curveKeyPair();
  const proof = keyProof(client.secretKey, agent.publicKey, 'tslab-remote-1');

  it('is accepted for the key and routing id it was made for', () => {
    expect(checkKeyProof(agent.secretKey, client.publicKey, Buffer.from('tslab-remote-1'), proof)).to.equal(true);
  });

  it('is refused for another key, another routing id, another agent, or when altered', () => {
    expect(checkKeyProof(agent.secretKey, other.publicKey, Buffer.from('tslab-remote-1'), proof)).to.equal(false);
    expect(checkKeyProof(agent.secretKey, client.publicKey, Buffer.from('tslab-remote-2'), proof)).to.equal(false);
    expect(checkKeyProof(other.secretKey, client.publicKey, Buffer.from('tslab-remote-1'), proof)).to.equal(false);
    const altered = (proof[0] === '0' ? '1' : '0') + proof.slice(1);
    expect(checkKeyProof(agent.secretKey, client.publicKey, Buffer.from('tslab-remote-1'), altered)).to.equal(false);
    expect(checkKeyProof(agent.secretKey, client.publicKey, Buffer.from('tslab-remote-1'), 'zz')).to.equal(false);
    expect(checkKeyProof(agent.secretKey, 'not a key', Buffer.from('tslab-remote-1'), proof)).to.equal(false);
  });
});
