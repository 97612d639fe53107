// CURVE end to end: keys made by `remote-agent keygen`, an agent serving with --keys/--allow, and clients with the
// right key, an unlisted key, the wrong agent key and no key at all.

import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';
import * as zmq from 'zeromq';

import { connect } from '../../kernel-ext/client/agent-client';
import type { ClientCurve } from '../../kernel-ext/client/client-options';
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
    agent = await startAgent({
      args: ['--bind', 'tcp://0.0.0.0:*', '--keys', keys, '--allow', path.join(keys, 'kernel.pub')],
    });
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
    await waitFor(
      () => agent.log().includes(`refused client key ${stranger.publicKey}`),
      2_000,
      'the refusal in the log',
    );
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
    const result = spawnSync(process.execPath, [BIN, 'serve', '--bind', 'tcp://127.0.0.1:*', '--keys', keys], {
      encoding: 'utf8',
    });
    expect(result.status).to.equal(2);
    expect(result.stderr).to.include('--keys needs at least one --allow FILE');
  });

  it('refuses key and allow folders other users can write', async () => {
    const open = (await tmp.dir({ unsafeCleanup: true, prefix: 'open-keys-' })).path;
    expect(keygen(open, 'agent').status).to.equal(0);
    expect(keygen(open, 'kernel').status).to.equal(0);
    fs.chmodSync(open, 0o777);
    const serve = (...args: string[]) =>
      spawnSync(process.execPath, [BIN, 'serve', '--bind', 'tcp://127.0.0.1:*', ...args], {
        encoding: 'utf8',
        timeout: 15_000,
      });
    const keysOpen = serve('--keys', open, '--allow', path.join(keys, 'kernel.pub'));
    expect(keysOpen.status).to.equal(2);
    expect(keysOpen.stderr).to.include(`--keys ${open} can be written by other users (mode 777)`);
    const allowOpen = serve('--keys', keys, '--allow', open);
    expect(allowOpen.status).to.equal(2);
    expect(allowOpen.stderr).to.include(`--allow ${open} can be written by other users`);
  });

  it('logs refused keys at a bounded rate, however many connections try', async () => {
    const stranger = { serverKey: agentPub, ...readKeyPair(keys, 'stranger') };
    const before = (agent.log().match(/refused client key/g) ?? []).length;
    await Promise.all(Array.from({ length: 30 }, () => refusal(stranger, agent.endpoint)));
    await waitFor(
      () => /further refused connections in this minute are counted/.test(agent.log()),
      5_000,
      'the rate limit',
    );
    const after = (agent.log().match(/refused client key/g) ?? []).length;
    expect(after - before).to.be.at.most(10);
  });

  it('disconnects a peer without a key that announces a 1 GiB frame, before holding it in memory', async () => {
    const pid = agent.process.pid!;
    const kib = (field: string): number =>
      Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5'); // resets the peak (VmHWM) to the current size
    const before = kib('VmRSS');
    const socket = net.connect(Number(agent.endpoint.split(':').pop()), '127.0.0.1');
    socket.on('error', () => undefined); // the agent hangs up: EPIPE or ECONNRESET on our writes
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise((resolve) => socket.once('connect', resolve));
    // A ZMTP 3.0 greeting asking for CURVE, then, in place of the HELLO command, a frame of 1 GiB.
    const greeting = Buffer.alloc(64);
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting.write('CURVE', 12, 'latin1');
    const frame = Buffer.alloc(9);
    frame[0] = 0x02; // a long frame
    frame.writeBigUInt64BE(1n << 30n, 1);
    socket.write(Buffer.concat([greeting, frame]));
    const chunk = Buffer.alloc(1024 * 1024, 1);
    let sent = 0;
    let gone = false;
    void closed.then(() => (gone = true));
    while (!gone && sent < 256 * chunk.length) {
      if (!socket.write(chunk)) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed]);
      sent += chunk.length;
    }
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    socket.destroy();
    expect(gone, `the agent kept the connection after ${sent >> 20} MiB`).to.equal(true);
    expect(sent, 'bytes the peer could send before it was cut off').to.be.below(256 * chunk.length);
    expect((kib('VmHWM') - before) / 1024, 'agent peak memory growth (MB)').to.be.below(64);
  });

  it('admits a session key given with --allow-key=, also one that starts with a dash', async () => {
    let client = zmq.curveKeyPair();
    for (let tries = 0; !client.publicKey.startsWith('-') && tries < 100_000; tries++) client = zmq.curveKeyPair();
    expect(client.publicKey[0], 'a key starting with "-" (one in 85 does)').to.equal('-');
    const workdir = (await tmp.dir({ unsafeCleanup: true, prefix: 'allow-key-' })).path;
    const agent = spawn(process.execPath, [
      BIN,
      'serve',
      '--bind',
      'tcp://127.0.0.1:*',
      '--workdir',
      workdir,
      `--allow-key=${client.publicKey}`,
    ]);
    const exited = new Promise((resolve) => agent.once('exit', resolve));
    try {
      let stdout = '';
      agent.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      await waitFor(
        () => /remote-agent public key \S+/.test(stdout) || agent.exitCode !== null,
        15_000,
        'the agent to announce itself',
      );
      const endpoint = /remote-agent listening on (\S+)/.exec(stdout)?.[1];
      const serverKey = /remote-agent public key (\S+)/.exec(stdout)?.[1];
      expect(serverKey, `the agent prints the public key it made for this run (stdout: ${stdout})`).to.be.a('string');
      const session = await connect(endpoint!, { curve: { serverKey: serverKey!, ...client } });
      expect(await session.run({ source: '() => 6 * 7' })).to.equal(42);
      await session.close();
    } finally {
      agent.kill('SIGTERM');
      await exited;
    }
  });
});
