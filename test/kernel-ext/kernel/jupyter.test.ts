// The kernel through a real Jupyter client (jupyter_client's KernelManager and BlockingKernelClient): the messages
// tslab leaves out (execute_input, execute_result, error) for ordinary cells and magics, stop_on_error honoured both
// ways, remote output and errors, agents that are unreachable, die mid-call or need keys, and the private agent ending
// with the kernel. Interrupts: jupyter-interrupts.test.ts.

import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { writeKeyPair } from '../../../common/key-files';
import { isAlive, startAgent, waitFor } from '../../support/agent-process';
import {
  errorMessageOf,
  messagesOf,
  messageTypes,
  plainResult,
  RequestResult,
  session,
  stdoutOf,
  useJupyterWorkspace,
} from './jupyter-support';

describe('kernel through a real Jupyter client', function () {
  this.timeout(300_000);
  const workspace = useJupyterWorkspace();

  it('installs a kernelspec named tslab-remote that runs `tslab-remote kernel --config-path {connection_file}`', () => {
    const spec = JSON.parse(
      fs.readFileSync(
        path.join(workspace.jupyter.dir, 'prefix', 'share', 'jupyter', 'kernels', 'tslab-remote', 'kernel.json'),
        'utf8',
      ),
    );
    expect(spec.display_name).to.equal('TypeScript (remote)');
    expect(spec.argv.slice(1)).to.deep.equal([
      path.resolve(__dirname, '..', '..', '..', '..', 'bin', 'tslab-remote.js'),
      'kernel',
      '--config-path',
      '{connection_file}',
    ]);
    expect(spec.interrupt_mode).to.equal('signal');
  });

  it('sends execute_input, counts, execute_result and error messages, and honours stop_on_error both ways', async () => {
    const [first, second] = await session(workspace.jupyter, workspace.work.dir, [
      [
        { code: 'const answer: number = 6 * 7\nanswer' },
        { code: 'throw new RangeError("local boom")', stop_on_error: false },
        // Sent at once: with tslab these arrive within 200 ms of a failure and are aborted.
        { code: 'answer + 1' },
        { code: 'const wrong: string = 1', stop_on_error: true },
        { code: '"aborted: queued behind a failure with stop_on_error"' },
        { code: 'answer', silent: true },
        { code: '%remote answer * 2' },
      ],
      [
        { code: 'answer + 2' },
        { code: '%remote_bogus', stop_on_error: false },
        { code: 'answer + 3', store_history: false },
      ],
    ]);
    const [value, thrown, after, typeError, aborted, silent, remote] = first!;
    expect(messageTypes(value!)).to.deep.equal(['execute_input', 'execute_result']);
    expect(messagesOf(value!, 'execute_input')[0]!.content.execution_count).to.equal(1);
    expect(value!.reply).to.include({ status: 'ok', execution_count: 1 });
    expect(plainResult(value!)).to.equal('42');

    expect(thrown!.reply).to.include({
      status: 'error',
      ename: 'RangeError',
      evalue: 'local boom',
      execution_count: 2,
    });
    expect(errorMessageOf(thrown!)).to.include({ ename: 'RangeError', evalue: 'local boom' });
    expect(errorMessageOf(thrown!).traceback[0]).to.equal('RangeError: local boom');
    expect(messageTypes(thrown!)).to.deep.equal(['execute_input', 'error']);

    // stop_on_error=false: the request right behind the failure ran.
    expect(after!.reply).to.include({ status: 'ok', execution_count: 3 });
    expect(plainResult(after!)).to.equal('43');

    // A type error, as tslab reports it (line:column - message), as the cell's error.
    expect(typeError!.reply).to.include({ status: 'error', ename: 'TSError', execution_count: 4 });
    expect(errorMessageOf(typeError!).traceback).to.deep.equal([
      "1:7 - Type 'number' is not assignable to type 'string'.",
    ]);

    // stop_on_error=true: everything already queued behind it is aborted, with no input, output or count.
    for (const result of [aborted!, silent!, remote!]) {
      expect(result.reply!.status, result.code).to.equal('aborted');
      expect(messageTypes(result), result.code).to.deep.equal([]);
    }

    // Sent after the failure was answered: runs again, counts resume after the last counted request.
    const [again, unknown, notStored] = second!;
    expect(again!.reply).to.include({ status: 'ok', execution_count: 5 });
    expect(plainResult(again!)).to.equal('44');
    expect(unknown!.reply).to.include({ status: 'error', ename: 'UsageError' });
    expect(errorMessageOf(unknown!).evalue).to.include('unknown magic %remote_bogus');
    expect(notStored!.reply).to.include({ status: 'ok', execution_count: 6 });
    expect(plainResult(notStored!)).to.equal('45');
  });

  it('runs %remote with the notebook’s names, assigns with the static type, and shows remote errors mapped to the cell', async () => {
    const [[root, def, call, assign, typed, cell, failing, broken, brokenAwait, brokenCell]] = (await session(
      workspace.jupyter,
      workspace.work.dir,
      [
        [
          { code: '%remote_root quickstart' },
          {
            code: 'const base = 40\nfunction inc(x: number): number {\n  if (x > 100) {\n    throw new Error(`too big: ${x}`)\n  }\n  return x + 1\n}',
          },
          { code: '%remote inc(base + 1)' },
          { code: '%remote n = Promise.resolve(inc(base))' },
          { code: 'const doubled: number = n * 2\ndoubled' },
          { code: '%%remote\nconsole.log("on the agent")\nconst xs = [1, 2, 3]\nxs.map(inc)' },
          { code: '%remote inc(base * 10)', stop_on_error: false },
          { code: '%remote n.toUpperCase()', stop_on_error: false },
          { code: '%remote await Promise.resolve(n).foo', stop_on_error: false },
          { code: '%%remote\nconst s = String(n)\ns.toFixed(1)', stop_on_error: false },
        ],
      ],
    )) as [RequestResult[]];
    expect(root!.reply!.status).to.equal('ok');
    expect(def!.reply!.status).to.equal('ok');
    expect(messageTypes(call!)).to.deep.equal(['execute_input', 'stream', 'execute_result']); // stream: "starting a private agent"
    expect(plainResult(call!)).to.equal('42');
    expect(assign!.reply!.status).to.equal('ok');
    expect(plainResult(assign!)).to.equal(undefined);
    expect(plainResult(typed!)).to.equal('82');
    expect(stdoutOf(cell!)).to.equal('on the agent\n');
    expect(plainResult(cell!)).to.equal('[ 2, 3, 4 ]');

    const remote = errorMessageOf(failing!);
    expect(remote.ename).to.equal('Error');
    expect(remote.evalue).to.equal('too big: 400');
    expect(remote.traceback[0]).to.equal('Error: too big: 400');
    // Coloured as ipykernel colours them: the name in red, each frame's location in green.
    const coloured = messagesOf(failing!, 'error')[0]!.content.traceback as string[];
    expect(coloured[0]).to.equal('\x1b[0;31mError\x1b[0m: too big: 400');
    expect(coloured[2]).to.equal('    at \x1b[0;32mIn [7]:1:9\x1b[0m');
    // Frames point at the cells: the function's cell (count 2, line 4, `new`) and the calling cell (count 7).
    expect(remote.traceback[1]).to.match(/^ +at (Object\.)?inc \(In \[2\]:4:11\)$/);
    expect(remote.traceback[2]).to.match(/^ +at In \[7\]:1:9$/);
    expect(remote.traceback.join('\n')).not.to.include('tslabRemote');

    // `n` is a number for the type checker: nothing is sent.
    expect(errorMessageOf(broken!).ename).to.equal('TSError');
    expect(errorMessageOf(broken!).evalue).to.equal("1:11 - Property 'toUpperCase' does not exist on type 'number'.");
    // Columns as the user wrote the line, not as the kernel rewrote it (an async head, an inserted `return `).
    expect(errorMessageOf(brokenAwait!).evalue).to.equal(
      "1:34 - Property 'foo' does not exist on type 'Promise<number>'.",
    );
    expect(errorMessageOf(brokenCell!).evalue).to.equal(
      "3:3 - Property 'toFixed' does not exist on type 'string'. Did you mean 'fixed'?",
    );
  });

  it('shows remote output live and in order: streams, tslab display calls on the agent, upload progress', async () => {
    // A code root big enough that its first upload takes a moment: progress shows in the cell.
    const big = path.join(workspace.work.dir, 'big-project');
    fs.mkdirSync(path.join(big, 'data'), { recursive: true });
    fs.writeFileSync(path.join(big, 'package.json'), '{"name":"big-project"}\n');
    for (let i = 0; i < 8; i++)
      fs.writeFileSync(path.join(big, 'data', `part-${i}.bin`), Buffer.alloc(6 * 1024 * 1024, i));
    const [[, display, , upload, , pickled]] = (await session(
      workspace.jupyter,
      workspace.work.dir,
      [
        [
          { code: "import * as tslab from 'tslab'" },
          {
            code:
              // The second line prints what an earlier version took for a display record: it stays text.
              "%remote (() => {\n  console.log('one')\n  console.log('\\u001b]5379;tslab-remote-display;e30=\\u0007')\n  tslab.display.html('<b>two</b>')\n  console.error('three')\n  const d = tslab.newDisplay()\n" +
              "  d.text('four')\n  d.text('five')\n  console.log('six')\n  return 7\n})()",
          },
          { code: '%remote_root big-project' },
          { code: '%remote "uploaded"' },
          { code: "const sock = require('net').createServer()" },
          { code: '%remote (() => { tslab.display.text("x"); return sock })()', stop_on_error: false },
        ],
      ],
      { env: { TSLAB_REMOTE_PROGRESS_MS: '0' } },
    )) as [RequestResult[]];
    const shown = display!.iopub
      .filter((m) => m.msg_type !== 'status' && m.msg_type !== 'execute_input')
      .map((m) => [m.msg_type, m.content.text ?? m.content.data?.['text/html'] ?? m.content.data?.['text/plain']])
      .filter(([, text]) => !String(text).startsWith('tslab-remote: ')); // notes: private agent started, no code root
    expect(shown).to.deep.equal([
      ['stream', 'one\n\u001b]5379;tslab-remote-display;e30=\u0007\n'],
      ['display_data', '<b>two</b>'],
      ['stream', 'three\n'],
      ['display_data', 'four'],
      ['update_display_data', 'five'],
      ['stream', 'six\n'],
      ['execute_result', '7'],
    ]);
    const progress = [...messagesOf(upload!, 'display_data'), ...messagesOf(upload!, 'update_display_data')].map(
      (m) => m.content.data['text/plain'] as string,
    );
    expect(progress[0]).to.match(/^uploading/);
    expect(progress.length).to.be.greaterThan(1);
    expect(progress[progress.length - 1]).to.match(/^uploaded 9 file\(s\), 48\.\d MiB to local in \d+\.\d s$/);
    expect(plainResult(upload!)).to.equal('uploaded');
    // With the display shim in the call, an unpicklable value is still named from the cell, not from the shim.
    expect(errorMessageOf(pickled!).ename).to.equal('PickleError');
    expect(errorMessageOf(pickled!).evalue).to.match(
      /^the cell → captured sock(?: → captured sock)?: net\.Server cannot be pickled/,
    );
  });

  it('completes and inspects inside %remote and %%remote cells as in any cell (tslab’s own completion)', async () => {
    const cell = '%%remote\nconst xs = [3, 1]\nxs.ma';
    const steps = await session(workspace.jupyter, workspace.work.dir, [
      [{ code: "import { train, callCount } from './quickstart/src/model'" }],
      { complete: { code: '%remote --timeout 5 tra', cursor_pos: 23 } },
      { complete: { code: cell, cursor_pos: cell.length } },
      { inspect: { code: '%remote train(0.1)', cursor_pos: 10 } },
      { complete: { code: 'callC', cursor_pos: 5 } },
    ]);
    const [line, body, inspect, plainCell] = steps.slice(1).map((s) => s[0]!.reply!);
    expect(line!.matches).to.include('train');
    expect([line!.cursor_start, line!.cursor_end]).to.deep.equal([20, 23]);
    expect(body!.matches).to.include('map');
    expect([body!.cursor_start, body!.cursor_end]).to.deep.equal([cell.length - 2, cell.length]);
    expect(inspect!.found).to.equal(true);
    expect(inspect!.data['text/plain']).to.include('train(rate: number, epochs?: number): TrainReport');
    expect(plainCell!.matches).to.include('callCount');
  });

  it('keeps module state across an unrelated write and a notebook save; %remote_reload starts a module afresh', async () => {
    const call = '%remote (train(0.5, 1), callCount())';
    const [[, , first, second, , kept, reload, fresh]] = (await session(workspace.jupyter, workspace.work.dir, [
      [
        { code: '%remote_root quickstart' },
        { code: "import { train, callCount } from './quickstart/src/model'" },
        { code: call },
        { code: call },
        {
          code: "require('fs').writeFileSync('quickstart/notes-reload.txt', 'x'); require('fs').writeFileSync('quickstart/saved.ipynb', '{}')",
        },
        { code: call },
        { code: '%remote_reload quickstart/src/model.ts' },
        { code: call },
        { code: "require('fs').rmSync('quickstart/notes-reload.txt'); require('fs').rmSync('quickstart/saved.ipynb')" },
      ],
    ])) as [RequestResult[]];
    expect(
      [plainResult(first!), plainResult(second!), plainResult(kept!)],
      'the module kept its count across the write and the save',
    ).to.deep.equal(['1', '2', '3']);
    expect(stdoutOf(reload!)).to.equal('dropped 1 module(s): src/model.ts; the next call loads them afresh on local\n');
    expect(plainResult(fresh!)).to.equal('1');
  });

  it('ends its private agent with the kernel', async () => {
    const [[local, info]] = (await session(workspace.jupyter, workspace.work.dir, [
      [{ code: '%remote_agent --local' }, { code: '%remote_agent' }],
    ])) as [RequestResult[]];
    expect(stdoutOf(local!)).to.include('connected to local');
    const pid = Number(/agent pid (\d+)/.exec(stdoutOf(info!))?.[1]);
    expect(pid).to.be.greaterThan(0);
    await waitFor(() => !isAlive(pid), 15_000, `the private agent (pid ${pid}) to end with its kernel`);
  });

  it('reports an unreachable agent, an agent that dies mid-call and a refused key clearly, and stays usable', async () => {
    const agent = await startAgent();
    const keys = (await tmp.dir({ unsafeCleanup: true, prefix: 'keys-' })).path;
    writeKeyPair(keys, 'agent');
    writeKeyPair(keys, 'kernel');
    const secured = await startAgent({ args: ['--keys', keys, '--allow', path.join(keys, 'kernel.pub')] });
    const wrongKeys = (await tmp.dir({ unsafeCleanup: true, prefix: 'wrong-keys-' })).path;
    writeKeyPair(wrongKeys, 'kernel');
    fs.copyFileSync(path.join(keys, 'agent.pub'), path.join(wrongKeys, 'agent.pub'));
    // A code root over the 100 MB snapshot limit (a sparse file: no disk used).
    const huge = (await tmp.dir({ unsafeCleanup: true, prefix: 'huge-root-' })).path;
    fs.writeFileSync(path.join(huge, 'weights.bin'), '');
    fs.truncateSync(path.join(huge, 'weights.bin'), 101 * 1024 * 1024);
    try {
      const steps = await session(workspace.jupyter, workspace.work.dir, [
        [
          { code: '%remote_root quickstart' },
          { code: `%remote_root ${huge}`, stop_on_error: false },
          { code: '%remote_agent tcp://127.0.0.1:9 --key ~/nonexistent-tslab-remote-keys', stop_on_error: false },
          { code: '%remote_agent tcp://127.0.0.1:9 --name nowhere', stop_on_error: false },
          { code: `%remote_agent ${agent.endpoint} --name doomed` },
          { code: '%remote process.pid' },
        ],
        {
          send: [
            // Kills the agent (SIGKILL: no goodbye) while the next cell's call runs.
            { code: `setTimeout(() => process.kill(${agent.process.pid}, 'SIGKILL'), 1500)\nundefined` },
            { code: '%remote new Promise((resolve) => setTimeout(resolve, 60_000))' },
          ],
          timeout: 60,
        },
        [
          { code: `%remote_agent ${secured.endpoint} --key ${wrongKeys}`, stop_on_error: false },
          { code: `%remote_agent ${secured.endpoint} --key ${keys} --name secured` },
          { code: '%remote 6 * 7' },
          { code: '%remote_agent --local' },
          { code: '%remote "usable"' },
        ],
      ]);
      const [, badRoot, badKey, nowhere, doomed, agentPid] = steps[0]!;
      // A root that cannot be snapshotted is refused and not kept: the calls below still ship quickstart.
      expect(errorMessageOf(badRoot!).ename).to.equal('UsageError');
      expect(errorMessageOf(badRoot!).evalue).to.include(`cannot snapshot ${huge} as the code root`);
      // `~/` is the home directory, as in a shell.
      expect(errorMessageOf(badKey!).evalue).to.include(
        `--key ${path.join(os.homedir(), 'nonexistent-tslab-remote-keys')} does not exist`,
      );
      expect(errorMessageOf(nowhere!).ename).to.equal('RemoteError[AGENT_UNREACHABLE]');
      expect(errorMessageOf(nowhere!).evalue).to.include('tcp://127.0.0.1:9');
      expect(stdoutOf(doomed!)).to.include(`connected to doomed (${agent.endpoint})`);
      expect(Number(plainResult(agentPid!))).to.be.greaterThan(0);
      // The agent was killed while the call ran: the heartbeat turns the silence into an error, not a hang.
      const [, died] = steps[1]!;
      expect(died!.reply!.status).to.equal('error');
      expect(errorMessageOf(died!).ename).to.equal('RemoteError[AGENT_UNREACHABLE]');
      expect(errorMessageOf(died!).evalue).to.include(agent.endpoint);

      const [refused, connected, secure, local, usable] = steps[2]!;
      expect(errorMessageOf(refused!).ename).to.equal('RemoteError[AUTH_FAILED]');
      expect(stdoutOf(connected!)).to.include('connected to secured');
      expect(plainResult(secure!)).to.equal('42');
      expect(local!.reply!.status).to.equal('ok');
      expect(plainResult(usable!)).to.equal('usable');
    } finally {
      await agent.stop();
      await secured.stop();
    }
  });
});
