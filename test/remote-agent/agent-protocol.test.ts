// End to end: hand-made messages on a raw DEALER socket against a real agent. Bad input gets an error reply with a
// code, hostile archives write nothing, and other clients keep working throughout.

import { expect } from 'chai';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import JSZip from 'jszip';
import * as tmp from 'tmp-promise';
import * as zmq from 'zeromq';

import { AgentClient, connect } from '../../kernel-ext/client/agent-client';
import { fileHash, snapshotHash } from '../../protocol/manifest';
import { ManifestEntry, PROTOCOL_VERSION } from '../../protocol/messages';
import { AgentProcess, startAgent } from '../support/agent-process';

class RawPeer {
  readonly socket = new zmq.Dealer({ linger: 0, receiveTimeout: 5_000 });

  constructor(endpoint: string) {
    this.socket.connect(endpoint);
  }

  async exchange(frames: (Buffer | string)[]): Promise<Record<string, unknown>> {
    await this.socket.send(frames);
    const [header] = await this.socket.receive();
    return JSON.parse(header!.toString()) as Record<string, unknown>;
  }

  close(): void {
    this.socket.close();
  }
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

function errorCode(reply: Record<string, unknown>): string {
  expect(reply.type, JSON.stringify(reply)).to.equal('error');
  return (reply.error as { code: string }).code;
}

/** Lists every path under a directory, to prove nothing was written. */
async function listTree(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

describe('remote-agent protocol, end to end', function () {
  this.timeout(30_000);
  let agent: AgentProcess;
  let peer: RawPeer;
  let client: AgentClient;

  let sandbox: string;

  before(async () => {
    // The agent's workdir inside a directory of its own, so "nothing written outside" can be checked exactly.
    sandbox = (await tmp.dir({ unsafeCleanup: true, prefix: 'agent-sandbox-' })).path;
    agent = await startAgent({ args: ['--workers', '1'], workdir: path.join(sandbox, 'workdir') });
    peer = new RawPeer(agent.endpoint);
    client = await connect(agent.endpoint);
  });

  after(async () => {
    peer?.close();
    await client?.close();
    await agent?.stop();
  });

  it('answers malformed messages with error codes and stays up', async () => {
    const cases: [string, (Buffer | string)[], string][] = [
      ['not JSON', ['{nope'], 'BAD_MESSAGE'],
      ['empty header', [Buffer.alloc(0)], 'BAD_MESSAGE'],
      ['a JSON array', ['[1,2]'], 'BAD_MESSAGE'],
      ['wrong version', [json({ v: 99, type: 'ping', id: 'x' })], 'UNSUPPORTED_VERSION'],
      ['unknown type', [json({ v: PROTOCOL_VERSION, type: 'format-disk', id: 'x' })], 'BAD_MESSAGE'],
      ['missing id', [json({ v: PROTOCOL_VERSION, type: 'ping' })], 'BAD_MESSAGE'],
      [
        'call without argument frames',
        [
          json({
            v: PROTOCOL_VERSION,
            type: 'call',
            id: 'c1',
            snapshot: null,
            code: { kind: 'source', source: '() => 1' },
            options: {},
          }),
        ],
        'BAD_MESSAGE',
      ],
      [
        'call with a bad code kind',
        [
          json({
            v: PROTOCOL_VERSION,
            type: 'call',
            id: 'c2',
            snapshot: null,
            code: { kind: 'shell', source: 'rm' },
            options: {},
          }),
          Buffer.alloc(1),
        ],
        'BAD_MESSAGE',
      ],
      [
        'upload without its archive',
        [json({ v: PROTOCOL_VERSION, type: 'snapshot.upload', id: 'u', snapshot: 'a'.repeat(64), files: [] })],
        'BAD_MESSAGE',
      ],
      [
        'truncated argument frames',
        [
          json({
            v: PROTOCOL_VERSION,
            type: 'call',
            id: 'c3',
            snapshot: null,
            code: { kind: 'source', source: '(x) => x' },
            options: {},
          }),
          Buffer.from([0xff, 0x0f, 0x6f]),
        ],
        'BAD_MESSAGE',
      ],
    ];
    for (const [what, frames, code] of cases) {
      const reply = await peer.exchange(frames);
      expect(errorCode(reply), what).to.equal(code);
    }
    expect(await client.run({ source: '() => "still serving"' })).to.equal('still serving');
  });

  it('keeps serving other clients while one sends random frames', async () => {
    const randomFrame = (i: number): Buffer =>
      Buffer.from(Array.from({ length: 1 + ((i * 7919) % 97) }, () => Math.floor(Math.random() * 256)));
    const during = client.run({ source: '() => "unaffected"' });
    for (let i = 0; i < 200; i++) await peer.socket.send(Array.from({ length: 1 + (i % 3) }, () => randomFrame(i)));
    expect(await during).to.equal('unaffected');
    let replies = 0;
    while (replies < 200) {
      const [header] = await peer.socket.receive();
      expect(JSON.parse(header!.toString()).type).to.equal('error');
      replies++;
    }
  });

  describe('hostile archives', () => {
    async function upload(
      entries: Record<string, Buffer | string>,
      manifest: ManifestEntry[],
      options?: (zip: JSZip) => void,
    ) {
      const zip = new JSZip();
      for (const [name, data] of Object.entries(entries)) zip.file(name, data, { createFolders: false });
      options?.(zip);
      const archive = await zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE', platform: 'UNIX' });
      const before = await listTree(sandbox);
      const reply = await peer.exchange([
        json({
          v: PROTOCOL_VERSION,
          type: 'snapshot.upload',
          id: 'up',
          snapshot: snapshotHash(manifest),
          files: manifest,
        }),
        archive,
      ]);
      const after = await listTree(sandbox);
      const outside = after.filter((p) => !before.includes(p) && !p.startsWith('workdir'));
      expect(outside, 'nothing written outside the workdir').to.deep.equal([]);
      const snapshots = await fs.readdir(path.join(agent.workdir, 'snapshots'));
      expect(snapshots).not.to.include(snapshotHash(manifest));
      return errorCode(reply);
    }
    const entry = (p: string, text: string): ManifestEntry => ({
      path: p,
      size: Buffer.byteLength(text),
      hash: fileHash(p, Buffer.from(text)),
    });

    it('refuses a zip-slip entry', async () => {
      expect(await upload({ '../evil.js': 'pwned' }, [entry('ok.js', 'pwned')])).to.equal('UNSAFE_ARCHIVE');
    });

    it('refuses a manifest path that escapes the snapshot', async () => {
      const reply = await peer.exchange([
        json({
          v: PROTOCOL_VERSION,
          type: 'snapshot.check',
          id: 'chk',
          snapshot: 'a'.repeat(64),
          files: [{ path: '../../etc/passwd', size: 1, hash: 'a'.repeat(64) }],
        }),
      ]);
      expect(errorCode(reply)).to.equal('UNSAFE_ARCHIVE');
    });

    it('refuses an entry whose bytes do not match the manifest', async () => {
      expect(await upload({ 'a.js': 'evil' }, [entry('a.js', 'good')])).to.equal('HASH_MISMATCH');
    });

    it('refuses an entry that inflates past its declared size', async () => {
      const bomb = Buffer.alloc(20 * 1024 * 1024);
      expect(await upload({ 'a.js': bomb }, [{ path: 'a.js', size: 10, hash: 'b'.repeat(64) }])).to.equal('TOO_LARGE');
    });

    it('inflates entries to disk, not memory: four 64 MiB entries with wrong hashes leave the agent small', async () => {
      const pid = agent.process.pid!;
      const kib = async (field: string): Promise<number> =>
        Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(await fs.readFile(`/proc/${pid}/status`, 'utf8'))![1]);
      await fs.writeFile(`/proc/${pid}/clear_refs`, '5'); // resets the peak (VmHWM) to the current size
      const before = await kib('VmRSS');
      const zeros = Buffer.alloc(64 * 1024 * 1024);
      const names = ['a.bin', 'b.bin', 'c.bin', 'd.bin'];
      const manifest = names.map((p) => ({ path: p, size: zeros.length, hash: 'c'.repeat(64) }));
      expect(await upload(Object.fromEntries(names.map((name) => [name, zeros])), manifest)).to.equal('HASH_MISMATCH');
      const peakGrowthMb = ((await kib('VmHWM')) - before) / 1024;
      // Measured ~100 MB (jszip hands over up to ~16 MiB at once, two entries at a time); buffered, it was over 500.
      expect(peakGrowthMb, 'agent peak memory growth (MB) for 256 MiB inflated').to.be.below(200);
      expect(await fs.readdir(path.join(agent.workdir, 'tmp'))).to.deep.equal([]);
    });

    it('refuses an archive with two entries of one name', async () => {
      const zip = new JSZip()
        .file('a.js', 'good', { createFolders: false })
        .file('b.js', 'evil', { createFolders: false });
      const bytes = await zip.generateAsync({ type: 'nodebuffer', compression: 'STORE' });
      const twice = Buffer.from(bytes.toString('latin1').replaceAll('b.js', 'a.js'), 'latin1'); // same length: offsets hold
      const manifest = [entry('a.js', 'good')];
      const reply = await peer.exchange([
        json({
          v: PROTOCOL_VERSION,
          type: 'snapshot.upload',
          id: 'dup',
          snapshot: snapshotHash(manifest),
          files: manifest,
        }),
        twice,
      ]);
      expect(errorCode(reply)).to.equal('UNSAFE_ARCHIVE');
      expect((reply.error as { message: string }).message).to.include('duplicate names');
    });

    it('refuses a symbolic link entry', async () => {
      const code = await upload({}, [entry('link', '/etc/passwd')], (zip) =>
        zip.file('link', '/etc/passwd', { unixPermissions: 0o120777, createFolders: false }),
      );
      expect(code).to.equal('UNSAFE_ARCHIVE');
    });
  });
});
