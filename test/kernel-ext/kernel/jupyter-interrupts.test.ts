// Jupyter's interrupt (SIGINT to the kernel's process group) through a real Jupyter client, stopping a magic cell in
// whatever it is doing: a running remote call, a connect to an endpoint that never answers, a type check, a private
// agent starting, an upload; and interrupts while nothing runs.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { startAgent } from '../../support/agent-process';
import { TcpProxy } from '../../support/tcp-proxy';
import { errorMessageOf, plainResult, session, stdoutOf, useJupyterWorkspace } from './jupyter-support';

/** A loopback TCP server; `onConnection` gets each accepted socket. */
async function tcpServer(
  onConnection: (socket: net.Socket) => void = (socket) => socket.destroy(),
): Promise<{ endpoint: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.resume(); // reads (and drops) what the kernel says, and so sees it hang up
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A cell that waits (at most 5 s) for `done`, a JavaScript condition, to hold; its value says whether it did. */
function waitCell(done: string): string {
  return (
    'const waitUntil = async (done: () => boolean): Promise<boolean> => {\n' +
    '  for (const end = Date.now() + 5_000; !done() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50))\n' +
    '  return done()\n' +
    `}\nawait waitUntil(() => ${done})`
  );
}

describe('kernel interrupts through a real Jupyter client', function () {
  this.timeout(300_000);
  const workspace = useJupyterWorkspace();

  it('cancels a running remote call on Jupyter interrupt; the worker keeps its state and the next call works', async () => {
    const steps = await session(workspace.jupyter, workspace.work.dir, [
      [
        { code: '%remote_root quickstart' },
        { code: "import { train, callCount } from './quickstart/src/model'" },
        { code: '%remote train(0.5, 1)' },
        { code: '%remote process.pid' },
        { code: 'function spin(): number {\n  for (;;) {}\n}' },
      ],
      { send: [{ code: '%remote spin()' }, { code: '"queued behind the interrupted cell"' }], interrupt_after: 2 },
      [{ code: '%remote callCount()' }, { code: '%remote process.pid' }, { code: '%remote_agent' }],
    ]);
    const pidBefore = plainResult(steps[0]![3]!);
    const [interrupted, queued] = steps[1]!;
    expect(interrupted!.reply!.status).to.equal('error');
    expect(errorMessageOf(interrupted!).ename).to.equal('KeyboardInterrupt');
    expect(errorMessageOf(interrupted!).evalue).to.include('cancelled');
    expect(queued!.reply!.status).to.equal('aborted');
    const [count, pidAfter, agent] = steps[2]!;
    expect(plainResult(count!)).to.equal('1');
    expect(plainResult(pidAfter!)).to.equal(pidBefore);
    // The interrupt went to the kernel's process group; the private agent (a group of its own) did not get it.
    expect(stdoutOf(agent!)).to.match(/endpoint +ipc:\/\/\S+\/agent\.sock/);
    expect(stdoutOf(agent!)).to.include('#0 idle');
  });

  it('interrupts %remote_agent while it connects to an endpoint that never answers; the kernel stays usable', async () => {
    const agent = await startAgent();
    // Nothing listens on one (ZeroMQ tries again and again); the other accepts and never speaks (the handshake never
    // completes). Either way no welcome comes, and without the interrupt the cell would wait for the 10 s timeout.
    const nobody = await tcpServer();
    await nobody.close();
    const closed = path.join(workspace.work.dir, 'silent-connection-closed');
    const silent = await tcpServer((socket) => socket.on('close', () => fs.writeFileSync(closed, '')));
    try {
      const steps = await session(workspace.jupyter, workspace.work.dir, [
        { send: [{ code: `%remote_agent ${nobody.endpoint}` }], interrupt_after: 1 },
        [{ code: `%remote_agent ${agent.endpoint} --name real` }, { code: '%remote 6 * 7' }],
        { send: [{ code: `%remote_agent ${silent.endpoint}` }], interrupt_after: 1 },
        [
          { code: waitCell(`require('fs').existsSync(${JSON.stringify(closed)})`) },
          { code: '%remote 6 * 7' },
          { code: '"next"' },
        ],
      ]);
      const [refused] = steps[0]!;
      expect(errorMessageOf(refused!).ename).to.equal('KeyboardInterrupt');
      expect(errorMessageOf(refused!).evalue).to.equal(
        `interrupted while connecting to ${nobody.endpoint}: no agent is connected`,
      );
      const [connected, before] = steps[1]!;
      expect(stdoutOf(connected!)).to.include('connected to real');
      expect(plainResult(before!)).to.equal('42');
      const [unanswered] = steps[2]!;
      expect(errorMessageOf(unanswered!).ename).to.equal('KeyboardInterrupt');
      expect(errorMessageOf(unanswered!).evalue).to.equal(
        `interrupted while connecting to ${silent.endpoint}: the current agent is still real`,
      );
      // The kernel closed its half-made connection while it ran on (not only when it exited), and goes on as before.
      const [closedIt, after, next] = steps[3]!;
      expect(plainResult(closedIt!)).to.equal('true');
      expect(plainResult(after!)).to.equal('42');
      expect(plainResult(next!)).to.equal('next');
    } finally {
      await silent.close();
      await agent.stop();
    }
  });

  it('makes an interrupt during a %remote cell’s type check stick: the call is never sent', async () => {
    const marker = path.join(workspace.work.dir, 'type-check-marker');
    // A type check that takes seconds, for real: each line has the checker build a tuple of about 900 elements, one
    // element at a time. The call, were it sent, would write the marker first thing.
    const cell = [
      '%%remote',
      `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`,
      "type Build<N extends number, T extends 0[] = []> = T['length'] extends N ? T : Build<N, [...T, 0]>",
      ...Array.from({ length: 80 }, (_, i) => `const n${i}: Build<${880 + i}>['length'] = ${880 + i}`),
      "'ran'",
    ].join('\n');
    const steps = await session(workspace.jupyter, workspace.work.dir, [
      [{ code: '%remote_root quickstart' }, { code: '%remote "the private agent is up"' }],
      { send: [{ code: cell }, { code: '"queued behind the interrupted cell"' }], interrupt_after: 0.5 },
      [{ code: `%remote require('node:fs').existsSync(${JSON.stringify(marker)})` }, { code: cell }],
    ]);
    const [interrupted, queued] = steps[1]!;
    expect(errorMessageOf(interrupted!).ename).to.equal('KeyboardInterrupt');
    expect(errorMessageOf(interrupted!).evalue).to.equal(
      'interrupted while the cell was type-checked: the call was not sent',
    );
    expect(queued!.reply!.status).to.equal('aborted');
    const [ran, uninterrupted] = steps[2]!;
    expect(plainResult(ran!)).to.equal('false');
    // The same cell, left alone, does write the marker.
    expect(plainResult(uninterrupted!)).to.equal('ran');
    expect(fs.existsSync(marker)).to.equal(true);
  });

  it('interrupts a %remote that waits for its private agent to start, or for an upload; neither call is sent', async () => {
    const dir = (await tmp.dir({ unsafeCleanup: true, prefix: 'interrupt-waits-' })).path;
    // Nothing in an agent is slow to start on purpose: a preload, which the kernel's private agent inherits through
    // NODE_OPTIONS, holds up the first `remote-agent serve` for a minute, writing its pid first.
    const held = path.join(dir, 'held-agent.pid');
    const preload = path.join(dir, 'hold-first-agent.js');
    fs.writeFileSync(
      preload,
      `const fs = require('fs');\nif (process.argv[2] === 'serve' && !fs.existsSync(${JSON.stringify(held)})) {\n` +
        `  fs.writeFileSync(${JSON.stringify(held)}, String(process.pid));\n  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);\n}\n`,
    );
    // An upload over a slow link: two 6 MB files (one upload batch each), through a proxy passing 1.5 MB/s to the agent.
    const big = path.join(dir, 'big-root');
    fs.mkdirSync(big);
    fs.writeFileSync(path.join(big, 'package.json'), '{"name":"big-root"}\n');
    for (const name of ['a.bin', 'b.bin']) fs.writeFileSync(path.join(big, name), randomBytes(6 * 1024 * 1024));
    const marker = path.join(dir, 'upload-marker');
    const agent = await startAgent();
    const { proxy, endpoint } = await TcpProxy.start(agent.endpoint, { upstreamBytesPerSecond: 1_500_000 });
    const heldAgentGone = `(() => {\n  try {\n    process.kill(Number(require('fs').readFileSync(${JSON.stringify(held)}, 'utf8')), 0)\n    return false\n  } catch {\n    return true\n  }\n})()`;
    try {
      const steps = await session(
        workspace.jupyter,
        workspace.work.dir,
        [
          [{ code: '"type checker warmed up"' }],
          { send: [{ code: '%remote "never sent"' }], interrupt_after: 3 },
          [{ code: waitCell(heldAgentGone) }, { code: '%remote "a private agent started"' }],
          [{ code: `%remote_agent ${endpoint} --name slow` }, { code: `%remote_root ${big}` }],
          {
            send: [{ code: `%remote require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran')` }],
            interrupt_after: 1.5,
          },
          [
            { code: '%remote_root quickstart' },
            { code: `%remote require('node:fs').existsSync(${JSON.stringify(marker)})` },
          ],
        ],
        { env: { NODE_OPTIONS: `--require ${preload}` } },
      );
      const [starting] = steps[1]!;
      expect(errorMessageOf(starting!).ename).to.equal('KeyboardInterrupt');
      expect(errorMessageOf(starting!).evalue).to.equal(
        'interrupted while starting the private agent: the call was not sent',
      );
      // The agent held up was killed, not left to start; the next call starts another.
      const [gone, started] = steps[2]!;
      expect(plainResult(gone!)).to.equal('true');
      expect(plainResult(started!)).to.equal('a private agent started');
      const [uploading] = steps[4]!;
      expect(errorMessageOf(uploading!).ename).to.equal('KeyboardInterrupt');
      expect(errorMessageOf(uploading!).evalue).to.equal(
        'interrupted while uploading the code root to slow: the call was not sent',
      );
      const [, ran] = steps[5]!;
      expect(plainResult(ran!)).to.equal('false');
      // The upload stopped after the batch in flight: the second file never went.
      expect(proxy.upstreamBytes).to.be.below(9 * 1024 * 1024);
    } finally {
      await proxy.close();
      await agent.stop();
    }
  });

  it('shrugs off interrupts while no cell runs, and two in a row', async () => {
    const steps = await session(workspace.jupyter, workspace.work.dir, [
      [{ code: 'const n = 1' }, { code: '%remote n + 1' }],
      { interrupt_after: [0, 0.2] },
      [{ code: 'n + 2' }, { code: '%remote n + 3' }],
      { send: [{ code: '%remote new Promise((resolve) => setTimeout(resolve, 60_000))' }], interrupt_after: [1, 1.2] },
      [{ code: 'n + 4' }, { code: '%remote n + 5' }],
    ]);
    expect(steps[0]!.map(plainResult)).to.deep.equal([undefined, '2']);
    expect(steps[1]).to.deep.equal([]);
    expect(steps[2]!.map(plainResult)).to.deep.equal(['3', '4']);
    const [interrupted] = steps[3]!;
    expect(errorMessageOf(interrupted!).ename).to.equal('KeyboardInterrupt');
    expect(errorMessageOf(interrupted!).evalue).to.include('cancelled');
    expect(steps[4]!.map(plainResult)).to.deep.equal(['5', '6']);
  });
});
