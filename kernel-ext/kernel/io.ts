// What a running cell writes to: the Jupyter messages of its execute_request (streams, display data, the result),
// and how a cell fails (the content of Jupyter's `error` message).

import type { MimeBundle } from './display';
import type { DisplayData } from './tslab-parts';

export interface CellIO {
  stream(name: 'stdout' | 'stderr', text: string): void;
  display(data: DisplayData, update: boolean): void;
  result(bundle: MimeBundle): void;
}

/** The content of a Jupyter `error` message (and of an execute_reply with status "error"). */
export interface JupyterError {
  ename: string;
  evalue: string;
  traceback: string[];
}

/** A cell failed in a way the user should see as the cell's error. */
export class CellFailure extends Error {
  constructor(readonly error: JupyterError) {
    super(error.evalue);
    this.name = 'CellFailure';
  }
}
