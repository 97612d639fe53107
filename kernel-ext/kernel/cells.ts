// Running one cell: ordinary TypeScript through tslab's executor (exactly as tslab runs it; we only listen to the
// console the executor reports to, to turn its last value into an execute_result and its failures into an error),
// and the magics through the remote runner.

import * as util from 'node:util';

import { addAgent, clusterMagic, listPool, runOnAll } from './cluster-magics';
import { mimeBundle } from './display';
import { AGENTS_KEY, agentsDeclaration, NotebookAgents } from './pool-value';
import { CellFailure, CellIO, JupyterError } from './io';
import { Insertion, Magic, MagicSyntaxError, parseCell } from './magic';
import { assignmentSource, typedAssignmentSource } from './magic-tooling';
import { runJobsMagic } from './detached-magics';
import { RemoteRunner } from './remote';
import { CellInterrupt } from './interrupt';
import { CellHistory, CellPosition } from './cell-history';
import { withoutBreakOnSigint } from './tslab-parts';
import type { ConsoleInterface, Converter, Executor } from './tslab-parts';

/** Where the result of `%remote NAME = EXPR` waits for the assignment cell that gives it its type. */
export const RESULT_KEY = 'tslab-remote.result';

/** tslab's executor prints a type error with this format (executor.js printDiagnostics). */
const DIAGNOSTIC_FORMAT = '%s%d:%d - %s';

interface Diagnostic {
  file: string;
  line: number;
  column: number;
  message: string;
}

/** What the executor reported while it ran one source: the last value, type errors, an exception. */
class Report {
  values: unknown[] = [];
  diagnostics: Diagnostic[] = [];
  thrown: unknown[] = [];
}

/** Records what tslab's converter produced for the last source, so the kernel knows each cell's JavaScript. */
export class ConvertRecorder {
  lastOutput: string | undefined;

  wrap(converter: Converter): Converter {
    const convert = converter.convert.bind(converter);
    converter.convert = (prevDecl, src) => {
      const result = convert(prevDecl, src);
      this.lastOutput = result.output;
      return result;
    };
    return converter;
  }
}

export class CellRunner {
  private report: Report | null = null;
  executor!: Executor;
  /** Whether `agents` (the pool as a value) was declared in the notebook. */
  private agentsDeclared = false;

  /** The console tslab's executor reports to (createExecutor's third argument). */
  readonly console: ConsoleInterface = {
    log: (...args: unknown[]) => {
      if (this.report) this.report.values.push(args[0]);
      else console.log(...args);
    },
    error: (...args: unknown[]) => {
      if (!this.report) {
        console.error(...args);
        return;
      }
      if (args[0] === DIAGNOSTIC_FORMAT && args.length === 5) {
        this.report.diagnostics.push({
          file: String(args[1]),
          line: Number(args[2]),
          column: Number(args[3]),
          message: String(args[4]),
        });
      } else {
        this.report.thrown.push(args.length === 1 ? args[0] : util.format(...args));
      }
    },
  };

  constructor(
    private readonly recorder: ConvertRecorder,
    readonly runner: RemoteRunner,
    readonly history: CellHistory,
  ) {
    const agents = new NotebookAgents(runner.pool, () => runner.callSettings(this.executor.locals));
    (globalThis as unknown as Record<symbol, unknown>)[Symbol.for(AGENTS_KEY)] = agents;
  }

  /** Runs a cell; a failure throws CellFailure with the content of Jupyter's error message. */
  async run(code: string, count: number, io: CellIO, record: boolean): Promise<void> {
    const magic = parseMagic(code);
    switch (magic.kind) {
      case 'typescript': {
        const values = await this.typescript(code, count, io, record);
        const value = values[values.length - 1];
        if (values.length > 0) io.result(mimeBundle(value));
        return;
      }
      case 'remote':
      case 'remote-cell':
        await this.runner.interruptible((cell) => this.remote(magic, count, io, record, cell));
        return;
      case 'agent':
        // Once the pool has agents, %remote_agent alone lists them.
        if (!magic.endpoint && !magic.local && this.runner.pool.size > 0)
          await this.runner.interruptible((cell) => listPool(this.runner, io, cell));
        else await this.runner.interruptible((cell) => this.runner.connectAgent(magic, io, cell));
        return;
      case 'agent-add':
        await this.runner.interruptible((cell) => addAgent(this.runner, magic, io, cell));
        await this.declareAgents(count, io);
        return;
      case 'cluster':
        await this.runner.interruptible((cell) => clusterMagic(this.runner, magic, io, cell));
        await this.declareAgents(count, io);
        return;
      case 'root':
        await this.runner.interruptible((cell) => this.runner.setRoot(magic.dir, io, cell));
        return;
      case 'reload':
        await this.runner.interruptible((cell) => this.runner.reload(magic.files, io, cell));
        return;
      case 'jobs':
      case 'cancel':
        await this.runner.interruptible((cell) => runJobsMagic(this.runner, magic, io, cell));
        return;
      case 'attach': {
        const value = await this.runner.interruptible((cell) => runJobsMagic(this.runner, magic, io, cell));
        if (magic.assign)
          await this.assignValue(
            typedAssignmentSource(magic.assign.name, magic.assign.type ?? 'any', RESULT_KEY),
            value,
            count,
            io,
          );
        else if (value !== undefined && value !== null) io.result(mimeBundle(value));
        return;
      }
    }
  }

