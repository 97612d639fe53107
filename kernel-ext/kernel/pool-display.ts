// How the pool shows in a cell: tables (plain text and HTML) for `%remote --all` and the pool listing, and lines of
// agent output prefixed with the agent's name.

import { escapeHtml, MimeBundle } from './display';
import type { CellIO } from './io';

/** A table as a MIME bundle: aligned plain text, and an HTML table. */
export function tableBundle(headers: string[], rows: string[][]): MimeBundle {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => firstLine(r[c] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => firstLine(cell).padEnd(widths[c]!))
      .join('  ')
      .trimEnd();
  const plain = [line(headers), ...rows.map(line)].join('\n');
  const head = `<tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const body = rows
    .map(
      (r) => `<tr>${r.map((cell) => `<td style="text-align:left"><pre>${escapeHtml(cell)}</pre></td>`).join('')}</tr>`,
    )
    .join('');
  return { 'text/plain': plain, 'text/html': `<table>${head}${body}</table>` };
}

/** The first line of a value for the plain-text table (with a mark when there is more), at most 120 characters. */
function firstLine(text: string): string {
  const newline = text.indexOf('\n');
  const first = newline < 0 ? text : `${text.slice(0, newline)} …`;
  return first.length > 120 ? `${first.slice(0, 119)}…` : first;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * A CellIO for one agent of `--all`: its output lines start with `[name] ` (whole lines, so that agents' output
 * interleaves line by line); displays and results go to the cell as they are. flush() writes a last partial line.
 */
export function prefixedIO(io: CellIO, name: string): CellIO & { flush(): void } {
  const pending: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
  const write = (stream: 'stdout' | 'stderr', text: string): void => {
    const all = pending[stream] + text;
    const end = all.lastIndexOf('\n') + 1;
    pending[stream] = all.slice(end);
    if (end > 0) io.stream(stream, prefixLines(all.slice(0, end), name));
  };
  return {
    stream: write,
    display: (data, update) => io.display(data, update),
    result: (bundle) => io.result(bundle),
    flush: () => {
      for (const stream of ['stdout', 'stderr'] as const) {
        if (pending[stream]) io.stream(stream, `${prefixLines(pending[stream], name)}\n`);
        pending[stream] = '';
      }
    },
  };
}

function prefixLines(text: string, name: string): string {
  return text.replace(/^(?=.)/gm, `[${name}] `).replace(/^$(?=\n)/gm, `[${name}]`);
}
