// The `tslab-remote` command:
//   tslab-remote install [--user | --prefix DIR] [--python PY]   register the Jupyter kernelspec "tslab-remote"
//   tslab-remote kernel --config-path FILE                       the kernel (Jupyter starts it)
//   tslab-remote run NOTEBOOK.ipynb [--agent ENDPOINT] [--output OUT.ipynb] [--allow-errors] [--timeout SECONDS]
//                                                                execute a notebook headless, print its outputs
//   tslab-remote jobs [--agent ENDPOINT] [--key DIR] [attach|cancel JOB]   detached jobs (jobs-command.ts)

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { fail, parseFlags, print, UsageError } from '../common/cli';
import { BIN as PACKAGE_BIN, PACKAGE_VERSION } from '../common/package-info';
import type { Notebook, RunResult } from './run/headless';
import { checkTslab, TslabMissingError } from './tslab-peer';
import { jobsCommand, JOBS_USAGE } from './jobs-command';

export const KERNEL_NAME = 'tslab-remote';
export const DISPLAY_NAME = 'TypeScript (remote)';
/** `run`'s exit status when a cell ran past --timeout: timeout(1)'s, distinct from a failed cell's 1. */
export const EXIT_TIMEOUT = 124;
const BIN = PACKAGE_BIN.tslabRemote;

