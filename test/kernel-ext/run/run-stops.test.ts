// `tslab-remote run` ending a cell past --timeout or on Ctrl-C, and a kernel that dies: a message naming the cell,
// the partial notebook written, no process left, its exit status.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { connect } from '../../../kernel-ext/client/agent-client';
import { INTERRUPT_GRACE_MS } from '../../../kernel-ext/run/cell-deadlines';
import { KernelConnection } from '../../../kernel-ext/run/kernel-connection';
import { AgentProcess, isAlive, startAgent, waitFor } from '../../support/agent-process';
import { CLI, ExecutedNotebook, textOf } from '../kernel/jupyter-support';

/** `tslab-remote run` as a shell runs a job: in a process group of its own, so a SIGINT to the group is a Ctrl-C. */
interface RunJob {
  readonly stdout: string;
  readonly stderr: string;
  /** Signals the job's process group, as the terminal does. */
  signal(signal: NodeJS.Signals): void;
  /** The exit code; fails, killing the job, if it has not ended within `limitMs`. */
  ended(limitMs: number): Promise<number | null>;
}

function startRun(args: string[], tmpdir?: string): RunJob {
  const env: NodeJS.ProcessEnv = { ...process.env, ...(tmpdir ? { TMPDIR: tmpdir } : {}) };
  delete env.TSLAB_REMOTE_AGENT;
  const child = spawn(process.execPath, [CLI, 'run', ...args], { env, detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const signal = (name: NodeJS.Signals): void => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, name);
  };
  return {
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    signal,
    async ended(limitMs) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), limitMs)));
      const code = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (code !== 'late') return code;
      signal('SIGKILL');
      throw new Error(
        `tslab-remote run did not end within ${limitMs / 1000} s; stdout:\n${stdout}\nstderr:\n${stderr}`,
      );
    },
  };
}

function notebookOf(cells: { markdown?: string; code?: string }[]): object {
  return {
    cells: cells.map((cell) =>
      cell.markdown !== undefined
        ? { cell_type: 'markdown', source: cell.markdown, metadata: {} }
        : { cell_type: 'code', source: cell.code, metadata: {}, outputs: [], execution_count: null },
    ),
    metadata: {},
    nbformat: 4,
    nbformat_minor: 5,
  };
}

function pidIn(text: string, label: string): number {
  const pid = Number(new RegExp(`${label} (\\d+)`).exec(text)?.[1]);
  if (!(pid > 0)) throw new Error(`no "${label} PID" in:\n${text}`);
  return pid;
}

/**
 * A cell the kernel's interrupt cannot end: it takes SIGINT away from the kernel (a no-op, not death), then waits.
 * After an await: while a cell runs synchronously, Node's vm (breakOnSigint) holds the listeners aside.
 */
const IGNORES_INTERRUPTS = [
  'await null // leave the synchronous part first',
  "process.removeAllListeners('SIGINT')",
  "process.on('SIGINT', () => undefined)",
  "console.log('ignoring interrupts')",
  'await new Promise((resolve) => setTimeout(resolve, 600_000))',
].join('\n');

