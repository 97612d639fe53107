// The workdir lock on its own: starts racing for a stale lock (one wins, however they interleave), a takeover marker
// left by a start that died, and a lock only its owner releases.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { lockWorkdir } from '../../remote-agent/workdir-lock';
import { waitFor } from '../support/agent-process';

const LOCK_MODULE = path.resolve(__dirname, '..', '..', 'remote-agent', 'workdir-lock.js');
const DEAD_PID = 2 ** 22 + 1; // above Linux's pid_max default: no such process

/** A process that waits for `go`, then takes the lock and holds it a moment; prints won or lost. */
const RACER = `
const fs = require('node:fs');
const [module, workdir, go] = process.argv.slice(1);
process.stdout.write('ready\\n');
while (!fs.existsSync(go)) {}
try {
  const release = require(module).lockWorkdir(workdir);
  process.stdout.write('won\\n');
  setTimeout(release, 1500);
} catch (error) {
  process.stdout.write(error.message.includes('in use by another agent') ? 'lost\\n' : 'error ' + error.message + '\\n');
}`;

describe('workdir lock', function () {
  this.timeout(30_000);
  let workdir: string;

  beforeEach(async () => {
    workdir = (await tmp.dir({ unsafeCleanup: true, prefix: 'lock-' })).path;
  });

  it('gives a stale lock to exactly one of several starts racing for it', async () => {
    for (let round = 0; round < 3; round++) {
      fs.rmSync(path.join(workdir, 'agent.lock'), { force: true });
      fs.writeFileSync(
        path.join(workdir, 'agent.lock'),
        JSON.stringify({ pid: DEAD_PID, host: os.hostname(), since: 'then' }),
      );
      const go = path.join(workdir, `go-${round}`);
      const racers = Array.from({ length: 6 }, () =>
        spawn(process.execPath, ['-e', RACER, LOCK_MODULE, workdir, go], { stdio: ['ignore', 'pipe', 'inherit'] }),
      );
      const outputs = racers.map((child) => {
        let out = '';
        child.stdout.on('data', (data: Buffer) => (out += data.toString()));
        return { child, text: () => out, exited: new Promise((resolve) => child.once('exit', resolve)) };
      });
      await waitFor(() => outputs.every((o) => o.text().includes('ready')), 10_000, 'every racer ready');
      fs.writeFileSync(go, '');
      await Promise.all(outputs.map((o) => o.exited));
      const results = outputs.map((o) => o.text().replace('ready\n', '').trim()).sort();
      expect(results, `round ${round}`).to.deep.equal(['lost', 'lost', 'lost', 'lost', 'lost', 'won']);
    }
    expect(fs.readdirSync(workdir).filter((name) => name.startsWith('agent.lock'))).to.deep.equal([]);
  });

  it('clears a takeover marker left by a start that died, and releases only its own lock', () => {
    fs.writeFileSync(
      path.join(workdir, 'agent.lock'),
      JSON.stringify({ pid: DEAD_PID, host: os.hostname(), since: 'then' }),
    );
    const marker = path.join(workdir, 'agent.lock.takeover');
    fs.mkdirSync(marker);
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(marker, old, old);
    const release = lockWorkdir(workdir);
    expect(JSON.parse(fs.readFileSync(path.join(workdir, 'agent.lock'), 'utf8'))).to.include({ pid: process.pid });
    expect(fs.existsSync(marker)).to.equal(false);
    // Another owner's lock (written after ours was lost) is not ours to remove.
    fs.writeFileSync(
      path.join(workdir, 'agent.lock'),
      JSON.stringify({ pid: process.ppid, host: os.hostname(), since: 'now' }),
    );
    release();
    expect(fs.existsSync(path.join(workdir, 'agent.lock'))).to.equal(true);
  });
});
