// The kernel's pool through a real Jupyter client, against real agents on loopback started by the test:
// %remote_agent add (with and without keys), the pool listing, %remote --on, %remote --all and %%remote --all (one
// row per agent, output prefixed per agent, a failing agent), Jupyter's interrupt of --all, %remote_cluster down.

import { expect } from 'chai';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { writeKeyPair } from '../../../common/key-files';
import { AgentProcess, startAgent } from '../../support/agent-process';
import { errorMessageOf, messagesOf, RequestResult, session, stdoutOf, useJupyterWorkspace } from './jupyter-support';

function plain(result: RequestResult): string {
  const message = messagesOf(result, 'execute_result')[0];
  if (!message) throw new Error(`no result for ${result.code}: ${JSON.stringify(result.iopub)}`);
  return message.content.data['text/plain'] as string;
}

/** The rows of a plain-text table (header first), each split at runs of two or more blanks. */
function rows(table: string): string[][] {
  return table.split('\n').map((line) => line.trim().split(/ {2,}/));
}

describe('kernel pool through a real Jupyter client (%remote_agent add, --on, --all)', function () {
  this.timeout(240_000);
  const workspace = useJupyterWorkspace();
  const agents: AgentProcess[] = [];
  let keys: string;

  before(async function () {
    if (!workspace.jupyter) return;
    keys = (await tmp.dir({ unsafeCleanup: true, prefix: 'pool-keys-' })).path;
    writeKeyPair(keys, 'agent');
    writeKeyPair(keys, 'kernel');
    const tagged = (tag: string, args: string[] = []): Promise<AgentProcess> =>
      startAgent({ env: { ...process.env, AGENT_TAG: tag }, args: ['--workers', '1', ...args] });
    agents.push(
      await tagged('a'),
      await tagged('b'),
      await tagged('c', ['--keys', keys, '--allow', path.join(keys, 'kernel.pub')]),
    );
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
  });

  it('adds named agents, lists them, runs on one with --on and on all with --all, one row per agent', async () => {
    const [a, b, c] = agents as [AgentProcess, AgentProcess, AgentProcess];
    const [steps] = await session(workspace.jupyter, workspace.work.dir, [
      [
        { code: '%remote_root quickstart' },
        { code: `%remote_agent add a ${a.endpoint}` },
        { code: `%remote_agent add b ${b.endpoint}` },
        { code: `%remote_agent add c ${c.endpoint} --key ${keys}` },
        { code: `%remote_agent add a ${b.endpoint}`, stop_on_error: false },
        { code: '%remote_agent' },
        {
          code: "const base = 40\nfunction check(tag?: string): number {\n  if (tag === 'b') throw new Error('boom on b')\n  return 1\n}",
        },
        { code: '%remote --on b `${process.env.AGENT_TAG} ${base + 2}`' },
        { code: '%remote --all process.env.AGENT_TAG + (base + 2)' },
        { code: '%%remote --all\nconsole.log("hello from", process.env.AGENT_TAG)\nprocess.env.AGENT_TAG' },
        { code: '%remote --all check(process.env.AGENT_TAG)', stop_on_error: false },
        { code: '%remote --on nowhere 1', stop_on_error: false },
        { code: '%remote process.env.AGENT_TAG' },
      ],
    ]);
    const [, addA, , addC, twice, list, , on, all, cellAll, failing, unknown, plainRemote] = steps!;
    expect(stdoutOf(addA!)).to.include(`added a (${a.endpoint})`);
    expect(stdoutOf(addC!)).to.include('the pool has 3 agent(s): a, b, c');
    expect(errorMessageOf(twice!).ename).to.equal('UsageError');
    expect(errorMessageOf(twice!).evalue).to.include('an agent named a is already in the pool; pick another name');

    const listing = rows(plain(list!));
    expect(listing[0]).to.deep.equal(['agent', 'host', 'endpoint', 'workers', 'gpus', 'running', 'queued', 'state']);
    expect(listing.slice(1).map((r) => [r[0], r[2], r[3], r[5], r[6], r[7]])).to.deep.equal([
      ['a', a.endpoint, '1', '0', '0', 'up'],
      ['b', b.endpoint, '1', '0', '0', 'up'],
      ['c', c.endpoint, '1', '0', '0', 'up'],
    ]);

    expect(plain(on!)).to.equal('b 42');
    const table = rows(plain(all!));
    expect(table[0]).to.deep.equal(['agent', 'host', 'value or error', 'elapsed']);
    expect(table.slice(1).map((r) => [r[0], r[2]])).to.deep.equal([
      ['a', 'a42'],
      ['b', 'b42'],
      ['c', 'c42'],
    ]);
    expect(table[1]![3]).to.match(/^\d+\.\d s$/);
    expect(messagesOf(all!, 'execute_result')[0]!.content.data['text/html']).to.include(
      '<td style="text-align:left"><pre>b42</pre></td>',
    );

    const printed = stdoutOf(cellAll!).split('\n').filter(Boolean).sort();
    expect(printed).to.deep.equal(['[a] hello from a', '[b] hello from b', '[c] hello from c']);
    expect(
      rows(plain(cellAll!))
        .slice(1)
        .map((r) => r[2]),
    ).to.deep.equal(['a', 'b', 'c']);

    // The table shows every agent; the cell fails with the failing agent's error, mapped to the cell.
    expect(
      rows(plain(failing!))
        .slice(1)
        .map((r) => r[2]),
    ).to.deep.equal(['1', 'Error: boom on b', '1']);
    expect(errorMessageOf(failing!).ename).to.equal('Error');
    expect(errorMessageOf(failing!).evalue).to.equal('boom on b (on b)');
    expect(errorMessageOf(failing!).traceback[0]).to.equal('1 of 3 agents failed; first on b:');
    // Frames point at the cells: check's cell (count 7, line 3) and the calling cell (count 11).
    expect(errorMessageOf(failing!).traceback[2]).to.match(/^ +at (Object\.)?check \(In \[7\]:3:\d+\)$/);
    expect(errorMessageOf(failing!).traceback[3]).to.match(/^ +at In \[11\]:1:\d+$/);

    expect(errorMessageOf(unknown!).ename).to.equal('UsageError');
    expect(errorMessageOf(unknown!).evalue).to.equal(
      '--on nowhere: no agent of that name in the pool, which has a, b, c',
    );
    // Plain %remote with a pool and no other agent goes to the pool's first agent, not to a private one.
    expect(plain(plainRemote!)).to.equal('a');
  });

  it('cancels --all on every agent at Jupyter’s interrupt; the pool works after it and ends with %remote_cluster down', async () => {
    const [a, b] = agents as [AgentProcess, AgentProcess];
    const steps = await session(workspace.jupyter, workspace.work.dir, [
      [
        { code: `%remote_agent add a ${a.endpoint}` },
        { code: `%remote_agent add b ${b.endpoint}` },
        { code: 'function spin(): number {\n  for (;;) {}\n}' },
      ],
      { send: [{ code: '%remote --all spin()' }], interrupt_after: 2 },
      [
        { code: '%remote --all process.env.AGENT_TAG' },
        { code: '%remote_cluster down' },
        { code: '%remote --all 1', stop_on_error: false },
        { code: '%remote_agent' },
      ],
    ]);
    const [interrupted] = steps[1]!;
    expect(errorMessageOf(interrupted!).ename).to.equal('KeyboardInterrupt');
    expect(
      rows(plain(interrupted!))
        .slice(1)
        .map((r) => [r[0], r[2]!.split(':')[0]]),
    ).to.deep.equal([
      ['a', 'KeyboardInterrupt'],
      ['b', 'KeyboardInterrupt'],
    ]);
    const [after, down, empty, list] = steps[2]!;
    expect(
      rows(plain(after!))
        .slice(1)
        .map((r) => r[2]),
    ).to.deep.equal(['a', 'b']);
    expect(stdoutOf(down!)).to.equal('stopped the pool: a, b\n');
    expect(errorMessageOf(empty!).evalue).to.include('--all: the pool is empty');
    // With the pool empty, %remote_agent is about the current agent again (none yet).
    expect(stdoutOf(list!)).to.include('no agent yet');
  });

  it('gives cells the pool as `agents`: map in input order and as items finish, a progress line, output, errors, interrupt', async () => {
    const [a, b] = agents as [AgentProcess, AgentProcess];
    const steps = await session(workspace.jupyter, workspace.work.dir, [
      [
        { code: `%remote_agent add a ${a.endpoint}` },
        { code: `%remote_agent add b ${b.endpoint}` },
        {
          code: 'const base = 10\nfunction train(rate: number): string {\n  return `${process.env.AGENT_TAG}:${rate * base}`\n}\nfunction spin(): number {\n  for (;;) {}\n}',
        },
        { code: 'const results = await agents.map(train, [1, 2, 3, 4, 5, 6])\nresults.join(" ")' },
        // tslab awaits at the top level, but has no top-level `for await`: an async function holds it.
        {
          code: 'async function asFinished(): Promise<number[]> {\n  const seen: number[] = []\n  for await (const r of agents.map((x: number) => x * 2, [1, 2, 3])) seen.push(r.value!)\n  return seen\n}\nconst seen = await asFinished()\nseen.sort().join(",")',
        },
        { code: 'await agents.map((x: number) => {\n  console.log("item", x)\n  return x\n}, [7])' },
        {
          code: "await agents.map((x: number) => {\n  if (x === 2) throw new Error('bad item')\n  return x\n}, [1, 2, 3])",
          stop_on_error: false,
        },
        { code: 'agents.agents().map((x) => `${x.name} ${x.state}`).join(", ")' },
      ],
      { send: [{ code: 'await agents.map(spin, [1, 2, 3, 4])' }], interrupt_after: 2 },
      [
        { code: 'await agents.map((x: number) => x + 1, [1, 2])' },
        { code: 'const n: string = agents.map(train, [1])' },
      ],
    ]);
    const [added, , , mapped, iterated, printed, failing, listing] = steps[0]!;
    expect(stdoutOf(added!)).to.include('added a');
    const values = plain(mapped!).replace(/'/g, '').split(' ');
    expect(values.map((v) => v.split(':')[1])).to.deep.equal(['10', '20', '30', '40', '50', '60']);
    expect(new Set(values.map((v) => v.split(':')[0]))).to.deep.equal(new Set(['a', 'b']));
    // The progress line: one display, updated in place; its last state is the whole map.
    const displays = [...messagesOf(mapped!, 'display_data'), ...messagesOf(mapped!, 'update_display_data')];
    expect(messagesOf(mapped!, 'display_data')).to.have.length(1);
    const last = displays[displays.length - 1]!.content.data['text/plain'] as string;
    expect(last).to.match(/^map: 6\/6 done, 0 running, 0 failed in \d+\.\d s \| a \d done \| b \d done$/);
    expect(new Set(displays.map((m) => m.content.transient.display_id)).size).to.equal(1);

    expect(plain(iterated!)).to.equal('2,4,6');
    expect(stdoutOf(printed!)).to.match(/^\[(a|b)#0\] item 7\n$/);
    expect(plain(printed!)).to.equal('[ 7 ]');
    expect(errorMessageOf(failing!).ename).to.equal('MapItemError');
    expect(errorMessageOf(failing!).evalue).to.match(/^item 1 failed on agent (a|b), worker 0: bad item$/);
    expect(plain(listing!)).to.equal('a up, b up');

    const [interrupted] = steps[1]!;
    expect(interrupted!.reply!.status).to.equal('error');
    // Both agents have one worker: the map after the interrupt runs only if the spinning items were cancelled.
    const [after, typed] = steps[2]!;
    expect(plain(after!)).to.equal('[ 2, 3 ]');
    // `agents` is typed: a map is no string.
    expect(errorMessageOf(typed!).ename).to.equal('TSError');
  });
});
