// CURVE end to end: keys made by `remote-agent keygen`, an agent serving with --keys/--allow, and clients with the
// right key, an unlisted key, the wrong agent key and no key at all.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { ClientCurve, connect } from '../../kernel-ext/client/agent-client';
import { readKeyFile, readKeyPair } from '../../common/key-files';
import { RemoteError } from '../../protocol/errors';
import { AgentProcess, startAgent, waitFor } from '../support/agent-process';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'remote-agent.js');

function keygen(dir: string, name: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [BIN, 'keygen', '--out', dir, '--name', name], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * A connection the agent refuses. "Within seconds, not a hang": AUTH_FAILED comes from the handshake's failure;
 * waiting out the 4 s connect timeout instead would fail with AGENT_UNREACHABLE.
 */
async function refusal(curve: ClientCurve | undefined, endpoint: string): Promise<{ error: RemoteError }> {
  try {
    await connect(endpoint, { curve, connectTimeoutMs: 4_000 });
  } catch (error) {
    return { error: error as RemoteError };
  }
  throw new Error('expected the agent to refuse the connection');
}

describe('remote-agent keys (CURVE), end to end', function () {
  this.timeout(30_000);
  let keys: string;
  let agent: AgentProcess;
  let kernel: ClientCurve;
  let agentPub: string;

  before(async () => {
    keys = (await tmp.dir({ unsafeCleanup: true, prefix: 'keys-' })).path;
    for (const name of ['agent', 'kernel', 'stranger']) expect(keygen(keys, name).status, name).to.equal(0);
    agentPub = readKeyFile(path.join(keys, 'agent.pub'));
    kernel = { serverKey: agentPub, ...readKeyPair(keys, 'kernel') };
    agent = await startAgent({ args: ['--bind', 'tcp://0.0.0.0:*', '--keys', keys, '--allow', path.join(keys, 'kernel.pub')] });
    agent.endpoint = agent.endpoint.replace('0.0.0.0', '127.0.0.1');
  });

  after(async () => {
    expect(await agent?.stop()).to.equal(0);
  });

  it('writes a key pair with an owner-only secret and refuses to overwrite it', () => {
    expect(fs.statSync(path.join(keys, 'kernel.key')).mode & 0o777).to.equal(0o600);
    expect(readKeyFile(path.join(keys, 'kernel.pub'))).to.have.length(40);
    const again = keygen(keys, 'kernel');
    expect(again.status).to.equal(2);
    expect(again.stderr).to.include('exists already');
  });

  it('admits a listed client key on a non-loopback bind and runs its job encrypted', async () => {
    const client = await connect(agent.endpoint, { curve: kernel });
    try {
      expect(await client.run({ source: '(x) => x + 1', args: [41] })).to.equal(42);
    } finally {
      await client.close();
    }
  });

  it('refuses an unlisted client key with a clear error within seconds, and logs the key', async () => {
    const stranger = { serverKey: agentPub, ...readKeyPair(keys, 'stranger') };
    const { error } = await refusal(stranger, agent.endpoint);
    expect(error.code).to.equal('AUTH_FAILED');
    expect(error.message).to.include("refused this kernel's key");
    await waitFor(() => agent.log().includes(`refused client key ${stranger.publicKey}`), 2_000, 'the refusal in the log');
  });

  it('fails clearly when the client holds the wrong agent key', async () => {
    const wrong = { ...kernel, serverKey: readKeyFile(path.join(keys, 'stranger.pub')) };
    const { error } = await refusal(wrong, agent.endpoint);
    expect(error.code).to.equal('AUTH_FAILED');
    expect(error.message).to.include("agent's current public key");
  });

  it('refuses a client without keys', async () => {
    const { error } = await refusal(undefined, agent.endpoint);
    expect(['AUTH_FAILED', 'AGENT_UNREACHABLE']).to.include(error.code);
  });

  it('refuses --keys without any --allow, naming what to pass', () => {
    const result = spawnSync(process.execPath, [BIN, 'serve', '--bind', 'tcp://127.0.0.1:*', '--keys', keys], { encoding: 'utf8' });
    expect(result.status).to.equal(2);
    expect(result.stderr).to.include('--keys needs at least one --allow FILE');
  });
});
