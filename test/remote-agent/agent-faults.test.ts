// Faults injected into real agents: network blips, vanished clients, workers killed from outside, bounds, and a
// bounded fuzz of random and mutated messages. The agent must stay up and lose nothing it can keep.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';
import * as zmq from 'zeromq';

import { connect } from '../../kernel-ext/client/agent-client';
import { snapshotDirectory } from '../../kernel-ext/client/snapshot';
import { RemoteError } from '../../protocol/errors';
import { rejectionOf, remoteCodeOf } from '../support/rejection';
import { fileHash, snapshotHash } from '../../protocol/manifest';
import { FINAL_REPLIES, PROTOCOL_VERSION } from '../../protocol/messages';
import { encodeValue } from '../../protocol/values';
import { isAlive, makeTree, startAgent, untilBusy, waitFor } from '../support/agent-process';
import { TcpProxy } from '../support/tcp-proxy';

describe('remote-agent faults, end to end', function () {
  this.timeout(60_000);

  it('delivers a result that ended during a network blip once the client is back', async () => {
    const agent = await startAgent();
    const { proxy, endpoint } = await TcpProxy.start(agent.endpoint);
    const client = await connect(endpoint, { heartbeatMs: 100, heartbeatTimeoutMs: 10_000 });
    try {
      const job = client.run({ source: '() => new Promise((r) => setTimeout(() => r("survived"), 800))' });
      await untilBusy(client);
      proxy.cut(1_500); // the job ends while the client is cut off
      expect(await job).to.equal('survived');
      expect(agent.log()).to.match(
        /could not send the final reply of job \S+ to client \S+ \(EHOSTUNREACH\); kept for redelivery/,
      );
    } finally {
      await client.close();
      await proxy.close();
      await agent.stop();
    }
  });

  it('answers a request whose reply was lost in a blip once the client reconnects', async () => {
    const agent = await startAgent();
    const { proxy, endpoint } = await TcpProxy.start(agent.endpoint);
    const client = await connect(endpoint, { heartbeatMs: 100, heartbeatTimeoutMs: 5_000 });
    try {
      proxy.blackhole(500); // the status reply is swallowed, then the connection drops
      const status = await client.status();
      expect(status.workers).to.have.length(2);
      const job = client.run({ source: '() => "after the blip"' });
      expect(await job).to.equal('after the blip');
    } finally {
      await client.close();
      await proxy.close();
      await agent.stop();
    }
  });

  it('delivers a large result over a slow link once, without mistaking the wait for a dead agent', async () => {
    const agent = await startAgent({ args: ['--workers', '1'] });
    const { proxy, endpoint } = await TcpProxy.start(agent.endpoint, { downstreamBytesPerSecond: 8_000_000 });
    // Replies take ~2.5 s to arrive, far past the 1 s deadline a silence-based heartbeat would apply.
    const client = await connect(endpoint, { heartbeatMs: 100, heartbeatTimeoutMs: 1_000 });
    try {
      const bytes = await client.run<Buffer>({ source: '() => Buffer.alloc(20_000_000, 7)' });
      expect(bytes.length).to.equal(20_000_000);
      expect(proxy.downstreamBytes, 'sent once, not again on every ping').to.be.below(25_000_000);
      expect(await client.run({ source: '() => "next"' })).to.equal('next');
    } finally {
      await client.close();
      await proxy.close();
      await agent.stop();
    }
  });

  it('never runs a call the client gave up on during a long outage', async () => {
    const agent = await startAgent({ args: ['--workers', '1'] });
    const { proxy, endpoint } = await TcpProxy.start(agent.endpoint);
    const client = await connect(endpoint, { heartbeatMs: 100, heartbeatTimeoutMs: 1_000 });
    const marker = path.join(await makeTree({}), 'ran');
    try {
      proxy.cut(3_000);
      await waitFor(() => !client.reachable, 5_000, 'the client to see the connection cut');
      const code = await remoteCodeOf(
        client.run({ source: '(file) => require("fs").writeFileSync(file, "ran")', args: [marker] }),
      );
      expect(code).to.equal('AGENT_UNREACHABLE');
      await waitFor(() => client.reachable, 10_000, 'the network back');
      expect(await client.run({ source: '() => "reconnected"' })).to.equal('reconnected');
      expect(
        await fs.stat(marker).then(
          () => true,
          () => false,
        ),
        'the abandoned call ran later',
      ).to.equal(false);
    } finally {
      await client.close();
      await proxy.close();
      await agent.stop();
    }
  });

  it('discards and logs the result of a client that never comes back', async () => {
    const agent = await startAgent({ args: ['--result-ttl-ms', '300'] });
    const client = await connect(agent.endpoint);
    const job = client.run({ source: '() => new Promise((r) => setTimeout(() => r(1), 300))' });
    await untilBusy(client);
    await client.close();
    expect(await remoteCodeOf(job)).to.equal('CLIENT_CLOSED');
    try {
      await waitFor(
        () => /discarded the final reply of job \S+ for client \S+: not collected within 0 s/.test(agent.log()),
        5_000,
        'the discard in the log',
      );
    } finally {
      await agent.stop();
    }
  });

  it('reports a worker killed from outside and runs the next job', async () => {
    const agent = await startAgent({ args: ['--workers', '1'] });
    const client = await connect(agent.endpoint);
    try {
      const [worker] = (await client.status()).workers;
      const job = client.run({ source: '() => new Promise(() => {})' });
      await untilBusy(client);
      process.kill(worker!.pid!, 'SIGKILL'); // as the OOM killer would
      const error = await rejectionOf(job, RemoteError);
      expect(error.code).to.equal('WORKER_CRASHED');
      expect(error.message).to.include('SIGKILL');
      expect(await client.run({ source: '() => "next"' })).to.equal('next');
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('ends a worker stuck in an endless synchronous loop when its agent is SIGKILLed', async () => {
    const agent = await startAgent({ args: ['--workers', '1'] });
    const client = await connect(agent.endpoint, { heartbeatMs: 100, heartbeatTimeoutMs: 1_000 });
    try {
      const [worker] = (await client.status()).workers;
      const job = client.run({ source: '() => { for (;;) {} }' }).catch(() => undefined);
      await untilBusy(client);
      agent.process.kill('SIGKILL'); // no shutdown, and the worker's event loop never sees 'disconnect'
      await waitFor(() => !isAlive(worker!.pid!), 3_000, `worker ${worker!.pid} of the killed agent to exit`);
      await job;
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('bounds jobs per client, files per snapshot and archive size, naming each bound', async () => {
    const agent = await startAgent({
      args: ['--workers', '1', '--max-jobs-per-client', '2', '--max-files', '2', '--max-archive-mb', '1'],
    });
    const client = await connect(agent.endpoint);
    try {
      const running = [1, 2].map(() => client.run({ source: '() => new Promise((r) => setTimeout(r, 500))' }));
      const error = await rejectionOf(client.run({ source: '() => 3' }), RemoteError);
      expect(error.code).to.equal('TOO_LARGE');
      expect(error.message).to.include('--max-jobs-per-client').and.include('2');
      await Promise.all(running);

      const three = await snapshotDirectory(await makeTree({ a: '1', b: '2', c: '3' }));
      const files = await rejectionOf(client.upload(three), RemoteError);
      expect(files.code).to.equal('TOO_LARGE');
      expect(files.message).to.include('2');

      const big = await makeTree({ 'weights.bin': randomBytes(1_500_000).toString('latin1') });
      const archive = await rejectionOf(client.upload(await snapshotDirectory(big)), RemoteError);
      expect(archive.code).to.equal('TOO_LARGE');
      expect(archive.message).to.include('maxArchiveBytes').and.include('--max-archive-mb');
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('reports a full disk while storing a snapshot, keeps nothing half-made, and succeeds on retry', async function () {
    // A real full disk: the agent's workdir on a 1 MiB tmpfs. Mounting needs root (as in CI); elsewhere skip.
    const mountPoint = (await tmp.dir({ unsafeCleanup: true, prefix: 'disk-full-' })).path;
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]).status !== 0) {
      this.skip(); // cannot mount a small tmpfs here (not root): the disk-full fault cannot be injected
    }
    let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
    try {
      agent = await startAgent({ args: ['--workers', '1'], workdir: path.join(mountPoint, 'workdir') });
      const client = await connect(agent.endpoint);
      const local = await snapshotDirectory(
        await makeTree({
          'a.bin': randomBytes(400_000).toString('latin1'),
          'b.bin': randomBytes(400_000).toString('latin1'),
          'c.js': 'module.exports = "fits now";\n',
        }),
      );
      const error = await rejectionOf(client.upload(local), RemoteError);
      expect(error.code).to.equal('DISK_FULL');
      expect(error.message).to.include('disk is full').and.include('--disk-budget');
      expect(await fs.readdir(path.join(agent.workdir, 'snapshots'))).to.deep.equal([]);
      expect(await fs.readdir(path.join(agent.workdir, 'tmp'))).to.deep.equal([]);
      expect(spawnSync('mount', ['-o', 'remount,size=64m', mountPoint]).status).to.equal(0);
      await client.upload(local);
      expect(await client.run({ source: '() => require("./c.js")', snapshot: local.hash })).to.equal('fits now');
      await client.close();
    } finally {
      await agent?.stop();
      spawnSync('umount', [mountPoint]);
    }
  });

  it('survives 10,000 random and mutated messages, answering each exactly once', async function () {
    this.timeout(150_000);
    const sandbox = (await tmp.dir({ unsafeCleanup: true, prefix: 'fuzz-' })).path;
    const agent = await startAgent({ args: ['--workers', '1'], workdir: path.join(sandbox, 'workdir') });
    const socket = new zmq.Dealer({ linger: 0, receiveTimeout: 10_000 });
    socket.connect(agent.endpoint);
    const file = { path: 'a.js', size: 2, hash: fileHash('a.js', Buffer.from('42')) };
    const snapshot = snapshotHash([file]);
    const templates: Buffer[][] = [
      [json({ type: 'hello', client: 'fuzz' })],
      [json({ type: 'ping', waiting: ['x'] })],
      [json({ type: 'status' })],
      [json({ type: 'snapshot.check', snapshot, files: [file] })],
      [json({ type: 'snapshot.upload', snapshot, files: [file] }), Buffer.from('PK\x03\x04garbage')],
      [
        json({ type: 'call', snapshot: null, code: { kind: 'source', source: '(x) => x' }, options: {} }),
        ...encodeValue([1]).map(Buffer.from),
      ],
      [json({ type: 'cancel', job: 'nope' })],
    ];
    const started = Date.now();
    let sent = 0;
    let finals = 0;
    const receiving = (async () => {
      for (;;) {
        const [header] = await socket.receive();
        const type = JSON.parse(header!.toString()).type;
        if (FINAL_REPLIES.has(type)) finals++;
      }
    })().catch(() => undefined);
    try {
      for (let i = 0; i < 10_000 && Date.now() - started < 90_000; i++) {
        await socket.send(i % 4 === 0 ? randomMessage() : mutate(templates[i % templates.length]!, i));
        sent++;
      }
      await waitFor(() => finals >= sent, 30_000, `${sent} final replies (got ${finals})`);
      expect(sent, 'messages sent within the time bound').to.equal(10_000);
      expect(finals).to.equal(sent);
      const client = await connect(agent.endpoint);
      expect(await client.run({ source: '() => "fine"' })).to.equal('fine');
      await client.close();
      const outside = (await fs.readdir(sandbox)).filter((name) => name !== 'workdir');
      expect(outside, 'nothing written outside the workdir').to.deep.equal([]);
    } finally {
      socket.close();
      await receiving;
      await agent.stop();
    }
  });
});

let nextId = 0;
function json(header: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ v: PROTOCOL_VERSION, id: `fz-${nextId++}`, ...header }));
}

function randomMessage(): Buffer[] {
  return Array.from({ length: 1 + Math.floor(Math.random() * 3) }, () =>
    randomBytes(1 + Math.floor(Math.random() * 200)),
  );
}

/** One of: flip bytes of a frame, truncate it, drop or add a frame, or retype a header field. */
function mutate(template: Buffer[], i: number): Buffer[] {
  const frames = template.map((frame) => Buffer.from(frame));
  const header = JSON.parse(frames[0]!.toString()) as Record<string, unknown>;
  header.id = `fz-${nextId++}`; // every request its own id, so every one is owed a reply
  frames[0] = Buffer.from(JSON.stringify(header));
  const target = frames[i % frames.length]!;
  switch (i % 5) {
    case 0:
      for (let k = 0; k < 3; k++) target[Math.floor(Math.random() * target.length)] = Math.floor(Math.random() * 256);
      return frames;
    case 1:
      frames[i % frames.length] = target.subarray(0, Math.floor(Math.random() * target.length));
      return frames;
    case 2:
      return frames.length > 1 ? frames.slice(0, -1) : [...frames, randomBytes(8)];
    case 3: {
      const keys = Object.keys(header).filter((key) => key !== 'id' && key !== 'v');
      const key = keys[i % keys.length]!;
      const replacements = [null, 7, -1, 'x'.repeat(300), [], {}, true, '../../etc'];
      header[key] = replacements[i % replacements.length];
      frames[0] = Buffer.from(JSON.stringify(header));
      return frames;
    }
    default:
      return [...frames, randomBytes(16)];
  }
}
