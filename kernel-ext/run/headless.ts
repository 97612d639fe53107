// `tslab-remote run NOTEBOOK.ipynb`: executes a notebook through the kernel over the Jupyter protocol, headless, and
// prints each cell's outputs. It is a small Jupyter client written in Node on zeromq (the package the kernel uses
// already), so the batch mode needs no Python and no Jupyter install: a GPU host or a CI runner needs only Node.
// It behaves like nbclient: cells run in order with stop_on_error, a cell tagged `raises-exception` may fail,
// outputs (streams merged, display updates applied) are written back to the notebook with --output. A cell past the
// timeout, or a stop request (Ctrl-C), is interrupted the way Jupyter interrupts (SIGINT to the kernel's process
// group) and ends the run, keeping every output received so far.

import * as path from 'node:path';

import { INTERRUPT_GRACE_MS, StopReason } from './cell-deadlines';
import { ExecuteResult, KernelConnection } from './kernel-connection';
import { UpdatePrinter } from './update-printer';
import { cellLabel, cellSource, Notebook, NotebookOutput, readNotebook } from './notebook';
import { withoutColour } from '../kernel/traceback-colour';

export { Notebook, NotebookCell, NotebookOutput, RunError } from './notebook';

export interface RunOptions {
  /** TSLAB_REMOTE_AGENT for the kernel. */
  agent?: string;
  /** Keep going after a failed cell (every cell may raise). */
  allowErrors?: boolean;
  /** Per cell; default none. A cell still running then is interrupted and stops the run. */
  cellTimeoutMs?: number;
  /** Aborting it (Ctrl-C) interrupts the running cell and stops the run. */
  signal?: AbortSignal;
  /** Aborting it (a second Ctrl-C) kills the kernel at once, without waiting for the interrupted cell to end. */
  killSignal?: AbortSignal;
  /** Printing as cells run; default: to this process's stdout/stderr. */
  print?: (stream: 'stdout' | 'stderr', text: string) => void;
  /** Extra environment for the kernel. */
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  notebook: Notebook;
  /** The first cell whose error stopped the run, if any. */
  failed?: { index: number; ename: string; evalue: string };
  /** Why the run was cut short: a cell ran past cellTimeoutMs, or `signal` aborted (between cells: no index). */
  stopped?: { why: StopReason; index?: number; message: string };
}

/** Executes every code cell of the notebook file in a fresh kernel started in the notebook's directory. */
export async function runNotebook(file: string, options: RunOptions = {}): Promise<RunResult> {
  const notebook = readNotebook(file);
  const print =
    options.print ?? ((stream, text) => (stream === 'stdout' ? process.stdout : process.stderr).write(text));
  const printer = new UpdatePrinter(print, options.print === undefined && Boolean(process.stdout.isTTY));
  const kernel = await KernelConnection.start(path.dirname(path.resolve(file)), options);
  let failed: RunResult['failed'];
  let stopped: RunResult['stopped'];
  try {
    for (const [index, cell] of notebook.cells.entries()) {
      if (cell.cell_type !== 'code') continue;
      if (options.signal?.aborted) {
        stopped = { why: 'signal', message: 'stopped between cells' };
        break;
      }
      const source = cellSource(cell);
      cell.outputs = [];
      cell.execution_count = null;
      if (source.trim() === '') continue;
      const mayRaise = options.allowErrors || (cell.metadata.tags ?? []).includes('raises-exception');
      const result = await kernel.execute(
        source,
        { stopOnError: !mayRaise, timeoutMs: options.cellTimeoutMs, signal: options.signal },
        (output, display) => {
          if (display?.update && output.output_type === 'display_data')
            printer.updated(display.displayId, `${displayText(output.data)}\n`);
          else printOutput(output, (stream, text) => printer.printed(stream, text, display?.displayId));
        },
        (count) => printer.printed('stdout', `\nIn [${count}]: ${source.split('\n').join('\n   ...: ')}\n`),
      );
      cell.execution_count = result.executionCount;
      cell.outputs = result.outputs;
      if (result.stopped) {
        stopped = stopOf(
          result,
          cellLabel(cell, index),
          index,
          options.cellTimeoutMs,
          options.killSignal?.aborted ?? false,
        );
        // The kernel's own error says the cell was interrupted; ours says why a timeout did, or what the kernel could not.
        if (result.stopped === 'timeout' || unended(result.status, false))
          cell.outputs.push(stopError(result.stopped, stopped.message));
        break;
      }
      if (result.error && (result.status === 'died' || !mayRaise)) {
        failed = { index, ename: result.error.ename, evalue: result.error.evalue };
        break;
      }
    }
  } finally {
    await kernel.shutdown();
  }
  notebook.metadata.kernelspec = { name: 'tslab-remote', display_name: 'TypeScript (remote)', language: 'typescript' };
  return { notebook, ...(failed ? { failed } : {}), ...(stopped ? { stopped } : {}) };
}

function stopOf(
  result: ExecuteResult,
  label: string,
  index: number,
  timeoutMs: number | undefined,
  killed: boolean,
): NonNullable<RunResult['stopped']> {
  const why = result.stopped!;
  const ending = unended(result.status, killed);
  const message =
    why === 'timeout'
      ? `${label} did not finish within ${(timeoutMs ?? 0) / 1000} s: interrupted it${ending}; use --timeout to allow longer`
      : `interrupted ${label}${ending}`;
  return { why, index, message };
}

/** What became of an interrupted cell the kernel did not end; '' when it did. */
function unended(status: string, killed: boolean): string {
  if (status === 'unanswered')
    return `, but it did not end within ${INTERRUPT_GRACE_MS / 1000} s, so the kernel was shut down`;
  if (status === 'died')
    return killed
      ? ', then killed the kernel before the cell ended'
      : ', and the kernel exited before it ended the cell';
  return '';
}

/** The error output that says, in the written notebook, why the cell ended. */
function stopError(why: StopReason, message: string): NotebookOutput {
  const ename = why === 'timeout' ? 'CellTimeoutError' : 'KeyboardInterrupt';
  return { output_type: 'error', ename, evalue: message, traceback: [`${ename}: ${message}`] };
}

function printOutput(output: NotebookOutput, print: (stream: 'stdout' | 'stderr', text: string) => void): void {
  switch (output.output_type) {
    case 'stream':
      print(output.name, output.text);
      return;
    case 'display_data':
      print('stdout', `${displayText(output.data)}\n`);
      return;
    case 'execute_result':
      print('stdout', `Out[${output.execution_count}]: ${displayText(output.data)}\n`);
      return;
    case 'error':
      // Coloured by the kernel; kept for a terminal, plain in a log or a pipe.
      print(
        'stderr',
        `${process.stderr.isTTY ? output.traceback.join('\n') : withoutColour(output.traceback.join('\n'))}\n`,
      );
      return;
  }
}

/** Printed outputs longer than this many lines are shortened (the notebook written with --output keeps them whole). */
const MAX_PRINTED_LINES = 30;

function displayText(data: Record<string, unknown>): string {
  const text = data['text/plain'];
  if (typeof text === 'string') {
    const lines = text.split('\n');
    if (lines.length <= MAX_PRINTED_LINES) return text;
    return [
      ...lines.slice(0, MAX_PRINTED_LINES - 5),
      `  … ${lines.length - MAX_PRINTED_LINES + 1} more lines …`,
      ...lines.slice(-4),
    ].join('\n');
  }
  const kinds = Object.keys(data);
  return `[${kinds.join(', ')}]`;
}
