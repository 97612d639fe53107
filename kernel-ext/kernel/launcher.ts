// The kernel process: tslab's pieces, built as tslab's own startKernel (dist/main.js) builds them — a converter
// set, `createExecutor`, `JupyterHandlerImpl`, `ZmqServer` — with execution wrapped for the magics and the Jupyter
// protocol fixes (server.ts). Completion, inspection, is_complete, display and the cells themselves are tslab's.

import { PACKAGE_VERSION as KERNEL_VERSION } from '../../common/package-info';
import { JupyterHandlerImpl } from 'tslab/dist/jupyter';

import { hideDynamicImportWarning } from '../../pickle/dynamic-import';
import { warmPickler } from '../client/capture';

import { CellRunner, ConvertRecorder } from './cells';
import { RemoteRunner } from './remote';
import { ExecutionQueue, KernelServer } from './server';
import { CellHistory } from './cell-history';
import { converterModule, Converter, ConverterSet, executorModule, tslabVersion } from './tslab-parts';

export interface KernelOptions {
  /** The Jupyter connection file. */
  configPath: string;
  /** The notebook's directory (Jupyter starts the kernel there); default the current directory. */
  notebookDir?: string;
}

export interface RunningKernel {
  server: KernelServer;
  runner: RemoteRunner;
  /** Ends agents and sockets; resolves when done. */
  shutdown(): Promise<void>;
}

/** tslab's ConverterSetImpl (not exported by tslab): converters created on first use, closed together. */
class ConverterSetImpl implements ConverterSet {
  private nodeConverter?: Converter;
  private browserConverter?: Converter;

  constructor(private readonly recorder: ConvertRecorder) {}

  get node(): Converter {
    this.nodeConverter ??= this.recorder.wrap(converterModule.createConverter({ isJS: false, isBrowser: false }));
    return this.nodeConverter;
  }

  get browser(): Converter {
    this.browserConverter ??= converterModule.createConverter({ isJS: false, isBrowser: true });
    return this.browserConverter;
  }

  close(): void {
    this.nodeConverter?.close();
    this.browserConverter?.close();
  }
}

export async function startKernel(options: KernelOptions): Promise<RunningKernel> {
  hideDynamicImportWarning(); // unpickling (stack mapping) compiles with it, and the user did not ask for it
  const notebookDir = options.notebookDir ?? process.cwd();
  const recorder = new ConvertRecorder();
  const convs = new ConverterSetImpl(recorder);
  void convs.node; // warm the converter, as tslab does: the first cell would otherwise take a second longer
  warmPickler(); // and the pickler: the first %remote would otherwise wait for its parser and scope probe to start
  const runner = new RemoteRunner(notebookDir);
  const cells = new CellRunner(recorder, runner, new CellHistory());
  const executor = executorModule.createExecutor(process.cwd(), convs, cells.console);
  cells.executor = executor;
  const queue = new ExecutionQueue(cells);
  const handler = new JupyterHandlerImpl(executor, false);
  const server = new KernelServer(handler, options.configPath, queue, {
    implementation: 'tslab-remote',
    implementation_version: KERNEL_VERSION,
    banner: `TypeScript (remote): tslab ${tslabVersion} with %remote, %%remote, %remote_agent and %remote_root`,
  });

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    shuttingDown ??= (async () => {
      const forced = setTimeout(() => process.exit(0), 10_000);
      forced.unref();
      await runner.close().catch(() => undefined);
      clearTimeout(forced);
    })();
    return shuttingDown;
  };

  // Jupyter's interrupt: tslab's own (stops a running or awaiting cell) and ours (cancels the remote call).
  process.on('SIGINT', () => {
    executor.interrupt();
    runner.interrupt();
  });
  process.on('SIGTERM', () => {
    void shutdown().then(() => process.exit(0));
  });
  process.on('uncaughtException', (err) => {
    console.error('UncaughtException:', err);
  });
  process.on('unhandledRejection', (reason) => {
    console.error('UnhandledPromiseRejection:', reason);
  });
  watchParent(() => void shutdown().then(() => process.exit(0)));
  server.whenClosed(() => {
    queue.restoreStdio();
    void shutdown().then(() => process.exit(0));
  });
  await server.init();
  return { server, runner, shutdown };
}

/**
 * Like ipykernel's parent poller: when started by a Jupyter client (which sets JPY_PARENT_PID), a kernel whose
 * parent died without shutting it down (a crashed server, a killed `tslab-remote run`) is re-parented; it then ends
 * itself, and its private agents with it, instead of lingering.
 */
function watchParent(onGone: () => void): void {
  if (!process.env.JPY_PARENT_PID) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    console.error(`tslab-remote kernel: parent process ${parent} is gone; shutting down`);
    onGone();
  }, PARENT_POLL_MS);
  timer.unref();
}

const PARENT_POLL_MS = 1_000;
