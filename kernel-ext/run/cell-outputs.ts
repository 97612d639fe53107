// One cell's outputs as its iopub messages arrive: streams merged, display updates applied to the display they
// name, clear_output honoured, the error kept; the idle status ends the cell's output.

import type { Message } from './jupyter-wire';
import type { NotebookOutput } from './notebook';

export interface CellError {
  ename: string;
  evalue: string;
  traceback: string[];
}

export class CellOutputs {
  readonly outputs: NotebookOutput[] = [];
  executionCount: number | null = null;
  error?: CellError;
  /** Resolves once the kernel reported the cell's idle status. */
  readonly idle: Promise<void>;
  private markIdle!: () => void;
  private readonly displays = new Map<string, number[]>();

  constructor(
    /** Each output as it comes; `displayId` for a display that has one, `update` when it is an update of one. */
    private readonly onOutput: (output: NotebookOutput, display?: { displayId: string; update: boolean }) => void,
    private readonly onStart: (count: number) => void,
  ) {
    this.idle = new Promise<void>((resolve) => (this.markIdle = resolve));
  }

  /** Adds an output (a stream continues the stream before it) and reports it. */
  push(output: NotebookOutput, displayId?: string): void {
    const last = this.outputs[this.outputs.length - 1];
    if (output.output_type === 'stream' && last?.output_type === 'stream' && last.name === output.name)
      last.text += output.text;
    else this.outputs.push(output);
    this.onOutput(output, displayId !== undefined ? { displayId, update: false } : undefined);
  }

  /** The cell's error, kept and shown as an output. */
  fail(error: CellError): void {
    this.error = error;
    this.push({ output_type: 'error', ...error });
  }

  /** An iopub message of the cell. */
  handle(message: Message): void {
    const c = message.content;
    switch (message.header.msg_type) {
      case 'execute_input':
        this.executionCount = c.execution_count as number;
        this.onStart(this.executionCount);
        break;
      case 'stream':
        this.push({ output_type: 'stream', name: c.name as 'stdout' | 'stderr', text: c.text as string });
        break;
      case 'display_data': {
        const output: NotebookOutput = {
          output_type: 'display_data',
          data: c.data as Record<string, unknown>,
          metadata: (c.metadata as Record<string, unknown>) ?? {},
        };
        const displayId = displayIdOf(c);
        if (displayId) this.displays.set(displayId, [...(this.displays.get(displayId) ?? []), this.outputs.length]);
        this.push(output, displayId);
        break;
      }
      case 'update_display_data':
        this.update(c);
        break;
      case 'execute_result':
        this.push({
          output_type: 'execute_result',
          execution_count: c.execution_count as number,
          data: c.data as Record<string, unknown>,
          metadata: (c.metadata as Record<string, unknown>) ?? {},
        });
        break;
      case 'error':
        this.fail({ ename: c.ename as string, evalue: c.evalue as string, traceback: c.traceback as string[] });
        break;
      case 'clear_output':
        this.outputs.length = 0;
        break;
      case 'status':
        if (c.execution_state === 'idle') this.markIdle();
        break;
    }
  }

  private update(c: Record<string, unknown>): void {
    const displayId = displayIdOf(c);
    for (const index of displayId ? (this.displays.get(displayId) ?? []) : []) {
      const target = this.outputs[index];
      if (target && target.output_type === 'display_data') {
        target.data = c.data as Record<string, unknown>;
        target.metadata = (c.metadata as Record<string, unknown>) ?? {};
      }
    }
    if (displayId && this.displays.has(displayId)) {
      this.onOutput(
        { output_type: 'display_data', data: c.data as Record<string, unknown>, metadata: {} },
        { displayId, update: true },
      );
    }
  }
}

function displayIdOf(content: Record<string, unknown>): string | undefined {
  return (content.transient as { display_id?: string } | undefined)?.display_id;
}

/** The error of a cell during which the kernel process ended, with the end of its log. */
export function kernelDied(ending: string, log: string, before: boolean): CellError {
  const when = before ? 'before the cell could run' : 'while the cell ran';
  const evalue = `the kernel exited (${ending}) ${when}; the cells after it did not run`;
  const tail = log.trim().split('\n').slice(-KERNEL_LOG_LINES);
  return {
    ename: 'KernelDied',
    evalue,
    traceback: [`KernelDied: ${evalue}`, ...(tail[0] ? ["the kernel's last log lines:", ...tail] : [])],
  };
}

const KERNEL_LOG_LINES = 20;
