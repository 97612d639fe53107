// Tracebacks coloured as ipykernel colours them: the error's name in red, each frame's file:line:column in green,
// so an error stands out from the cell's output in the notebook (Jupyter renders ANSI in tracebacks). `ename` and
// `evalue` stay plain; `tslab-remote run` strips the colours when its stderr is not a terminal.

import type { JupyterError } from './io';

const RED = '\x1b[0;31m';
const GREEN = '\x1b[0;32m';
const RESET = '\x1b[0m';
// eslint-disable-next-line no-control-regex -- ANSI colour codes are what this matches
const ANSI = /\x1b\[[0-9;]*m/g;

export function colouredTraceback(error: JupyterError): JupyterError {
  return { ...error, traceback: error.traceback.map((line) => colourLine(line, error.ename)) };
}

function colourLine(line: string, ename: string): string {
  // "    at fn (file:line:col)" or "    at file:line:col": the location in green.
  const inParens = /^(\s+at .*\()(.+)(\))$/.exec(line);
  if (inParens) return `${inParens[1]}${GREEN}${inParens[2]}${RESET}${inParens[3]}`;
  const bare = /^(\s+at )(.+:\d+:\d+)$/.exec(line);
  if (bare) return `${bare[1]}${GREEN}${bare[2]}${RESET}`;
  if (ename && line.startsWith(`${ename}:`)) return `${RED}${ename}${RESET}${line.slice(ename.length)}`;
  return line;
}

export function withoutColour(text: string): string {
  return text.replace(ANSI, '');
}
