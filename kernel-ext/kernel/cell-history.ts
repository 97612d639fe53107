// The cells the kernel ran, kept to map remote stack frames back to them (stack-map.ts): each cell's TypeScript and
// the JavaScript tslab ran, and where a function's source lies in them.

import { LineMap } from './line-map';

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

export function countLines(text: string): number {
  let lines = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
  return lines;
}
