// Detached jobs on an agent with keys: only the key that started a job sees it, and the key is proven on every
// request, so a peer on the same routing id gets nothing.

import { expect } from 'chai';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';
import * as zmq from 'zeromq';

import { readKeyPair, writeKeyPair } from '../../../common/key-files';
import { keyProof } from '../../../common/key-proof';
import { AgentClient, connect } from '../../../kernel-ext/client/agent-client';
import { RemoteError } from '../../../protocol/errors';
import { encodeMessage } from '../../../protocol/frames';
import { PROTOCOL_VERSION } from '../../../protocol/messages';
import { rejectionOf } from '../../support/rejection';
import { useDetachedAgent } from './detached-agent';

describe('detached jobs, by key', function () {
  this.timeout(60_000);
  const ctx = useDetachedAgent();

  it('shows a job only to the key that started it, on an agent with keys', async () => {
    const keys = (await tmp.dir({ unsafeCleanup: true, prefix: 'keys-' })).path;
    const agentKey = writeKeyPair(keys, 'agent').publicKey;
    for (const name of ['alice', 'bob']) writeKeyPair(keys, name);
    await ctx.start(['--keys', keys, '--allow', path.join(keys, 'alice.pub'), '--allow', path.join(keys, 'bob.pub')]);
    const as = (name: string): Promise<AgentClient> =>
      ctx.client({ curve: { serverKey: agentKey, ...readKeyPair(keys, name) } });
    const alice = await as('alice');
    const job = await alice.detach(() => 'for alice', [], { name: 'mine' });
    const bob = await as('bob');
    expect(await bob.detachedJobs()).to.deep.equal([]);
    for (const ref of [job.id, 'mine'])
      expect((await rejectionOf(bob.attach(ref), RemoteError)).code).to.equal('JOB_UNKNOWN');
    expect((await rejectionOf(bob.cancelDetached(job.id), RemoteError)).code).to.equal('JOB_UNKNOWN');
    // A later connection with alice's key (a restarted kernel) sees it.
    await alice.close();
    const aliceAgain = await as('alice');
    expect((await aliceAgain.detachedJobs()).map((j) => j.id)).to.deep.equal([job.id]);
    expect(await aliceAgain.attach('mine')).to.equal('for alice');
  });

  it('gives nothing to another key on the routing id alice proved hers on: the key is proven on each request', async () => {
    const keys = (await tmp.dir({ unsafeCleanup: true, prefix: 'keys-' })).path;
    const agentKey = writeKeyPair(keys, 'agent').publicKey;
    for (const name of ['alice', 'bob']) writeKeyPair(keys, name);
    await ctx.start(['--keys', keys, '--allow', path.join(keys, 'alice.pub'), '--allow', path.join(keys, 'bob.pub')]);
    const routingId = 'tslab-remote-shared-route';
    const alice = await connect(ctx.agent!.endpoint, {
      curve: { serverKey: agentKey, ...readKeyPair(keys, 'alice') },
      routingId,
    });
    await alice.detach(() => 'for alice', [], { name: 'mine' });
    await alice.close();
    // Bob, allowed on the agent, connects on alice's routing id and asks without proving a key, then with his own.
    const bobKeys = readKeyPair(keys, 'bob');
    const dealer = (): zmq.Dealer => {
      const socket = new zmq.Dealer({ routingId, linger: 0, receiveTimeout: 1_000, curveServerKey: agentKey });
      socket.curvePublicKey = bobKeys.publicKey;
      socket.curveSecretKey = bobKeys.secretKey;
      socket.connect(ctx.agent!.endpoint);
      return socket;
    };
    const ask = async (socket: zmq.Dealer, header: object): Promise<Record<string, unknown>> => {
      await socket.send(encodeMessage({ v: PROTOCOL_VERSION, ...header }));
      const [reply] = await socket.receive();
      return JSON.parse(reply!.toString()) as Record<string, unknown>;
    };
    // Until the agent has seen alice's connection close, its ROUTER leaves a second connection on her routing id
    // unrouted: connect again until a reply comes.
    let bob = dealer();
    try {
      let unproven: Record<string, unknown> | undefined;
      for (let attempt = 1; !unproven; attempt++) {
        unproven = await ask(bob, { type: 'jobs', id: `b-1-${attempt}` }).catch((error: unknown) => {
          if (attempt === 10) throw error;
          bob.close();
          bob = dealer();
          return undefined;
        });
      }
      expect(unproven).to.deep.include({ type: 'error' });
      expect((unproven.error as { code: string }).code).to.equal('AUTH_FAILED');
      const key = { publicKey: bobKeys.publicKey, proof: keyProof(bobKeys.secretKey, agentKey, routingId) };
      expect(await ask(bob, { type: 'jobs', id: 'b-2', key })).to.deep.include({ type: 'jobs', jobs: [] });
      const attach = await ask(bob, { type: 'attach', id: 'b-3', job: 'mine', key });
      expect((attach.error as { code: string }).code).to.equal('JOB_UNKNOWN');
    } finally {
      bob.close();
    }
  });
});
