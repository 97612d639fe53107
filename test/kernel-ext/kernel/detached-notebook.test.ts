// notebooks/detached-jobs.ipynb through nbclient, against an agent started apart from the kernel (as a user starts
// `remote-agent serve`): a detached job is started, the kernel is SIGKILLed, a new kernel on the same notebook lists
// the job still running, replays its output and takes its result into a typed variable; another job is cancelled.

import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { AgentProcess, startAgent } from '../../support/agent-process';
import {
  cellStartingWith,
  errorOf,
  ExecutedCell,
  ExecutedNotebook,
  joined,
  messagesOf,
  nbclient,
  resultOf,
  textOf,
  session,
  useJupyterWorkspace,
} from './jupyter-support';

const EPOCHS = 30; // 15 s: long enough to be running still when the new kernel asks

/** The cell's stdout and stderr, without its status lines (elapsed time). */
function streamText(cell: ExecutedCell): string {
  return (cell.outputs ?? [])
    .filter((o) => o.output_type === 'stream')
    .map((o) => joined(o.text))
    .join('');
}

function expectNoErrors(notebook: ExecutedNotebook): void {
  for (const cell of notebook.cells.filter((c) => c.cell_type === 'code' && c.execution_count != null)) {
    const error = errorOf(cell);
    expect(error, `${joined(cell.source)}: ${error?.ename}: ${error?.evalue}`).to.equal(undefined);
  }
}