  private async remote(
    magic: Extract<Magic, { kind: 'remote' | 'remote-cell' }>,
    count: number,
    io: CellIO,
    record: boolean,
    cell: CellInterrupt,
  ): Promise<void> {
    const prepared = this.runner.prepare();
    const fn = await this.remoteFunction(magic.fnSource, count, io, record, magic.inserted);
    await cell.check('the cell was type-checked');
    const context = { count, io, source: magic.fnSource, locals: this.executor.locals, history: this.history };
    if (magic.options.all) {
      await runOnAll(this.runner, fn, magic.options, context, cell, prepared);
      return;
    }
    const value = await this.runner.call(fn, magic.options, context, cell, prepared);
    if (magic.kind === 'remote' && magic.assign)
      await this.assign(magic.assign, magic.expr, magic.async, value, count, io);
    else if (value !== undefined && value !== null) io.result(mimeBundle(value));
  }

  /** Once the pool has agents: `agents` in the notebook is the pool (pool-value.ts), unless the name is taken. */
  private async declareAgents(count: number, io: CellIO): Promise<void> {
    if (this.agentsDeclared || this.runner.pool.size === 0) return;
    this.agentsDeclared = true;
    if (Object.prototype.hasOwnProperty.call(this.executor.locals, 'agents')) {
      io.stream(
        'stderr',
        `tslab-remote: \`agents\` is taken in this notebook, so the pool is not declared as \`agents\`; it is globalThis[Symbol.for('${AGENTS_KEY}')]\n`,
      );
      return;
    }
    await this.typescript(agentsDeclaration(), count, io, false, undefined, true);
  }

  /**
   * An ordinary cell, run by tslab; resolves with the value tslab would have printed (none for null/undefined).
   * `synthesized`: the kernel's own cell for a magic, which runs no user code (see withoutBreakOnSigint).
   */
  private async typescript(
    src: string,
    count: number,
    io: CellIO,
    record: boolean,
    inserted?: Insertion,
    synthesized = false,
  ): Promise<unknown[]> {
    const report = new Report();
    this.report = report;
    this.recorder.lastOutput = undefined;
    let ok: boolean;
    try {
      ok = await (synthesized ? withoutBreakOnSigint(() => this.executor.execute(src)) : this.executor.execute(src));
    } finally {
      this.report = null;
    }
    if (record && this.recorder.lastOutput !== undefined)
      this.history.add({ count, ts: src, js: this.recorder.lastOutput, ...(inserted ? { inserted } : {}) });
    if (inserted) report.diagnostics = report.diagnostics.map((d) => asWritten(d, inserted));
    if (!ok)
      throw new CellFailure(describeFailure(report, (line, column) => this.history.toTypeScript(count, line, column)));
    // Module cells (`//@module`) register even with errors, which tslab prints.
    if (report.diagnostics.length > 0) io.stream('stderr', report.diagnostics.map(formatDiagnostic).join('\n') + '\n');
    return report.values;
  }

  /** The synthesized cell `() => (EXPR)`: type-checked like any cell, in the notebook's scope; its value is the function. */
  private async remoteFunction(
    fnSource: string,
    count: number,
    io: CellIO,
    record: boolean,
    inserted?: Insertion,
  ): Promise<() => unknown> {
    const values = await this.typescript(fnSource, count, io, record, inserted, true);
    const fn = values[values.length - 1];
    if (typeof fn !== 'function')
      throw new Error(`internal: the remote expression did not compile to a function (got ${typeof fn})`);
    return fn as () => unknown;
  }

