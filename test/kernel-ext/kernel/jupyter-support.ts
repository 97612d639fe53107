// Driving the kernel through a real Jupyter client: Debian's jupyter_client and nbclient under /usr/bin/python3
// (test/support/jupyter-driver.py), with the kernelspec installed by `tslab-remote install --prefix` into a temp
// directory and JUPYTER_PATH / JUPYTER_DATA_DIR / JUPYTER_RUNTIME_DIR pointing there.

import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';
import { withoutColour } from '../../../kernel-ext/kernel/traceback-colour';

export const REPO = path.resolve(__dirname, '..', '..', '..', '..');
export const PYTHON = process.env.TSLAB_REMOTE_TEST_PYTHON ?? '/usr/bin/python3';
export const DRIVER = path.join(REPO, 'test', 'support', 'jupyter-driver.py');
export const CLI = path.join(REPO, 'bin', 'tslab-remote.js');
export const NOTEBOOKS = path.join(REPO, 'notebooks');

let availability: { ok: boolean; why: string } | undefined;

/** Whether jupyter_client and nbclient can be imported by PYTHON, and if not, why. */
export function jupyterAvailability(): { ok: boolean; why: string } {
  if (availability) return availability;
  if (!fs.existsSync(PYTHON)) {
    availability = { ok: false, why: `${PYTHON} does not exist` };
  } else {
    const check = spawnSync(PYTHON, [DRIVER, 'check'], { encoding: 'utf8' });
    availability = { ok: check.status === 0, why: (check.stdout + check.stderr).trim() };
  }
  return availability;
}

/**
 * Skips the calling suite when no Jupyter client is installed, saying why, except in CI (CI=true), where the tests
 * must run: there a missing client fails them.
 */
export function requireJupyter(context: Mocha.Context): void {
  const { ok, why } = jupyterAvailability();
  if (ok) return;
  const message = `the Jupyter client is missing (${why}); install it with: apt-get install -y jupyter-client python3-nbclient jupyter-nbconvert`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: these tests must run)`);
  console.log(`      skipped: ${message}`);
  context.skip();
}

export interface JupyterEnv {
  env: NodeJS.ProcessEnv;
  dir: string;
  cleanup(): Promise<void>;
}

/** Installs the kernelspec with `tslab-remote install --prefix` into a fresh temp directory. */
export async function installKernelspec(extraEnv: NodeJS.ProcessEnv = {}): Promise<JupyterEnv> {
  const dir = await tmp.dir({ unsafeCleanup: true, prefix: 'tslab-remote-jupyter-' });
  const install = spawnSync(process.execPath, [CLI, 'install', '--prefix', path.join(dir.path, 'prefix')], {
    encoding: 'utf8',
  });
  if (install.status !== 0) throw new Error(`tslab-remote install failed: ${install.stderr}`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    JUPYTER_PATH: path.join(dir.path, 'prefix', 'share', 'jupyter'),
    JUPYTER_DATA_DIR: path.join(dir.path, 'data'),
    JUPYTER_RUNTIME_DIR: path.join(dir.path, 'runtime'),
    JUPYTER_CONFIG_DIR: path.join(dir.path, 'config'),
    ...extraEnv,
  };
  delete env.TSLAB_REMOTE_AGENT;
  delete env.TSLAB_REMOTE_CODE_ROOT;
  Object.assign(env, extraEnv);
  return { env, dir: dir.path, cleanup: () => dir.cleanup() };
}

export interface IopubMessage {
  msg_type: string;
  content: Record<string, any>;
}

export interface RequestResult {
  code: string;
  reply: Record<string, any> | null;
  iopub: IopubMessage[];
  elapsed_ms: number | null;
}

export interface Request {
  code: string;
  stop_on_error?: boolean;
  silent?: boolean;
  store_history?: boolean;
}

export interface Step {
  send?: Request[];
  complete?: { code: string; cursor_pos: number };
  inspect?: { code: string; cursor_pos: number };
  /** Seconds after the requests were sent (or, with none, after the step began) to interrupt the kernel. */
  interrupt_after?: number | number[];
  /** Count interrupt_after from the first stream output holding this text instead. */
  interrupt_on_output?: string;
  timeout?: number;
}

function run(
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  timeoutMs: number,
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      [DRIVER, ...args],
      { env, cwd, timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error
          ? typeof (error as NodeJS.ErrnoException).code === 'number'
            ? Number((error as NodeJS.ErrnoException).code)
            : 1
          : 0;
        resolve({ stdout, stderr, code });
      },
    );
  });
}

/** Plays steps against a kernel started by jupyter_client's KernelManager in `cwd`. */
export async function session(
  jupyter: JupyterEnv,
  cwd: string,
  steps: (Step | Request[])[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RequestResult[][]> {
  const script = path.join(jupyter.dir, `script-${Date.now()}-${Math.random().toString(16).slice(2)}.json`);
  fs.writeFileSync(
    script,
    JSON.stringify({ cwd, steps: steps.map((step) => (Array.isArray(step) ? { send: step } : step)) }),
  );
  const result = await run(['session', script], { ...jupyter.env, ...options.env }, cwd, options.timeoutMs ?? 240_000);
  if (result.code !== 0) throw new Error(`jupyter-driver session failed (${result.code}):\n${result.stderr}`);
  return JSON.parse(result.stdout) as RequestResult[][];
}

/** Executes a notebook with nbclient; resolves with the executed notebook and the driver's exit code. */
export async function nbclient(
  jupyter: JupyterEnv,
  notebook: string,
  options: {
    allowErrors?: boolean;
    timeoutSeconds?: number;
    startAt?: string;
    killAfter?: string;
    env?: NodeJS.ProcessEnv;
    out?: string;
  } = {},
): Promise<{ notebook: ExecutedNotebook; code: number; stderr: string }> {
  const out = options.out ?? `${notebook}.out.ipynb`;
  const args = [
    'notebook',
    notebook,
    out,
    ...(options.allowErrors ? ['--allow-errors'] : []),
    '--timeout',
    String(options.timeoutSeconds ?? 300),
    ...(options.startAt !== undefined ? ['--start-at', options.startAt] : []),
    ...(options.killAfter !== undefined ? ['--kill-after', options.killAfter] : []),
  ];
  const result = await run(args, { ...jupyter.env, ...options.env }, path.dirname(notebook), 600_000);
  if (!fs.existsSync(out)) throw new Error(`nbclient wrote no notebook (${result.code}):\n${result.stderr}`);
  return {
    notebook: JSON.parse(fs.readFileSync(out, 'utf8')) as ExecutedNotebook,
    code: result.code,
    stderr: result.stderr,
  };
}

export interface ExecutedCell {
  cell_type: string;
  source: string | string[];
  metadata: { tags?: string[] };
  execution_count?: number | null;
  outputs?: ExecutedOutput[];
}

export interface ExecutedOutput {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  ename?: string;
  evalue?: string;
  traceback?: string[];
  execution_count?: number;
}

export interface ExecutedNotebook {
  cells: ExecutedCell[];
}

export function joined(text: string | string[] | undefined): string {
  return Array.isArray(text) ? text.join('') : (text ?? '');
}

export function sourceOf(cell: ExecutedCell): string {
  return joined(cell.source);
}

/** The code cell whose source starts with `start` (the first, or the n-th when several do). */
export function cellStartingWith(notebook: ExecutedNotebook, start: string, nth = 0): ExecutedCell {
  const cells = notebook.cells.filter((c) => c.cell_type === 'code' && sourceOf(c).startsWith(start));
  const cell = cells[nth];
  if (!cell) throw new Error(`no code cell starting with ${JSON.stringify(start)} (#${nth})`);
  return cell;
}

