// Jupyter's interrupt of a magic cell. It sticks to the cell in progress: whatever the cell is doing when it comes
// (type check, starting or connecting to an agent, snapshot, upload, pickling, the call itself), the cell ends with
// a KeyboardInterrupt, and what was not sent yet is not sent. Between cells an interrupt does nothing.

import { abortable, afterPendingEvents } from '../client/abort';
import { CellFailure } from './io';

export class CellInterrupt {
  private readonly controller = new AbortController();
  /** What an interrupt leaves as it was, for its error; the magic says. */
  consequence = 'the call was not sent';

  /** Aborts on the interrupt: given to what the cell waits for, so that it gives up (closes sockets, kills). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  interrupt(): void {
    this.controller.abort();
  }

  /**
   * Whether the cell was interrupted, as of now. A SIGINT that came during synchronous work just done (the type
   * check, pickling, decoding a result) reaches its handler only once the event loop polls: it is given that chance.
   */
  async interrupted(): Promise<boolean> {
    await afterPendingEvents();
    return this.signal.aborted;
  }

  /** Waits for `work`; an interrupt meanwhile ends the wait at once, as the cell's KeyboardInterrupt. */
  during<T>(phase: string, work: Promise<T>): Promise<T> {
    return abortable(work, this.signal, () => this.error(phase));
  }

  /** After synchronous work: fails if an interrupt came during it (or before). */
  async check(phase: string): Promise<void> {
    if (await this.interrupted()) throw this.error(phase);
  }

  /** The cell's error for an interrupt while it was `phase`. */
  error(phase: string): CellFailure {
    return keyboardInterrupt(`interrupted while ${phase}: ${this.consequence}`);
  }
}

/** A cell's error for an interrupt: KeyboardInterrupt, as the Python kernel names it. */
export function keyboardInterrupt(evalue: string): CellFailure {
  return new CellFailure({ ename: 'KeyboardInterrupt', evalue, traceback: [`KeyboardInterrupt: ${evalue}`] });
}