  /** `%remote NAME = EXPR`: a cell declares NAME with EXPR's awaited static type and the value the agent returned. */
  private assign(
    name: string,
    expr: string,
    isAsync: boolean,
    value: unknown,
    count: number,
    io: CellIO,
  ): Promise<void> {
    return this.assignValue(assignmentSource(name, expr, isAsync, RESULT_KEY), value, count, io);
  }

  /** Runs the assignment cell `source`, which reads `value` from RESULT_KEY. */
  private async assignValue(source: string, value: unknown, count: number, io: CellIO): Promise<void> {
    const slot = globalThis as unknown as Record<symbol, unknown>;
    const key = Symbol.for(RESULT_KEY);
    slot[key] = value;
    try {
      await this.typescript(source, count, io, false);
    } finally {
      delete slot[key];
    }
  }
}

/** A diagnostic's column as the user wrote the line, without the text the kernel inserted into it (1-based vs 0-based). */
function asWritten(d: Diagnostic, inserted: Insertion): Diagnostic {
  if (d.line - 1 !== inserted.line || d.column - 1 < inserted.column) return d;
  return { ...d, column: Math.max(inserted.column, d.column - 1 - inserted.length) + 1 };
}

function parseMagic(code: string): Magic {
  try {
    return parseCell(code);
  } catch (error) {
    if (error instanceof MagicSyntaxError)
      throw new CellFailure({
        ename: 'UsageError',
        evalue: error.message,
        traceback: [`UsageError: ${error.message}`],
      });
    throw error;
  }
}

function formatDiagnostic(d: Diagnostic): string {
  return `${d.file ? `${d.file} ` : ''}${d.line}:${d.column} - ${d.message}`;
}

/** tslab's frames (vm, executor) and ours below the user's code only hide it. */
function cleanStack(stack: string): string[] {
  const lines = stack.split('\n');
  const out: string[] = [];
  for (const line of lines) {
    if (/^\s+at /.test(line) && /(node:vm|tslab[\\/]dist[\\/]|kernel-ext[\\/]kernel[\\/]|node:internal)/.test(line))
      break;
    out.push(line);
  }
  return out;
}

/**
 * The outer anonymous frames in tslab's vm (`at evalmachine.<anonymous>:L:C`) are the running cell's top-level code
 * and tslab's wrapper around it: the first shown as `In [N]:line:col` of the cell's TypeScript, as remote frames are;
 * the wrapper (no TypeScript behind it) left out. Named frames may lie in any earlier cell (tslab gives every cell
 * the same file name), so they are left as they are.
 */
function mapOwnFrames(
  stack: string[],
  toCell?: (jsLine: number, jsColumn: number) => CellPosition | undefined,
): string[] {
  if (!toCell) return stack;
  const own = /^(\s+at )evalmachine\.<anonymous>:(\d+):(\d+)$/;
  const out = [...stack];
  for (let index = out.length - 1; index >= 0; index--) {
    const match = own.exec(out[index]!);
    if (!match) break;
    const position = toCell(Number(match[2]) - 1, Number(match[3]) - 1);
    if (position) out[index] = `${match[1]}In [${position.count}]:${position.line}:${position.column}`;
    else out.splice(index, 1);
  }
  return out;
}

export function describeFailure(
  report: Report,
  toCell?: (jsLine: number, jsColumn: number) => CellPosition | undefined,
): JupyterError {
  if (report.diagnostics.length > 0) {
    const lines = report.diagnostics.map(formatDiagnostic);
    return { ename: 'TSError', evalue: lines[0]!, traceback: lines };
  }
  const thrown = report.thrown[report.thrown.length - 1];
  if (thrown instanceof Error) {
    const head = thrown.message ? `${thrown.name}: ${thrown.message}` : thrown.name;
    // A synchronous throw in a cell carries Node's source excerpt in front (`evalmachine.<anonymous>:2`, the line,
    // a caret): the error's own first line comes first in the traceback, as for every other error.
    const at = typeof thrown.stack === 'string' ? thrown.stack.indexOf(head) : -1;
    const stack = at >= 0 ? mapOwnFrames(cleanStack(thrown.stack!.slice(at)), toCell) : [head];
    const cause = thrown.cause instanceof Error ? [`Caused by: ${thrown.cause.name}: ${thrown.cause.message}`] : [];
    return { ename: thrown.name, evalue: thrown.message, traceback: [...stack, ...cause] };
  }
  if (report.thrown.length === 0)
    return { ename: 'Error', evalue: 'the cell failed', traceback: ['Error: the cell failed'] };
  const text = typeof thrown === 'string' ? thrown : util.inspect(thrown);
  return { ename: 'Error', evalue: `Uncaught ${text}`, traceback: [`Uncaught ${text}`] };
}
