// The TypeScript tslab sees for a %remote cell: the assignment cell after `NAME = EXPR`, and the source that
// completion and inspection work on.

import { parseCell } from './magic';
import type { Magic } from './magic-types';

/** The assignment cell run after `%remote NAME = EXPR`: NAME gets the value the agent returned, typed as EXPR. */
export function assignmentSource(name: string, expr: string, isAsync: boolean, resultKey: string): string {
  const fn = isAsync ? `async () => (${expr}\n)` : `() => (${expr}\n)`;
  return `let ${name} = (<T,>(_: () => T): Awaited<T> => (globalThis as any)[Symbol.for(${JSON.stringify(resultKey)})])(${fn});\n`;
}

/** The assignment cell after `%remote_attach JOB NAME[: TYPE]`: NAME gets the job's result with the type stated. */
export function typedAssignmentSource(name: string, type: string, resultKey: string): string {
  return `let ${name}: ${type} = (globalThis as any)[Symbol.for(${JSON.stringify(resultKey)})];\n`;
}

/**
 * The TypeScript view of a `%remote` / `%%remote` cell for completion and inspection: the synthesized source and
 * position maps between it and the cell. Undefined for other cells, or a cursor in the magic's own text.
 */
export function toolingView(
  code: string,
  cursor: number,
): { source: string; cursor: number; toCell(position: number): number } | undefined {
  let magic: Magic;
  try {
    magic = parseCell(code);
  } catch {
    return undefined;
  }
  if (magic.kind !== 'remote' && magic.kind !== 'remote-cell') return undefined;
  const userStart = magic.userStart;
  if (cursor < userStart) return undefined;
  const shift = magic.sourceStart - magic.userStart;
  const insertedAt = magic.kind === 'remote-cell' ? magic.insertedAt : undefined;
  const insertedLength = magic.kind === 'remote-cell' && magic.inserted ? magic.inserted.length : 0;
  const toSource = (position: number): number =>
    position + shift + (insertedAt !== undefined && position >= insertedAt ? insertedLength : 0);
  return {
    source: magic.fnSource,
    cursor: toSource(cursor),
    toCell: (position) => {
      let cell = position - shift;
      if (insertedAt !== undefined && cell >= insertedAt + insertedLength) cell -= insertedLength;
      else if (insertedAt !== undefined && cell > insertedAt) cell = insertedAt;
      return Math.max(userStart, Math.min(code.length, cell));
    },
  };
}
