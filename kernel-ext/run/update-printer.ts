// Status lines the kernel updates in place (a display with a display_id: elapsed time, upload progress) as `run`
// prints them. On a terminal the line is rewritten where it is; elsewhere (a log, a CI job) only the 1st, 2nd, 4th,
// 8th... update of a line is printed, so an hour-long call adds a dozen lines rather than 3,600.

type Print = (stream: 'stdout' | 'stderr', text: string) => void;

export class UpdatePrinter {
  private readonly updates = new Map<string, number>();
  /** The display whose line was printed last, if the last thing printed was one. */
  private lastLine?: string;

  constructor(
    private readonly print: Print,
    private readonly tty: boolean,
  ) {}

  /** A new display (displayId when it has one) or anything else printed: `text` as is. */
  printed(stream: 'stdout' | 'stderr', text: string, displayId?: string): void {
    this.print(stream, text);
    this.lastLine = displayId !== undefined && !text.slice(0, -1).includes('\n') ? displayId : undefined;
  }

  /** An update of display `displayId` to `line` (one line, with its newline). */
  updated(displayId: string, line: string): void {
    const count = (this.updates.get(displayId) ?? 0) + 1;
    this.updates.set(displayId, count);
    if (this.tty && this.lastLine === displayId) {
      this.print('stdout', `\x1b[1A\r\x1b[2K${line}`); // up one line, clear it, write over it
      return;
    }
    if (line.trim() === '') return; // a line emptied where it was: nothing to say
    if (!this.tty && (count & (count - 1)) !== 0) return; // not a power of two
    this.printed('stdout', line, displayId);
  }
}