const USAGE = `Usage: tslab-remote install [--user | --prefix DIR] [--python PY]
       tslab-remote kernel --config-path CONNECTION_FILE
       tslab-remote run NOTEBOOK.ipynb [--agent ENDPOINT] [--output OUT.ipynb] [--allow-errors] [--timeout SECONDS]
       ${JOBS_USAGE}

install   registers the Jupyter kernel "${DISPLAY_NAME}" (kernelspec ${KERNEL_NAME}); Jupyter then starts
          \`tslab-remote kernel --config-path {connection_file}\`. Where: --user (the default unless root) puts it in
          your Jupyter data directory, --prefix DIR in DIR/share/jupyter/kernels; --python PY (default python3) is
          asked where those are (jupyter_client), with Jupyter's documented defaults when it cannot say.
kernel    runs the kernel: tslab plus %remote, %%remote and the other magics (README, Magics).
run       executes the notebook's code cells in a fresh kernel started in the notebook's directory, over the
          Jupyter protocol, printing each cell's outputs; --output writes the executed notebook, also when the run
          stops early (with the outputs received so far). A cell tagged raises-exception may fail; any other
          failure stops the run. A cell still running after --timeout SECONDS is interrupted (as Jupyter's interrupt
          does: a remote call is cancelled on the agent) and stops the run, --allow-errors or not. Ctrl-C (or SIGTERM,
          SIGHUP) does the same to the running cell; a second one kills the kernel. --agent sets the kernel's
          TSLAB_REMOTE_AGENT; without it the kernel starts a private agent on this machine.
          Exit status: 0 every cell ran; 1 a cell failed, or the run did; 2 usage error; ${EXIT_TIMEOUT} a cell ran past
          --timeout; 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP.
jobs      lists your detached jobs (%remote --detach) on the agent at ENDPOINT (default TSLAB_REMOTE_AGENT), with
          the key pair in DIR (kernel.key, kernel.pub, agent.pub; default TSLAB_REMOTE_KEYS) on an agent with keys;
          attach JOB replays its output, follows it and prints its result (Ctrl-C stops watching, not the job);
          cancel JOB cancels it. JOB is a job's id or name.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'install':
        return install(rest);
      case 'kernel':
        return await kernel(rest);
      case 'run':
        return await run(rest);
      case 'jobs':
        return await jobsCommand(rest);
      case '-h':
      case '--help':
      case 'help':
        return print(USAGE);
      case '-v':
      case '--version':
        return print(PACKAGE_VERSION);
      default:
        process.stderr.write(`${command ? `unknown command ${command}\n\n` : ''}${USAGE}\n`);
        return 2;
    }
  } catch (error) {
    const report =
      error instanceof UsageError
        ? `${error.message}\n\n${USAGE}`
        : error instanceof TslabMissingError || (error instanceof Error && error.name === 'RunError')
          ? error.message
          : ((error as Error).stack ?? String(error));
    return fail('tslab-remote', report, error instanceof UsageError ? 2 : 1);
  }
}

type Options = Record<string, { type: 'string' | 'boolean'; default?: string }>;

function parse(
  args: string[],
  options: Options,
  positionals = false,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  const parsed = parseFlags({ args, options, allowPositionals: positionals, strict: true });
  return { values: parsed.values, positionals: parsed.positionals };
}

/** The kernelspec: node and this package's bin by absolute path, so it works without anything on PATH. */
export function kernelSpec(): object {
  return {
    argv: [process.execPath, BIN, 'kernel', '--config-path', '{connection_file}'],
    display_name: DISPLAY_NAME,
    language: 'typescript',
    interrupt_mode: 'signal',
    metadata: { debugger: false },
  };
}

function install(args: string[]): number {
  const { values } = parse(args, {
    user: { type: 'boolean' },
    prefix: { type: 'string' },
    python: { type: 'string', default: 'python3' },
  });
  if (values.user && values.prefix) throw new UsageError('--user and --prefix exclude each other');
  checkTslab();
  const user = Boolean(values.user) || (!values.prefix && process.getuid?.() !== 0);
  const prefix = values.prefix ? path.resolve(values.prefix as string) : undefined;
  const dir = kernelsDir(values.python as string, user, prefix);
  const target = path.join(dir, KERNEL_NAME);
  fs.mkdirSync(target, { recursive: true });
  fs.writeFileSync(path.join(target, 'kernel.json'), `${JSON.stringify(kernelSpec(), null, 2)}\n`);
  process.stdout.write(`installed kernelspec ${KERNEL_NAME} ("${DISPLAY_NAME}") in ${target}\n`);
  return 0;
}

/**
 * Where Jupyter looks for kernelspecs: asked of jupyter_client through `python` when it is there (it knows
 * JUPYTER_DATA_DIR, platform dirs and sys.prefix), else Jupyter's documented defaults.
 */
function kernelsDir(python: string, user: boolean, prefix: string | undefined): string {
  if (prefix) return path.join(prefix, 'share', 'jupyter', 'kernels');
  const script = user
    ? 'from jupyter_core.paths import jupyter_data_dir; import os; print(os.path.join(jupyter_data_dir(), "kernels"))'
    : 'from jupyter_core.paths import SYSTEM_JUPYTER_PATH; import os; print(os.path.join(SYSTEM_JUPYTER_PATH[0], "kernels"))';
  const asked = spawnSync(python, ['-c', script], { encoding: 'utf8' });
  if (asked.status === 0 && asked.stdout.trim()) return asked.stdout.trim();
  if (user) {
    const data =
      process.env.JUPYTER_DATA_DIR ||
      (process.platform === 'darwin'
        ? path.join(os.homedir(), 'Library', 'Jupyter')
        : path.join(process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share'), 'jupyter'));
    return path.join(data, 'kernels');
  }
  return path.join('/usr/local/share/jupyter', 'kernels');
}

async function kernel(args: string[]): Promise<number> {
  const { values } = parse(args, { 'config-path': { type: 'string' } });
  if (!values['config-path']) throw new UsageError('kernel needs --config-path CONNECTION_FILE');
  checkTslab();
  const { startKernel } = await import('./kernel/launcher');
  await startKernel({ configPath: values['config-path'] as string });
  return new Promise<number>(() => undefined); // the kernel lives until Jupyter shuts it down
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      agent: { type: 'string' },
      output: { type: 'string' },
      'allow-errors': { type: 'boolean' },
      timeout: { type: 'string' },
    },
    true,
  );
  if (positionals.length !== 1) throw new UsageError('run needs one NOTEBOOK.ipynb');
  const file = path.resolve(positionals[0]!);
  // A mistyped name is not a usage error: one line saying so, not the whole help.
  if (!fs.existsSync(file)) return fail('tslab-remote', `run: ${file} does not exist`, 1);
  const timeout = values.timeout !== undefined ? Number(values.timeout) : undefined;
  if (timeout !== undefined && !(timeout > 0)) throw new UsageError('--timeout needs a positive number of seconds');
  checkTslab();
  const { runNotebook } = await import('./run/headless');
  const started = Date.now();
  const stop = stopOnSignals();
  let result: RunResult;
  try {
    result = await runNotebook(file, {
      ...(values.agent ? { agent: values.agent as string } : {}),
      allowErrors: Boolean(values['allow-errors']),
      ...(timeout ? { cellTimeoutMs: timeout * 1000 } : {}),
      signal: stop.signal,
      killSignal: stop.killSignal,
    });
  } catch (error) {
    if (!stop.received) throw error;
    process.stderr.write(
      `\n${path.basename(file)}: ${stop.received}: stopped (${(error as Error).message.split('\n')[0]})\n`,
    );
    return signalStatus(stop.received);
  } finally {
    stop.dispose();
  }
  const wrote = values.output ? writeNotebook(result.notebook, values.output as string) : '';
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const name = path.basename(file);
  // A signal first: whoever sent it (a shell, a CI runner) expects its status, even if a timeout came before.
  if (stop.received) {
    process.stderr.write(
      `\n${name}: ${stop.received}: ${result.stopped ? `${result.stopped.message}; ` : ''}stopped after ${seconds} s${wrote}\n`,
    );
    return signalStatus(stop.received);
  }
  if (result.stopped?.why === 'timeout') {
    process.stderr.write(`\n${name}: ${result.stopped.message}${wrote}\n`);
    return EXIT_TIMEOUT;
  }
  if (result.failed) {
    process.stderr.write(
      `\n${name}: cell ${result.failed.index + 1} failed (${result.failed.ename}: ${result.failed.evalue}); stopped after ${seconds} s${wrote}\n`,
    );
    return 1;
  }
  process.stdout.write(`\n${name}: all cells ran in ${seconds} s${wrote}\n`);
  return 0;
}

/** Writes the executed notebook; returns "; wrote FILE" for the closing line. */
function writeNotebook(notebook: Notebook, output: string): string {
  fs.writeFileSync(path.resolve(output), `${JSON.stringify(notebook, null, 1)}\n`);
  return `; wrote ${output}`;
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * While a run lasts, SIGINT (Ctrl-C), SIGTERM and SIGHUP stop it instead of ending this process: the kernel, in a
 * process group of its own, would otherwise outlive us, and the outputs so far would be lost. The first signal
 * interrupts the running cell and stops the run; a second kills the kernel at once.
 */
function stopOnSignals(): {
  signal: AbortSignal;
  killSignal: AbortSignal;
  readonly received?: NodeJS.Signals;
  dispose(): void;
} {
  const stop = new AbortController();
  const kill = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (received) {
      process.stderr.write(`\ntslab-remote: ${signal === received ? `${signal} again` : signal}: killing the kernel\n`);
      kill.abort();
      return;
    }
    received = signal;
    process.stderr.write(
      `\ntslab-remote: ${signal}: interrupting the running cell and stopping (again to kill the kernel)\n`,
    );
    stop.abort();
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  return {
    signal: stop.signal,
    killSignal: kill.signal,
    get received() {
      return received;
    },
    dispose: () => {
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    },
  };
}

/** 128 + the signal's number, as a shell reports a process ended by it. */
function signalStatus(signal: NodeJS.Signals): number {
  return 128 + os.constants.signals[signal];
}

export function runCli(): void {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`tslab-remote: ${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
}
