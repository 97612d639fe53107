// Display output made on the agent through tslab's display API (`tslab.display.html(...)`, `newDisplay()`), shown in
// the cell. The protocol carries only stdout and stderr, so the worker side writes each display message to stdout
// as one marked record, and the kernel side takes the records out of the stream again, in order with the text
// around them.
//
// Worker side: `installRemoteDisplay` is pickled with every remote call and runs first on the worker. When the
// agent can load tslab (the package the notebook's `import * as tslab from "tslab"` refers to), it points tslab's
// `lastWriteDisplayData` (what the display API writes to) at stdout. Without tslab on the agent nothing changes:
// code that does not display does not need it.

/** Start and end of a display record in the stdout stream: an OSC sequence nobody prints by accident. */
export const DISPLAY_START = '\u001b]5379;tslab-remote-display;';
export const DISPLAY_END = '\u0007';

/** Runs on the worker (pickled by value): self-contained on purpose, it may use only globals and `require`. */
export function installRemoteDisplay(): void {
  const key = Symbol.for('tslab-remote.display-installed');
  const g = globalThis as unknown as Record<symbol, boolean>;
  if (g[key]) return;
  g[key] = true;
  let jupyter: { lastWriteDisplayData: unknown } | undefined;
  try {
    jupyter = require('tslab/dist/jupyter') as { lastWriteDisplayData: unknown };
  } catch {
    return; // tslab is not installed on the agent: nothing in the job can display through it either
  }
  jupyter.lastWriteDisplayData = (data: unknown, update: boolean): void => {
    const record = Buffer.from(JSON.stringify({ data, update: Boolean(update) })).toString('base64');
    process.stdout.write('\u001b]5379;tslab-remote-display;' + record + '\u0007');
  };
}

export interface DisplayRecord {
  data: { data: Record<string, unknown>; metadata?: Record<string, unknown>; transient?: { display_id?: string } };
  update: boolean;
}

/**
 * Splits the remote stdout stream into text and display records, in order. A record cut across two output
 * messages is held until its end arrives.
 */
export class OutputDemux {
  private held = '';

  constructor(
    private readonly onText: (text: string) => void,
    private readonly onDisplay: (record: DisplayRecord) => void,
  ) {}

  write(text: string): void {
    let rest = this.held + text;
    this.held = '';
    for (;;) {
      const start = rest.indexOf(DISPLAY_START);
      if (start < 0) {
        // Keep a tail that could be the beginning of a marker.
        const keep = partialMarkerTail(rest);
        if (rest.length > keep) this.onText(rest.slice(0, rest.length - keep));
        this.held = rest.slice(rest.length - keep);
        return;
      }
      if (start > 0) this.onText(rest.slice(0, start));
      const end = rest.indexOf(DISPLAY_END, start + DISPLAY_START.length);
      if (end < 0) {
        this.held = rest.slice(start);
        return;
      }
      const payload = rest.slice(start + DISPLAY_START.length, end);
      rest = rest.slice(end + DISPLAY_END.length);
      try {
        this.onDisplay(JSON.parse(Buffer.from(payload, 'base64').toString('utf8')) as DisplayRecord);
      } catch {
        this.onText(DISPLAY_START + payload + DISPLAY_END);
      }
    }
  }

  /** The call ended: whatever is held is text after all. */
  flush(): void {
    if (this.held) this.onText(this.held);
    this.held = '';
  }
}

function partialMarkerTail(text: string): number {
  for (let n = Math.min(DISPLAY_START.length - 1, text.length); n > 0; n--) {
    if (DISPLAY_START.startsWith(text.slice(text.length - n))) return n;
  }
  return 0;
}
