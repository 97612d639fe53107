// Positions in a cell's text: the magic parsers' small helpers.

/**
 * Blanks the text (newlines kept) and writes `head` at the start of the magic's line (the one holding `magicAt`), so
 * the code after the text keeps its line and column. Code below the magic's line is never moved by a long head.
 */
export function overwrite(text: string, head: string, magicAt: number): string {
  const lineStart = text.lastIndexOf('\n', magicAt) + 1;
  const lineEnd = indexOrEnd(text, '\n', magicAt);
  const blank = (part: string): string => part.replace(/[^\n]/g, ' ');
  const pad = ' '.repeat(Math.max(0, lineEnd - lineStart - head.length));
  return blank(text.slice(0, lineStart)) + head + pad + blank(text.slice(lineEnd));
}

/** 0-based line and column of an offset. */
export function lineAndColumn(text: string, at: number): [number, number] {
  const before = text.slice(0, at);
  return [before.split('\n').length - 1, at - (before.lastIndexOf('\n') + 1)];
}

export function firstNonBlank(code: string): number {
  const match = /\S/.exec(code);
  return match ? match.index : -1;
}

/** Skips spaces, tabs and line ends. */
export function skipBlanks(code: string, at: number): number {
  const match = /\S/.exec(code.slice(at));
  return match ? at + match.index : code.length;
}

export function skipSpaces(code: string, at: number): number {
  let i = at;
  while (i < code.length && (code[i] === ' ' || code[i] === '\t')) i++;
  return i;
}

export function indexOrEnd(text: string, search: string, from: number): number {
  const at = text.indexOf(search, from);
  return at < 0 ? text.length : at;
}