describe('tslab-remote run: cells past --timeout, Ctrl-C, a kernel that dies', function () {
  this.timeout(300_000);
  // The slow cells wait ten minutes: a run that ends within RUN_LIMIT_MS was cut short by the timeout or the signal.
  const RUN_LIMIT_MS = 150_000;
  // Generous: on a loaded machine the first cells (tslab's first compile, connecting to the agent) must fit in it.
  const TIMEOUT_S = 10;
  let dir: tmp.DirectoryResult;
  let agent: AgentProcess | undefined;
  const pids: number[] = [];

  beforeEach(async () => {
    dir = await tmp.dir({ unsafeCleanup: true, prefix: 'tslab-remote-run-' });
  });
  afterEach(async () => {
    for (const pid of pids.splice(0)) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await agent?.stop();
    agent = undefined;
    await dir.cleanup();
  });

  function write(name: string, cells: { markdown?: string; code?: string }[]): string {
    const file = path.join(dir.path, name);
    fs.writeFileSync(file, JSON.stringify(notebookOf(cells)));
    return file;
  }

  it('interrupts a remote cell past --timeout: names it, cancels the call on the agent, writes the partial notebook, exits 124', async () => {
    agent = await startAgent();
    const file = write('slow.ipynb', [
      { markdown: '# A cell that outlives --timeout' },
      { code: "const kernelPid = process.pid\nconsole.log('kernel pid', kernelPid)" },
      {
        code: "%remote (async () => {\n  console.log('started on worker', process.pid)\n  await new Promise((resolve) => setTimeout(resolve, 600_000))\n})()",
      },
      { code: "console.log('never runs')" },
    ]);
    const out = path.join(dir.path, 'out.ipynb');
    const run = startRun([file, '--agent', agent.endpoint, '--timeout', String(TIMEOUT_S), '--output', out]);
    const code = await run.ended(RUN_LIMIT_MS);
    const kernelPid = pidIn(run.stdout, 'kernel pid');
    pids.push(kernelPid);

    const message = `cell 3 (%remote (async () => {) did not finish within ${TIMEOUT_S} s: interrupted it; use --timeout to allow longer`;
    expect(code, run.stderr).to.equal(124);
    expect(run.stderr).to.include(`\nslow.ipynb: ${message}; wrote ${out}\n`);
    expect(run.stderr).not.to.match(/\n\s+at /); // no stack trace
    expect(run.stdout).to.include('started on worker').and.not.include('never runs');

    const notebook = JSON.parse(fs.readFileSync(out, 'utf8')) as ExecutedNotebook;
    expect(textOf(notebook.cells[1]!)).to.equal(`kernel pid ${kernelPid}\n`);
    const slow = notebook.cells[2]!;
    expect(slow.execution_count).to.equal(2);
    expect(textOf(slow)).to.match(/started on worker \d+\n/);
    const [interrupted, timedOut] = (slow.outputs ?? []).filter((o) => o.output_type === 'error');
    expect(interrupted, textOf(slow)).to.deep.include({ ename: 'KeyboardInterrupt' });
    expect(interrupted!.evalue).to.include('was cancelled');
    expect(timedOut).to.deep.equal({
      output_type: 'error',
      ename: 'CellTimeoutError',
      evalue: message,
      traceback: [`CellTimeoutError: ${message}`],
    });
    expect(slow.outputs!.at(-1)).to.equal(timedOut);
    expect(notebook.cells[3]).to.deep.include({ execution_count: null, outputs: [] });

    // The kernel is gone; the shared agent is not, and runs nothing for it any more.
    expect(isAlive(kernelPid)).to.equal(false);
    expect(isAlive(agent.process.pid!)).to.equal(true);
    const client = await connect(agent.endpoint);
    try {
      const { workers } = await client.status();
      expect(workers.filter((w) => w.state === 'busy' || w.queued > 0)).to.deep.equal([]);
    } finally {
      await client.close();
    }
  });

  it('shuts the kernel down when the timed-out cell ignores the interrupt, and still writes the notebook', async () => {
    const file = write('stubborn.ipynb', [
      { code: "console.log('kernel pid', process.pid)" },
      { code: IGNORES_INTERRUPTS },
    ]);
    const out = path.join(dir.path, 'out.ipynb');
    const run = startRun([file, '--timeout', String(TIMEOUT_S), '--output', out]);
    const code = await run.ended(RUN_LIMIT_MS);
    const kernelPid = pidIn(run.stdout, 'kernel pid');
    pids.push(kernelPid);

    const message =
      `cell 2 (await null // leave the synchronous part first) did not finish within ${TIMEOUT_S} s: interrupted it, but it did not end ` +
      `within ${INTERRUPT_GRACE_MS / 1000} s, so the kernel was shut down; use --timeout to allow longer`;
    expect(code, run.stderr).to.equal(124);
    expect(run.stderr).to.include(`\nstubborn.ipynb: ${message}; wrote ${out}\n`);
    const notebook = JSON.parse(fs.readFileSync(out, 'utf8')) as ExecutedNotebook;
    expect(textOf(notebook.cells[1]!)).to.equal(
      `ignoring interrupts\nCellTimeoutError: ${message}\nCellTimeoutError: ${message}\n`,
    );
    expect(isAlive(kernelPid)).to.equal(false);
  });

  it('on Ctrl-C interrupts the running cell, writes the partial notebook, shuts the kernel and its agent down, exits 130', async () => {
    const file = write('local.ipynb', [
      { code: '%remote_agent --local' },
      { code: '%remote_agent' },
      { code: "%remote console.log('worker pid', process.pid)" },
      { code: "console.log('kernel pid', process.pid)" },
      { code: "console.log('waiting')\nawait new Promise((resolve) => setTimeout(resolve, 600_000))" },
      { code: "console.log('never runs')" },
    ]);
    const out = path.join(dir.path, 'out.ipynb');
    const run = startRun([file, '--output', out]);
    await waitFor(() => run.stdout.includes('waiting\n'), RUN_LIMIT_MS, 'the run to reach the waiting cell');
    const [agentPid, workerPid, kernelPid] = [
      pidIn(run.stdout, 'agent pid'),
      pidIn(run.stdout, 'worker pid'),
      pidIn(run.stdout, 'kernel pid'),
    ];
    pids.push(kernelPid, agentPid, workerPid);
    run.signal('SIGINT');
    const code = await run.ended(RUN_LIMIT_MS);

    expect(code, run.stderr).to.equal(130);
    expect(run.stderr).to.include(
      'tslab-remote: SIGINT: interrupting the running cell and stopping (again to kill the kernel)\n',
    );
    expect(run.stderr).to.match(
      new RegExp(
        `\\nlocal\\.ipynb: SIGINT: interrupted cell 5 \\(console\\.log\\('waiting'\\)\\); stopped after [\\d.]+ s; wrote ${out}\\n`,
      ),
    );
    expect(run.stdout).not.to.include('never runs');
    const notebook = JSON.parse(fs.readFileSync(out, 'utf8')) as ExecutedNotebook;
    const waiting = notebook.cells[4]!;
    expect(waiting.execution_count).to.equal(5);
    expect(waiting.outputs![0]).to.deep.equal({ output_type: 'stream', name: 'stdout', text: 'waiting\n' });
    expect(waiting.outputs!.slice(1).map((o) => o.output_type)).to.deep.equal(['error']); // tslab's, for its interrupt
    expect(notebook.cells[5]).to.deep.include({ execution_count: null, outputs: [] });
    expect(isAlive(kernelPid), 'kernel').to.equal(false);
    expect(isAlive(agentPid), 'private agent').to.equal(false);
    await waitFor(() => !isAlive(workerPid), 15_000, `the private agent's worker (pid ${workerPid}) to end`);
  });

  it('ends the kernel and its private agent when run itself is killed (SIGKILL): the kernel watches its parent', async () => {
    const file = write('orphan.ipynb', [
      { code: '%remote_agent --local' },
      { code: '%remote_agent' },
      { code: "console.log('kernel pid', process.pid)" },
      { code: "console.log('waiting')\nawait new Promise((resolve) => setTimeout(resolve, 600_000))" },
    ]);
    // A run killed by SIGKILL cannot remove its connection file's directory: it goes in this test's temp dir.
    const run = startRun([file], dir.path);
    await waitFor(() => run.stdout.includes('waiting\n'), RUN_LIMIT_MS, 'the run to reach the waiting cell');
    const [agentPid, kernelPid] = [pidIn(run.stdout, 'agent pid'), pidIn(run.stdout, 'kernel pid')];
    pids.push(kernelPid, agentPid);
    run.signal('SIGKILL'); // no chance to stop anything: only the kernel's own watch can end it
    await run.ended(RUN_LIMIT_MS);
    await waitFor(() => !isAlive(kernelPid), 15_000, `the orphaned kernel (pid ${kernelPid}) to end itself`);
    await waitFor(() => !isAlive(agentPid), 15_000, `its private agent (pid ${agentPid}) to end`);
  });

  it('reports a cell that ends the kernel as KernelDied, even with --allow-errors, and writes the notebook', async () => {
    const file = write('dies.ipynb', [
      { code: "console.log('before')" },
      { code: "require('fs').writeSync(2, 'last words\\n') // the kernel's own stderr, its log\nprocess.exit(3)" },
      { code: "console.log('never runs')" },
    ]);
    const out = path.join(dir.path, 'out.ipynb');
    const run = startRun([file, '--allow-errors', '--output', out]);
    const code = await run.ended(RUN_LIMIT_MS);
    const died = 'the kernel exited (exit code 3) while the cell ran; the cells after it did not run';
    expect(code, run.stderr).to.equal(1);
    expect(run.stderr).to.match(
      new RegExp(
        `\\ndies\\.ipynb: cell 2 failed \\(KernelDied: ${escape(died)}\\); stopped after [\\d.]+ s; wrote ${escape(out)}\\n`,
      ),
    );
    expect(run.stderr).not.to.include('    at ');
    expect(run.stdout).not.to.include('never runs');
    const notebook = JSON.parse(fs.readFileSync(out, 'utf8')) as ExecutedNotebook;
    expect(textOf(notebook.cells[0]!)).to.equal('before\n');
    const error = notebook.cells[1]!.outputs!.find((o) => o.output_type === 'error') as {
      ename: string;
      evalue: string;
      traceback: string[];
    };
    expect(error).to.deep.include({ ename: 'KernelDied', evalue: died });
    expect(error.traceback).to.include('last words');
    expect(notebook.cells[2]).to.deep.include({ execution_count: null, outputs: [] });
  });

  it('reports KernelDied, rather than waiting forever, for a cell sent to a kernel that died after the last one', async () => {
    const kernel = await KernelConnection.start(dir.path);
    try {
      expect((await kernel.execute('1 + 1', { stopOnError: true })).status).to.equal('ok');
      process.kill(kernel.pid!, 'SIGKILL'); // killed from outside between cells (the OOM killer, say)
      await waitFor(() => !isAlive(kernel.pid!), 5_000, 'the kernel to die');
      const result = await kernel.execute('2 + 2', { stopOnError: true });
      expect(result.status).to.equal('died');
      expect(result.error?.ename).to.equal('KernelDied');
      // "before": unless this process heard of the exit only after it had sent the cell.
      expect(result.error?.evalue).to.match(
        /^the kernel exited \(signal SIGKILL\) (before the cell could run|while the cell ran); the cells after it did not run$/,
      );
    } finally {
      await kernel.shutdown();
    }
  });

  it('on a second Ctrl-C kills a kernel whose cell ignores the interrupt, writes the notebook, exits 130', async () => {
    const file = write('stubborn.ipynb', [
      { code: "console.log('kernel pid', process.pid)" },
      { code: IGNORES_INTERRUPTS },
    ]);
    const out = path.join(dir.path, 'out.ipynb');
    const run = startRun([file, '--output', out]);
    await waitFor(
      () => run.stdout.includes('ignoring interrupts\n'),
      RUN_LIMIT_MS,
      'the run to reach the stubborn cell',
    );
    const kernelPid = pidIn(run.stdout, 'kernel pid');
    pids.push(kernelPid);
    run.signal('SIGINT');
    await waitFor(
      () => run.stderr.includes('interrupting the running cell'),
      RUN_LIMIT_MS,
      'the run to take the first Ctrl-C',
    );
    run.signal('SIGINT');
    const code = await run.ended(RUN_LIMIT_MS);

    const message =
      'interrupted cell 2 (await null // leave the synchronous part first), then killed the kernel before the cell ended';
    expect(code, run.stderr).to.equal(130);
    expect(run.stderr).to.include('tslab-remote: SIGINT again: killing the kernel\n');
    expect(run.stderr).to.match(
      new RegExp(`\\nstubborn\\.ipynb: SIGINT: ${escape(message)}; stopped after [\\d.]+ s; wrote ${out}\\n`),
    );
    const notebook = JSON.parse(fs.readFileSync(out, 'utf8')) as ExecutedNotebook;
    expect(textOf(notebook.cells[1]!)).to.equal(
      `ignoring interrupts\nKeyboardInterrupt: ${message}\nKeyboardInterrupt: ${message}\n`,
    );
    expect(isAlive(kernelPid)).to.equal(false);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
