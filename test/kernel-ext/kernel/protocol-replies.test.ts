// Requests tslab does not know, through a real Jupyter client: history and comm requests answered as the messaging
// spec says for a kernel with no history and no comm targets, and an orderly shutdown, all without a word on the
// kernel's stderr (which the Jupyter client passes on: the server's log, nbconvert's and `jupyter console`'s output).

import { expect } from 'chai';
import { execFile } from 'node:child_process';

import { DRIVER, IopubMessage, PYTHON, session, useJupyterWorkspace } from './jupyter-support';

interface Answer {
  reply: { msg_type: string; content: Record<string, unknown> } | null;
  iopub: { msg_type: string; content: Record<string, unknown> }[];
}

describe('kernel: history, comm requests and shutdown through a real Jupyter client', function () {
  this.timeout(180_000);
  const workspace = useJupyterWorkspace();

  it('answers them as the spec says, and shuts down quietly', async () => {
    const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number }>((resolve) => {
      execFile(
        PYTHON,
        [DRIVER, 'protocol'],
        { env: workspace.jupyter.env, cwd: workspace.work.dir, timeout: 150_000 },
        (error, out, err) => resolve({ stdout: out, stderr: err, code: error ? 1 : 0 }),
      );
    });
    expect(code, stderr).to.equal(0);
    const answers = JSON.parse(stdout) as Record<string, Answer>;
    expect(answers.history_request!.reply).to.deep.equal({
      msg_type: 'history_reply',
      content: { status: 'ok', history: [] },
    });
    expect(answers.comm_info_request!.reply).to.deep.equal({
      msg_type: 'comm_info_reply',
      content: { status: 'ok', comms: {} },
    });
    // No target of that name: the comm is closed at once, on iopub.
    const closing = answers.comm_open!.iopub.filter((m) => m.msg_type === 'comm_close');
    expect(closing.map((m) => m.content.comm_id)).to.deep.equal(['c0ffee']);
    for (const type of ['comm_open', 'comm_msg', 'comm_close']) {
      expect(answers[type]!.reply, `${type} has no reply`).to.equal(null);
      expect(answers[type]!.iopub.map((m) => m.msg_type).filter((t) => t === 'status')).to.deep.equal([
        'status',
        'status',
      ]);
    }
    expect(stderr).not.to.include('unknown msg_type');
    expect(stderr).not.to.include('was not sent');
  });
});

describe('kernel: a local cell error names the cell as remote ones do', function () {
  this.timeout(180_000);
  const workspace = useJupyterWorkspace();

  it('shows the failing line of the cell as In [N]:line:col, not evalmachine.<anonymous>', async () => {
    const steps = await session(workspace.jupyter, workspace.work.dir, [
      [{ code: '1' }, { code: 'const k: any = null\nconst n = 2\nk.foo' }],
    ]);
    const failing = steps[0]![1]!;
    const error = failing.iopub.find((m: IopubMessage) => m.msg_type === 'error')!.content as { traceback: string[] };
    const frames = error.traceback.filter((line) => /^\s+at /.test(line));
    expect(frames.at(-1), error.traceback.join('\n')).to.match(/In \[2\]:3:\d+/);
    expect(error.traceback.join('\n')).not.to.include('evalmachine');
  });
});
