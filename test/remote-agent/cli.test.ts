// The `remote-agent` command line: safe defaults and clear refusals.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import { isLoopback } from '../../remote-agent/loopback';

const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'remote-agent.js');

function runCli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('remote-agent command line', () => {
  it('refuses to serve on a non-loopback address without keys, and says what to do', () => {
    const { status, stderr } = runCli('serve', '--bind', 'tcp://0.0.0.0:5555');
    expect(status).to.equal(2);
    expect(stderr).to.include('refusing to serve on tcp://0.0.0.0:5555').and.include('ssh -L');
  });

  it('rejects unknown flags and bad numbers with the usage', () => {
    expect(runCli('serve', '--frobnicate').stderr).to.include("Unknown option '--frobnicate'").and.include('Usage:');
    const bad = runCli('serve', '--workers', 'many', '--bind', 'tcp://127.0.0.1:*');
    expect(bad.status).to.equal(2);
    expect(bad.stderr).to.include('--workers needs a positive whole number');
  });

  it("takes each command's own flags only: serve no --out, keygen no --bind", () => {
    const serve = runCli('serve', '--out', '/tmp/x');
    expect(serve.status).to.equal(2);
    expect(serve.stderr).to.include("Unknown option '--out'").and.include('Usage:');
    const keygen = runCli('keygen', '--bind', 'tcp://127.0.0.1:*');
    expect(keygen.status).to.equal(2);
    expect(keygen.stderr).to.include("Unknown option '--bind'").and.include('Usage:');
  });

  it('shows the defaults the flags have in the usage', () => {
    const usage = runCli('--help').stdout;
    expect(usage)
      .to.include('(default tcp://127.0.0.1:5555;')
      .and.include('(default 1800000: 30 min)')
      .and.include('NAME agent.');
  });

  it('prints help and version', () => {
    expect(runCli('--help').stdout).to.include('remote-agent serve');
    expect(runCli('--version').stdout.trim()).to.match(/^\d+\.\d+\.\d+/);
  });

  it('tells loopback endpoints from others', () => {
    for (const endpoint of [
      'tcp://127.0.0.1:5555',
      'tcp://localhost:1',
      'tcp://[::1]:9',
      'ipc:///tmp/a.sock',
      'tcp://127.0.0.1:*',
    ]) {
      expect(isLoopback(endpoint), endpoint).to.equal(true);
    }
    for (const endpoint of [
      'tcp://0.0.0.0:5555',
      'tcp://10.0.0.2:5555',
      'tcp://*:5555',
      'tcp://gpu1:5555',
      'tcp://127.0.0.1.evil.com:1',
    ]) {
      expect(isLoopback(endpoint), endpoint).to.equal(false);
    }
  });

  it('does not count a Linux abstract socket (ipc://@name) as loopback: it has no file permissions to guard it', () => {
    expect(isLoopback('ipc://@x')).to.equal(false);
    const { status, stderr } = runCli('serve', '--bind', 'ipc://@tslab-remote-test');
    expect(status).to.equal(2);
    expect(stderr).to.include('refusing to serve on ipc://@tslab-remote-test');
  });
});
