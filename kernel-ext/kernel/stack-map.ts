// Remote stack frames back to notebook cells. A remote call's functions (the cell's `() => (EXPR)`, functions of
// earlier cells it captured) are the JavaScript tslab compiled from the cells. On the agent, the unpickler compiles
// all of a call's functions into one generated program named after the call (`cell-7.js`), so a frame says
// `cell-7.js:LINE:COL` in that program. To point at a cell and its TypeScript line:
//
//   1. rebuild the generated program here (the same unpickler, on a fresh pickle of the same call, see
//      `recoverProgram`), and find the function whose source holds the frame's line;
//   2. find that source in the JavaScript tslab produced for some cell (the kernel keeps each cell's TypeScript
//      and JavaScript, CellHistory);
//   3. map the JavaScript line to the TypeScript line: tslab emits without source maps, so the cell is transpiled
//      again here with TypeScript's source maps, and tslab's CommonJS lines are aligned with those of the
//      transpile (they differ only by `exports.` prefixes and CommonJS bookkeeping lines).
//
// Frames in the user's files (`src/model.ts:5:11`) are mapped on the agent already and stay as they are; frames of
// the kernel's own entry wrapper are dropped. Whatever cannot be mapped stays as the agent reported it.

// The module object itself (not an import-star copy), so the unpickler sees a replaced `Script`.
import vm = require('node:vm');

import { tslabTypeScript } from './tslab-parts';

export interface CellRecord {
  /** The execution count: the cell's number as Jupyter shows it (`In [7]`). */
  count: number;
  /** The TypeScript tslab compiled (for magics, the synthesized source, positions as in the user's cell). */
  ts: string;
  /** The CommonJS tslab produced and ran. */
  js: string;
  /** Text the kernel inserted into the TypeScript (see magic.ts): positions are reported as the user wrote them. */
  inserted?: { line: number; column: number; length: number };
}

export interface CellPosition {
  count: number;
  /** 1-based. */
  line: number;
  column: number;
}

const MAX_CELLS = 500;

export class CellHistory {
  private readonly cells = new Map<number, CellRecord>();
  private readonly lineMaps = new Map<number, LineMap>();

  add(record: CellRecord): void {
    this.cells.delete(record.count);
    this.lineMaps.delete(record.count);
    this.cells.set(record.count, record);
    if (this.cells.size > MAX_CELLS) {
      const oldest = this.cells.keys().next().value!;
      this.cells.delete(oldest);
      this.lineMaps.delete(oldest);
    }
  }

  get(count: number): CellRecord | undefined {
    return this.cells.get(count);
  }

  /**
   * Where a function's source text lies in the cells' JavaScript (newest cell first), as a position of its first
   * character: the cell, 0-based line and column in its JavaScript.
   */
  locateFunction(source: string): { count: number; line: number; column: number } | undefined {
    const records = [...this.cells.values()].reverse();
    for (const record of records) {
      const at = record.js.indexOf(source);
      if (at < 0) continue;
      const before = record.js.slice(0, at);
      const line = countLines(before);
      return { count: record.count, line, column: at - (before.lastIndexOf('\n') + 1) };
    }
    return undefined;
  }

  /** A 0-based position in a cell's JavaScript → its 1-based TypeScript line and column. */
  toTypeScript(count: number, jsLine: number, jsColumn: number): CellPosition | undefined {
    const record = this.cells.get(count);
    if (!record) return undefined;
    let map = this.lineMaps.get(count);
    if (!map) {
      try {
        map = new LineMap(record.ts, record.js);
      } catch {
        return undefined;
      }
      this.lineMaps.set(count, map);
    }
    const position = map.map(jsLine, jsColumn);
    if (!position) return undefined;
    const inserted = record.inserted;
    if (inserted && position.line === inserted.line && position.column >= inserted.column) {
      position.column = Math.max(inserted.column, position.column - inserted.length);
    }
    return { count, line: position.line + 1, column: position.column + 1 };
  }
}

/** tslab's CommonJS for a cell → the cell's TypeScript, through a source-mapped transpile of the same cell. */
class LineMap {
  private readonly cjs: Normalized[];
  private readonly esm: Normalized[];
  private readonly cjsToEsm: (number | undefined)[];
  private readonly mappings: Segment[][];