/** Everything a cell printed: streams, text/plain of results and displays, error tracebacks, one string. */
export function textOf(cell: ExecutedCell): string {
  return (cell.outputs ?? [])
    .map((o) => {
      if (o.output_type === 'stream') return joined(o.text);
      if (o.output_type === 'error')
        return `${o.ename}: ${o.evalue}\n${(o.traceback ?? []).map(withoutColour).join('\n')}\n`;
      return `${joined(o.data?.['text/plain'])}\n`;
    })
    .join('');
}

export function errorOf(cell: ExecutedCell): ExecutedOutput | undefined {
  const error = (cell.outputs ?? []).find((o) => o.output_type === 'error');
  return error && plainTraceback(error);
}

/** The kernel colours tracebacks as ipykernel does; assertions read the text. */
export function plainTraceback<T extends { traceback?: string[] }>(error: T): T {
  return { ...error, ...(error.traceback ? { traceback: error.traceback.map(withoutColour) } : {}) };
}

export function resultOf(cell: ExecutedCell): ExecutedOutput | undefined {
  return (cell.outputs ?? []).find((o) => o.output_type === 'execute_result');
}

/** Copies notebooks/ into a temp directory: running them edits files (the quickstart) and writes outputs. */
export async function copyNotebooks(): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await tmp.dir({ unsafeCleanup: true, prefix: 'tslab-remote-notebooks-' });
  fs.cpSync(NOTEBOOKS, dir.path, {
    recursive: true,
    filter: (src) => !src.includes(`${path.sep}node_modules`) && !src.endsWith('.out.ipynb'),
  });
  return { dir: dir.path, cleanup: () => dir.cleanup() };
}

export function messagesOf(result: RequestResult, type: string): IopubMessage[] {
  return result.iopub.filter((m) => m.msg_type === type);
}

/** The types of the messages a request caused on iopub, without the status ones. */
export function messageTypes(result: RequestResult): string[] {
  return result.iopub.map((m) => m.msg_type).filter((t) => t !== 'status');
}

/** The text/plain of the request's execute_result, if it had one. */
export function plainResult(result: RequestResult): string | undefined {
  return messagesOf(result, 'execute_result')[0]?.content.data['text/plain'];
}

/** All a request printed to stdout. */
export function stdoutOf(result: RequestResult): string {
  return messagesOf(result, 'stream')
    .filter((m) => m.content.name === 'stdout')
    .map((m) => m.content.text as string)
    .join('');
}

/** The request's error message (ename, evalue, traceback without colours); throws when there is none. */
export function errorMessageOf(result: RequestResult): Record<string, any> {
  const [message] = messagesOf(result, 'error');
  if (!message) throw new Error(`no error message for ${result.code}: ${JSON.stringify(result.iopub)}`);
  return plainTraceback(message.content as { traceback?: string[] });
}

/**
 * For a describe block: a kernelspec in temporary Jupyter directories and a copy of the notebooks, set up once
 * before its tests (skipped, or failing in CI, without a Jupyter client) and removed after them.
 */
export function useJupyterWorkspace(): { readonly jupyter: JupyterEnv; readonly work: { dir: string } } {
  const state: { jupyter?: JupyterEnv; work?: { dir: string; cleanup(): Promise<void> } } = {};
  before(async function () {
    requireJupyter(this);
    state.jupyter = await installKernelspec();
    state.work = await copyNotebooks();
  });
  after(async () => {
    await state.jupyter?.cleanup();
    await state.work?.cleanup();
  });
  return {
    get jupyter() {
      return state.jupyter!;
    },
    get work() {
      return state.work!;
    },
  };
}
