// A cell's JavaScript as tslab ran it → the cell's TypeScript. tslab emits without source maps, so the cell is
// transpiled again with TypeScript's source map (read with node:module's SourceMap), and tslab's CommonJS lines are
// aligned with those of the transpile: they differ only by `exports.` prefixes and CommonJS bookkeeping lines, an
// alignment no source map library does.

import { SourceMap, SourceMapPayload, SourceMapping } from 'node:module';

import { tslabTypeScript } from './tslab-parts';

/** tslab's CommonJS for a cell → the cell's TypeScript, through a source-mapped transpile of the same cell. */
export class LineMap {
  private readonly cjs: Normalized[];
  private readonly esm: Normalized[];
  private readonly esmLengths: number[];
  private readonly cjsToEsm: (number | undefined)[];
  private readonly sourceMap: SourceMap;

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
    const esmLines = out.outputText.split('\n');
    this.esm = esmLines.map((line) => normalize(line, false));
    this.esmLengths = esmLines.map((line) => line.length);
    this.cjs = cjs.split('\n').map((line) => normalize(line, true));
    this.sourceMap = new SourceMap(JSON.parse(out.sourceMapText!) as SourceMapPayload);
    this.cjsToEsm = alignLines(
      this.cjs.map((n) => n.text),
      this.esm.map((n) => n.text),
    );
  }

  map(jsLine: number, jsColumn: number): { line: number; column: number } | undefined {
    const esmLine = this.cjsToEsm[jsLine];
    if (esmLine === undefined) return undefined;
    // Same statement, different spelling (`exports.` prefixes, tslab's `const tsLastExpr = `, spacing): move the
    // column by the characters both lines share.
    const cjs = this.cjs[jsLine];
    const esm = this.esm[esmLine];
    if (!cjs || !esm) return undefined;
    let column = Math.max(0, jsColumn);
    if (cjs.text === esm.text) column = esm.columnOf(cjs.indexAt(column));
    const best = this.segmentAt(esmLine, column);
    if (!best) return undefined;
    return { line: best.originalLine, column: best.originalColumn + Math.max(0, column - best.generatedColumn) };
  }

  /**
   * The mapping segment of `line` at or before `column`; before the line's first segment, that first one (a column
   * left of the statement's start still means the statement). Undefined for a line without segments. SourceMap's
   * findEntry would give the previous line's last segment there, so the line is checked.
   */
  private segmentAt(line: number, column: number): SourceMapping | undefined {
    const onLine = (entry: SourceMapping | Record<string, never>): SourceMapping | undefined =>
      isMapping(entry) && entry.generatedLine === line ? entry : undefined;
    const at = onLine(this.sourceMap.findEntry(line, column));
    if (at) return at;
    const length = this.esmLengths[line] ?? 0;
    for (let next = column + 1; next <= length; next++) {
      const first = onLine(this.sourceMap.findEntry(line, next));
      if (first) return first;
    }
    return undefined;
  }
}

function isMapping(entry: SourceMapping | Record<string, never>): entry is SourceMapping {
  return typeof entry.generatedLine === 'number';
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
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- tsc types matchAll's index as possibly undefined
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
  for (let i = 0, j = 0; i < n && j < m;) {
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