describe('detached jobs in a notebook, through nbclient', function () {
  this.timeout(240_000);
  const workspace = useJupyterWorkspace();
  let agent: AgentProcess | undefined;

  before(async () => {
    agent = await startAgent();
  });

  after(async () => {
    await agent?.stop();
  });

  it('keeps a job running across a SIGKILLed kernel; a new kernel lists it, replays its output and takes its result', async () => {
    const file = path.join(workspace.work.dir, 'detached-jobs.ipynb');
    const env = { TSLAB_REMOTE_AGENT: agent!.endpoint, TRAIN_EPOCHS: String(EPOCHS) };

    const first = await nbclient(workspace.jupyter, file, {
      env,
      killAfter: '%remote --detach --name long-run',
      out: `${file}.1.ipynb`,
    });
    expect(first.code, first.stderr).to.equal(0);
    expectNoErrors(first.notebook);
    const started = textOf(cellStartingWith(first.notebook, '%remote --detach --name long-run'));
    expect(started).to.match(
      /^detached job [0-9a-f]{8} \(long-run\) (queued|running) on tcp:\/\/127\.0\.0\.1:\d+\. It runs on if this notebook closes/,
    );
    const id = /detached job ([0-9a-f]{8})/.exec(started)![1]!;
    // The kernel was killed right after that cell: the cells below did not run.
    expect(cellStartingWith(first.notebook, '%remote_jobs').execution_count ?? null).to.equal(null);

    const second = await nbclient(workspace.jupyter, file, {
      env,
      startAt: 'import type { TrainReport }',
      out: `${file}.2.ipynb`,
    });
    expect(second.code, second.stderr).to.equal(0);
    expectNoErrors(second.notebook);
    expect(cellStartingWith(second.notebook, '%remote --detach --name long-run').execution_count ?? null).to.equal(
      null,
    );
    const listed = textOf(cellStartingWith(second.notebook, '%remote_jobs'));
    expect(listed).to.match(/^id +name +state +started +elapsed +agent +worker +last output\n/);
    expect(listed).to.match(
      new RegExp(
        `^${id} +long-run +running +\\d\\d:\\d\\d:\\d\\d +\\d+s +tcp://127\\.0\\.0\\.1:\\d+ +\\d+ *(epoch \\d+ of ${EPOCHS})?$`,
        'm',
      ),
    );

    const attachCell = cellStartingWith(second.notebook, '%remote_attach long-run');
    const attached = streamText(attachCell);
    // The elapsed time of the job, shown while it is followed, ends as the time it ran.
    expect(textOf(attachCell)).to.match(/ran on tcp:\/\/127\.0\.0\.1:\d+ in \d+\.\d s\n$/);
    const epochs = Array.from({ length: EPOCHS }, (_, i) => `epoch ${i + 1} of ${EPOCHS}\n`).join('');
    expect(attached).to.match(
      new RegExp(`^job ${id} \\(long-run\\) on tcp://127\\.0\\.0\\.1:\\d+: running, \\d+s so far; its output:\\n`),
    );
    // Every line once and in order: replayed from the agent's disk, then live.
    expect(attached).to.include(`${epochs}epoch 1: loss 0.5000\nepoch 2: loss 0.2500\n`);
    expect(attached.split('epoch 1 of').length).to.equal(2);
    expect(textOf(cellStartingWith(second.notebook, 'report.loss'))).to.equal('0.25\n');

    expect(textOf(cellStartingWith(second.notebook, '%remote_cancel spare'))).to.match(
      /^cancelling job [0-9a-f]{8} \(spare\) on /,
    );
    const after = textOf(cellStartingWith(second.notebook, '%remote_jobs', 1));
    expect(after).to.match(new RegExp(`^${id} +long-run +done `, 'm'));
    expect(after).to.match(/^[0-9a-f]{8} +spare +(running|cancelled) /m);
    expect(resultOf(cellStartingWith(second.notebook, '%remote_attach long-run'))).to.equal(undefined);
  });

  it('refuses a detached job on the private agent, and the job magics with no agent, saying what to do', async () => {
    const file = path.join(workspace.work.dir, 'no-agent.ipynb');
    const cells = ['%remote_jobs', '%remote --detach 1 + 1', '%remote 1 + 1'];
    fs.writeFileSync(
      file,
      JSON.stringify({
        cells: cells.map((source) => ({ cell_type: 'code', source, metadata: {}, outputs: [], execution_count: null })),
        metadata: {},
        nbformat: 4,
        nbformat_minor: 4,
      }),
    );
    const { notebook, code, stderr } = await nbclient(workspace.jupyter, file, {
      allowErrors: true,
      env: { TSLAB_REMOTE_AGENT: '' },
    });
    expect(code, stderr).to.equal(0);
    const noAgent = errorOf(cellStartingWith(notebook, '%remote_jobs'))!;
    expect(noAgent.ename).to.equal('UsageError');
    expect(noAgent.evalue).to.include('no agent is connected');
    const refused = errorOf(cellStartingWith(notebook, '%remote --detach'))!;
    expect(refused.ename).to.equal('UsageError');
    expect(refused.traceback!.join('\n')).to.include('`npx remote-agent serve` in a terminal');
    expect(textOf(cellStartingWith(notebook, '%remote 1 + 1'))).to.match(/\n2\n$/);
  });

  it('stops watching at an interrupt of %remote_attach, and the job goes on', async () => {
    const steps = await session(workspace.jupyter, workspace.work.dir, [
      [
        { code: `%remote_agent ${agent!.endpoint}` },
        // Ticks until cancelled: the interrupt comes once the attach has shown a tick.
        {
          code: "%remote --detach --name ticker (async () => { for (;;) { console.log('tick'); await new Promise((r) => setTimeout(r, 100)) } })()",
        },
      ],
      { send: [{ code: '%remote_attach ticker' }], interrupt_on_output: 'tick', interrupt_after: 0.3 },
      [{ code: '%remote_jobs' }, { code: '%remote_cancel ticker' }],
    ]);
    const interrupted = messagesOf(steps[1]![0]!, 'error')[0]!.content;
    expect(interrupted.ename).to.equal('KeyboardInterrupt');
    expect(interrupted.evalue).to.match(/stopped watching job \w+ \(ticker\); it goes on on .*%remote_attach ticker/);
    const [jobs, cancel] = steps[2]!;
    const listing =
      messagesOf(jobs!, 'stream')
        .map((m) => String(m.content.text))
        .join('') +
      messagesOf(jobs!, 'execute_result')
        .map((m) => joined(m.content.data['text/plain'] as string))
        .join('');
    expect(listing).to.match(/ticker +running/);
    expect(cancel!.reply!.status).to.equal('ok');
  });
});
