// The notebook file the run command executes: nbformat 4, read leniently where a run can do without a field.

import * as fs from 'node:fs';

export interface NotebookCell {
  cell_type: 'code' | 'markdown' | 'raw';
  source: string | string[];
  metadata: { tags?: string[]; [key: string]: unknown };
  outputs?: NotebookOutput[];
  execution_count?: number | null;
  [key: string]: unknown;
}

export type NotebookOutput =
  | { output_type: 'stream'; name: 'stdout' | 'stderr'; text: string }
  | { output_type: 'display_data'; data: Record<string, unknown>; metadata: Record<string, unknown> }
  | {
      output_type: 'execute_result';
      execution_count: number;
      data: Record<string, unknown>;
      metadata: Record<string, unknown>;
    }
  | { output_type: 'error'; ename: string; evalue: string; traceback: string[] };

export interface Notebook {
  cells: NotebookCell[];
  metadata: Record<string, unknown>;
  nbformat: number;
  nbformat_minor: number;
}

/** A run that could not go on for a reason the user can act on (a notebook that is not one, a kernel that failed to start): its message is the whole report. */
export class RunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunError';
  }
}

export function cellSource(cell: NotebookCell): string {
  return Array.isArray(cell.source) ? cell.source.join('') : cell.source;
}

export function readNotebook(file: string): Notebook {
  let notebook: Notebook;
  try {
    notebook = JSON.parse(fs.readFileSync(file, 'utf8')) as Notebook;
  } catch (error) {
    throw new RunError(`cannot read ${file} as a notebook: ${(error as Error).message}`);
  }
  if (!Array.isArray(notebook?.cells) || notebook.nbformat !== 4)
    throw new RunError(`${file} is not a notebook in nbformat 4`);
  // Hand-written or trimmed notebooks may leave out what nbformat requires but a run can do without.
  notebook.metadata ??= {};
  for (const [index, cell] of notebook.cells.entries()) {
    if (
      typeof cell !== 'object' ||
      cell === null ||
      typeof cell.cell_type !== 'string' ||
      !(typeof cell.source === 'string' || Array.isArray(cell.source))
    ) {
      throw new RunError(`${file}: cell ${index + 1} is not a notebook cell (it needs cell_type and source)`);
    }
    cell.metadata ??= {};
  }
  return notebook;
}

/** "cell 3 (%remote train())": the cell's number among all cells and the first line of its source. */
export function cellLabel(cell: NotebookCell, index: number): string {
  const line = cellSource(cell).trim().split('\n')[0]!.trim();
  return `cell ${index + 1} (${line.length > 60 ? `${line.slice(0, 59)}…` : line})`;
}