  constructor(tsSource: string, cjs: string) {
    const ts = tslabTypeScript();
    const out = ts.transpileModule(tsSource, {
      fileName: 'cell.ts',
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        sourceMap: true,
        newLine: ts.NewLineKind.LineFeed,
        esModuleInterop: true,
        experimentalDecorators: true,
        jsx: ts.JsxEmit.React,
        noImplicitUseStrict: true,
      },
      reportDiagnostics: false,
    });
    this.esm = out.outputText.split('\n').map((line) => normalize(line, false));
    this.cjs = cjs.split('\n').map((line) => normalize(line, true));
    this.mappings = decodeMappings((JSON.parse(out.sourceMapText!) as { mappings: string }).mappings);
    this.cjsToEsm = alignLines(
      this.cjs.map((n) => n.text),
      this.esm.map((n) => n.text),
    );
  }

  map(jsLine: number, jsColumn: number): { line: number; column: number } | undefined {
    const esmLine = this.cjsToEsm[jsLine];
    if (esmLine === undefined) return undefined;
    const segments = this.mappings[esmLine];
    if (!segments || segments.length === 0) return undefined;
    // Same statement, different spelling (`exports.` prefixes, tslab's `const tsLastExpr = `, spacing): move the
    // column by the characters both lines share.
    const cjs = this.cjs[jsLine]!;
    const esm = this.esm[esmLine]!;
    let column = Math.max(0, jsColumn);
    if (cjs.text === esm.text) column = esm.columnOf(cjs.indexAt(column));
    let best = segments[0]!;
    for (const segment of segments) {
      if (segment.generatedColumn <= column) best = segment;
      else break;
    }
    return { line: best.sourceLine, column: best.sourceColumn + Math.max(0, column - best.generatedColumn) };
  }
}

/** A line without what differs between tslab's CommonJS and a plain transpile, and how columns correspond. */
interface Normalized {
  text: string;
  /** Index in `text` of the first kept character at or after an original column. */
  indexAt(column: number): number;
  /** Original column of the kept character at `index` in `text`. */
  columnOf(index: number): number;
}

function normalize(line: string, fromTslab: boolean): Normalized {
  const removed = new Uint8Array(line.length);
  const drop = (pattern: RegExp): void => {
    for (const match of line.matchAll(pattern)) removed.fill(1, match.index!, match.index! + match[0].length);
  };
  if (fromTslab) {
    // tslab keeps the last expression in a variable: `const tsLastExpr = EXPR;` is `EXPR;` in the transpile.
    drop(/^\s*(?:(?:const|let|var)\s+|exports\.)tsLastExpr\d*\s*=\s*/g);
    drop(/\bexports\./g);
  }
  drop(/\s+/g);
  const kept: number[] = [];
  let text = '';
  for (let i = 0; i < line.length; i++) {
    if (removed[i]) continue;
    kept.push(i);
    text += line[i];
  }
  return {
    text,
    indexAt: (column) => {
      let index = 0;
      while (index < kept.length && kept[index]! < column) index++;
      return index;
    },
    columnOf: (index) => (index < kept.length ? kept[index]! : line.length),
  };
}

/**
 * For each line of `a`, the index of its line in `b`: equal lines matched by longest common subsequence, the
 * lines between two matches placed in order between them.
 */
export function alignLines(a: string[], b: string[]): (number | undefined)[] {
  const n = a.length;
  const m = b.length;
  // LCS table, row by row from the end (cells are small; bounded anyway).
  if (n * m > 4_000_000) return a.map((_, i) => (i < m ? i : undefined));
  const dp: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      dp[i]![j] = a[i] !== '' && a[i] === b[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
    }
  }
  const match: (number | undefined)[] = new Array<number | undefined>(n).fill(undefined);
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (a[i] !== '' && a[i] === b[j]) {
      match[i++] = j++;
    } else if (dp[i + 1]![j]! >= dp[i]![j + 1]!) i++;
    else j++;
  }
  // Unmatched lines: count forward from the previous match, never past the next one.
  const out = match.slice();
  let prevA = -1;
  let prevB = -1;
  for (let i = 0; i < n; i++) {
    if (match[i] !== undefined) {
      prevA = i;
      prevB = match[i]!;
      continue;
    }
    let nextB = m;
    for (let k = i + 1; k < n; k++) {
      if (match[k] !== undefined) {
        nextB = match[k]!;
        break;
      }
    }
    const guess = prevB + (i - prevA);
    out[i] = guess < nextB ? guess : prevB >= 0 ? prevB : undefined;
  }
  return out;
}

interface Segment {
  generatedColumn: number;
  sourceLine: number;
  sourceColumn: number;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Source map v3 `mappings` → segments per generated line (single source, names ignored). */
export function decodeMappings(mappings: string): Segment[][] {
  const lines: Segment[][] = [];
  let sourceLine = 0;
  let sourceColumn = 0;
  for (const lineText of mappings.split(';')) {
    const segments: Segment[] = [];
    let generatedColumn = 0;
    for (const segmentText of lineText.split(',')) {
      if (segmentText === '') continue;
      const values = decodeVlq(segmentText);
      generatedColumn += values[0]!;
      if (values.length >= 4) {
        sourceLine += values[2]!;
        sourceColumn += values[3]!;
        segments.push({ generatedColumn, sourceLine, sourceColumn });
      }
    }
    lines.push(segments);
  }
  return lines;
}

function decodeVlq(text: string): number[] {
  const values: number[] = [];
  let value = 0;
  let shift = 0;
  for (const char of text) {
    const digit = BASE64.indexOf(char);
    if (digit < 0) throw new Error(`bad VLQ character ${char}`);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
      continue;
    }
    values.push(value & 1 ? -(value >>> 1) : value >>> 1);
    value = 0;
    shift = 0;
  }
  return values;
}

