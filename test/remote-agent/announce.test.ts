// What an agent advertises and writes for launchers and batch jobs: the endpoint others can connect to, and the
// endpoint file's name when several agents of one host share a directory, or a killed agent left its file behind.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { advertisedEndpoint, writeEndpointFile } from '../../remote-agent/announce';

const record = (endpoint: string, pid = process.pid) => ({ endpoint, host: 'gpu7', workers: 2, gpus: [], pid });

/** The pid of a process that has ended: what a file left by an agent killed with SIGKILL names. */
function deadPid(): number {
  const done = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(done.stdout);
}

describe('remote-agent announce: advertised endpoint and endpoint files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = (await tmp.dir({ unsafeCleanup: true, prefix: 'announce-' })).path;
  });

  it('advertises the host name for a wildcard bind, the given host when asked, and a concrete bind as it is', () => {
    expect(advertisedEndpoint('tcp://0.0.0.0:4100', undefined)).to.equal(`tcp://${os.hostname()}:4100`);
    expect(advertisedEndpoint('tcp://0.0.0.0:4100', 'node3')).to.equal('tcp://node3:4100');
    expect(advertisedEndpoint('tcp://127.0.0.2:4100', undefined)).to.equal('tcp://127.0.0.2:4100');
  });

  it('names the first agent of a host by the host, a second live one by host and port, and removes each on request', () => {
    const first = writeEndpointFile(dir, record('tcp://gpu7:4100'));
    const second = writeEndpointFile(dir, record('tcp://gpu7:4101'));
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['gpu7-4101.json', 'gpu7.json']);
    expect(JSON.parse(fs.readFileSync(first.file, 'utf8'))).to.include({ name: 'gpu7', endpoint: 'tcp://gpu7:4100' });
    expect(JSON.parse(fs.readFileSync(second.file, 'utf8'))).to.include({
      name: 'gpu7-4101',
      endpoint: 'tcp://gpu7:4101',
    });
    first.remove();
    second.remove();
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });

  it('replaces the file an agent killed with SIGKILL left behind, rather than leaving it for attach to trip over', () => {
    fs.writeFileSync(
      path.join(dir, 'gpu7.json'),
      JSON.stringify({ name: 'gpu7', ...record('tcp://gpu7:4000', deadPid()) }),
    );
    const written = writeEndpointFile(dir, record('tcp://gpu7:4100'));
    expect(fs.readdirSync(dir)).to.deep.equal(['gpu7.json']);
    expect(JSON.parse(fs.readFileSync(written.file, 'utf8'))).to.include({
      name: 'gpu7',
      endpoint: 'tcp://gpu7:4100',
      pid: process.pid,
    });
    written.remove();
  });

  it('keeps a file it cannot read, taking the host-and-port name instead', () => {
    fs.writeFileSync(path.join(dir, 'gpu7.json'), 'not json');
    const written = writeEndpointFile(dir, record('tcp://gpu7:4100'));
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['gpu7-4100.json', 'gpu7.json']);
    written.remove();
  });
});