function countLines(text: string): number {
  let lines = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
  return lines;
}

/** A function of the generated program: where its source starts (0-based line) and its text. */
interface ProgramFunction {
  startLine: number;
  source: string;
}

/**
 * The functions of an unpickler program: each is emitted as `function (P) { ["use strict"; ]return (` (or `({`
 * for methods) on a line of its own, then its source, then `)` (or `})`) and `; }` on the line after it.
 */
export function programFunctions(program: string): ProgramFunction[] {
  const lines = program.split('\n');
  const out: ProgramFunction[] = [];
  const head = /^function \([^)]*\) \{ (?:"use strict"; )?return \(\{?$/;
  for (let i = 0; i < lines.length; i++) {
    if (!head.test(lines[i]!)) continue;
    const method = lines[i]!.endsWith('({');
    const tail = method ? /^\}\); \},?$/ : /^\); \},?$/;
    let end = i + 1;
    while (end < lines.length && !tail.test(lines[end]!)) end++;
    out.push({ startLine: i + 1, source: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return out;
}

/**
 * Runs `unpickle` only as far as its program: the program's `vm.Script` is recorded and the unpickling stopped
 * there, before any of the program runs. Undefined when the unpickler never compiles one (no functions).
 */
export function recoverProgram(unpickleUntilCompile: (filename: string) => unknown): string | undefined {
  const filename = `tslab-remote-stack-map-${process.pid}-${Date.now()}.js`;
  const stop = new Error('program recorded');
  let program: string | undefined;
  const Original = vm.Script;
  const vmModule = vm as { Script: typeof vm.Script };
  vmModule.Script = class extends Original {
    constructor(code: string, options?: vm.ScriptOptions | string) {
      if (typeof options === 'object' && options?.filename === filename) {
        program = code;
        throw stop;
      }
      super(code, options);
    }
  };
  try {
    unpickleUntilCompile(filename);
  } catch (err) {
    if (err !== stop && program === undefined) return undefined;
  } finally {
    vmModule.Script = Original;
  }
  return program;
}

export interface StackMapper {
  /** The generated program of the call (recovered lazily, once). */
  program(): string | undefined;
  history: CellHistory;
  /** Names of the kernel's own wrapper functions, whose frames are dropped. */
  ownFunctions: Set<string>;
}

const FRAME = /^(\s+at )(?:(.*?) \()?((?:[^\s()]*[\\/])?cell-\d+\.js):(\d+):(\d+)\)?$/;

/** Rewrites the frames of a remote stack that lie in the call's generated program to `In [N]:LINE:COL`. */
export function mapRemoteStack(stack: string, mapper: StackMapper): string {
  const lines = stack.split('\n');
  if (!lines.some((line) => FRAME.test(line))) return stack;
  const program = mapper.program();
  const functions = program ? programFunctions(program) : [];
  const out: string[] = [];
  for (const line of lines) {
    const match = FRAME.exec(line);
    if (!match) {
      out.push(line);
      continue;
    }
    const [, at, name, , lineText, columnText] = match;
    const frameLine = Number(lineText) - 1;
    const frameColumn = Number(columnText) - 1;
    const fn = findFunction(functions, frameLine);
    if (fn) {
      const located = mapper.history.locateFunction(fn.source);
      if (!located) {
        const bare = name?.replace(/ \[as [^\]]*\]$/, '').replace(/^.*\./, '');
        if ((bare && mapper.ownFunctions.has(bare)) || [...mapper.ownFunctions].some((own) => fn.source.startsWith(`function ${own}(`))) continue;
        out.push(line);
        continue;
      }
      const relLine = frameLine - fn.startLine;
      const jsLine = located.line + relLine;
      const jsColumn = relLine === 0 ? located.column + frameColumn : frameColumn;
      const position = mapper.history.toTypeScript(located.count, jsLine, jsColumn);
      if (position) {
        // tslab's name for a cell's last expression says nothing to the user: such frames are the cell itself.
        const shown = name && !/^(?:Object\.)?tsLastExpr\d*(?: \[as [^\]]*\])?$/.test(name) ? name : undefined;
        out.push(`${at}${shown ? `${shown} (` : ''}In [${position.count}]:${position.line}:${position.column}${shown ? ')' : ''}`);
        continue;
      }
    }
    out.push(line);
  }
  return out.join('\n');
}

function findFunction(functions: ProgramFunction[], line: number): ProgramFunction | undefined {
  let found: ProgramFunction | undefined;
  for (const fn of functions) {
    const lineCount = countLines(fn.source) + 1;
    if (line >= fn.startLine && line < fn.startLine + lineCount) found = fn;
  }
  return found;
}
