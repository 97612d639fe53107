// The magics, parsed before TypeScript conversion. A cell whose first non-blank line starts with `%` is ours (a `%`
// line is not valid TypeScript, so the split is unambiguous); every other cell goes to tslab untouched, unless it
// does not parse and a later line starts with a magic: that is refused, as magics must start their cell.
//
//   %remote [--timeout S] [--agent A] EXPR          run EXPR on the agent, show its value
//   %remote [--timeout S] [--agent A] NAME = EXPR   ... and assign it in the notebook (NAME has EXPR's static type)
//   %%remote [--timeout S] [--agent A]              first line of a cell: the whole cell runs remotely
//   %remote_agent [ENDPOINT] [--key DIR] [--name N] [--local]   connect, or show the current agent
//   %remote_root [DIR]                              set (or show) the code root shipped to agents
//
// %remote's EXPR runs to the end of the cell; it, or NAME =, may start on a line below %remote, but the options stay
// on the %remote line. EXPR must be an expression: one starting with a statement (`const`, `if`, `for`, `return`,
// ...) is refused with a pointer to %%remote, which runs statements.
//
// The options are `--timeout` and `--agent`, each with a value (`--timeout 5` or `--timeout=5`). Any other `--word`
// starts EXPR, so `%remote --counter` runs the decrement `--counter` (write `(--timeout)` to decrement a variable
// named like an option); but where what follows `--word` could not continue an expression (`--gpu 1 f()`,
// `--gpu=1`), it is a mistyped option and refused. After %%remote, any `--word` is an option.
//
// The values of %remote_agent and %remote_root may be quoted, '...' or "...", to hold blanks; the parser expands
// nothing in them ($VAR, escapes). A path that starts with `~/` is the home directory, quoted or not (the kernel
// resolves paths, remote.ts).
//
// The TypeScript the kernel type-checks for a magic keeps every character of the user's code at its line and column
// (the magic is overwritten by the function head, padded with spaces), so tslab's diagnostics and remote stack
// frames point at the user's cell as written. Where the kernel adds more than it overwrites (`async () => (` is
// longer than `%remote ` in `%remote await f()`; `return ` goes in front of a %%remote cell's last expression), the
// rest of that line moves right, and the magic records an Insertion for the stack frames.

import { tslabTypeScript } from './tslab-parts';

export interface RemoteOptions {
  /** `--timeout SECONDS`, as milliseconds. */
  timeoutMs?: number;
  /** `--agent NAME_OR_ENDPOINT`. */
  agent?: string;
}

export type Magic =
  | { kind: 'typescript' }
  | {
      kind: 'remote';
      options: RemoteOptions;
      /** `NAME = EXPR`: the notebook variable that receives the result. */
      assign?: string;
      expr: string;
      /** TypeScript that evaluates to `() => (EXPR)`, with EXPR at its original line and column. */
      fnSource: string;
      /** Set when the head is longer than the text before EXPR on its line (`%remote await f()`). */
      inserted?: Insertion;
      async: boolean;
      /** Where the user's code starts in the cell and in fnSource (for completion and inspection). */
      userStart: number;
      sourceStart: number;
    }
  | {
      kind: 'remote-cell';
      options: RemoteOptions;
      body: string;
      fnSource: string;
      /** Where `return ` was put in front of the last expression (0-based line and column of fnSource). */
      inserted?: Insertion;
      userStart: number;
      sourceStart: number;
      /** Offset in the cell where `return ` was inserted. */
      insertedAt?: number;
    }
  | { kind: 'agent'; endpoint?: string; key?: string; name?: string; local: boolean }
  | { kind: 'root'; dir?: string };

/** Text the kernel inserted into the user's line: positions after it are `length` columns to the right. */
export interface Insertion {
  line: number;
  column: number;
  length: number;
}

export class MagicSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MagicSyntaxError';
  }
}

const USAGE = {
  remote: '%remote [--timeout SECONDS] [--agent NAME_OR_ENDPOINT] [NAME =] EXPRESSION',
  cell: '%%remote [--timeout SECONDS] [--agent NAME_OR_ENDPOINT] (on the first line; the rest of the cell runs remotely)',
  agent: '%remote_agent [ENDPOINT] [--key DIR] [--name NAME] | %remote_agent --local',
  root: '%remote_root [DIR]',
};

/** Recognises a magic cell; returns `{ kind: 'typescript' }` for anything else. Throws MagicSyntaxError on misuse. */
export function parseCell(code: string): Magic {
  const start = firstNonBlank(code);
  if (start < 0 || code[start] !== '%') {
    checkMagicBelow(code);
    return { kind: 'typescript' };
  }
  const lineEnd = indexOrEnd(code, '\n', start);
  // The word as written, to the first blank: `%remote-x` and `%remote(f)` are no `%remote`.
  const word = code.slice(start, lineEnd).split(/\s/, 1)[0]!;
  switch (word) {
    case '%%remote':
      return parseCellMagic(code, start, lineEnd);
    case '%remote':
      return parseLineMagic(code, start);
    case '%remote_agent':
      return parseAgent(code, start + word.length, lineEnd);
    case '%remote_root':
      return parseRoot(code, start + word.length, lineEnd);
    default:
      if (word === '%remote_' || word.startsWith('%remote') || word.startsWith('%%')) {
        throw new MagicSyntaxError(`unknown magic ${word}; the magics are:\n  ${Object.values(USAGE).join('\n  ')}`);
      }
      throw new MagicSyntaxError(
        `unknown magic ${word}: this kernel knows %remote, %%remote, %remote_agent and %remote_root; ` +
          'a line starting with % is not TypeScript',
      );
  }
}

/** `%remote [options] [NAME =] EXPR`: EXPR runs to the end of the cell, so it may span lines. */
function parseLineMagic(code: string, start: number): Magic {
  const { options, next } = parseOptions(code, start + '%remote'.length, 'remote');
  // EXPR (or NAME = EXPR) may start on a line below the magic, as EXPR may span lines.
  let exprStart = skipBlanks(code, next);
  let assign: string | undefined;
  const assignment = /^([A-Za-z_$][\w$]*)\s*=(?![=>])/.exec(code.slice(exprStart));
  if (assignment) {
    assign = assignment[1]!;
    if (RESERVED.has(assign)) throw new MagicSyntaxError(`cannot assign to ${assign}: it is a reserved word`);
    exprStart = skipBlanks(code, exprStart + assignment[0].length);
  }
  // Trailing semicolons and blanks do not belong to the expression; dropping them at the end moves nothing.
  let exprEnd = code.length;
  while (exprEnd > exprStart && /[\s;]/.test(code[exprEnd - 1]!)) exprEnd--;
  exprEnd = exprStart + oneExpressionLength(code.slice(exprStart, exprEnd));
  const expr = code.slice(exprStart, exprEnd);
  if (expr.trim() === '') throw new MagicSyntaxError(`%remote needs an expression to run: ${USAGE.remote}`);
  const statement = STATEMENT_START.exec(expr);
  if (statement) {
    const word = statement.slice(1).find((w) => w !== undefined)!;
    throw new MagicSyntaxError(
      `%remote takes an expression, and ${word} starts a statement: put the code under %%remote ` +
        "(the cell's last expression is its result)",
    );
  }
  const isAsync = /\bawait\b/.test(expr);
  const head = isAsync ? 'async () => (' : '() => (';
  const prefix = overwrite(code.slice(0, exprStart), head, start);
  const fnSource = prefix + expr + '\n)';
  const inserted = headOverflow(code, start, exprStart, head);
  return {
    kind: 'remote',
    options,
    ...(assign ? { assign } : {}),
    expr,
    fnSource,
    ...(inserted ? { inserted } : {}),
    async: isAsync,
    userStart: exprStart,
    sourceStart: prefix.length,
  };
}

/**
 * The length of the one expression `text` holds: all of it, or without a `;` and a comment after it. Several
 * statements (`f(); g()`) are refused with a pointer to %%remote rather than left to TypeScript's "')' expected".
 */
function oneExpressionLength(text: string): number {
  const ts = tslabTypeScript();
  const parses = (source: string): boolean =>
    ((ts.createSourceFile('expr.ts', source, ts.ScriptTarget.Latest) as unknown as { parseDiagnostics: unknown[] }).parseDiagnostics ?? []).length === 0;
  if (parses(`async () => (${text}\n)`)) return text.length;
  // In expression position, as `{` would open a block at a statement's start.
  const head = '_ = ';
  const statements = ts.createSourceFile('expr.ts', head + text, ts.ScriptTarget.Latest).statements;
  if (statements.length > 1 && parses(head + text)) {
    throw new MagicSyntaxError(
      `%remote takes one expression, and this is ${statements.length} statements: put them under %%remote (the cell's last expression is its result)`,
    );
  }
  const only = statements[0];
  if (statements.length === 1 && only && ts.isExpressionStatement(only)) return only.expression.end - head.length;
  return text.length; // TypeScript's own error will say what is wrong
}

/** The columns `head` pushes EXPR right by, when EXPR starts on the magic's line with less room than the head. */
function headOverflow(code: string, magicAt: number, exprStart: number, head: string): Insertion | undefined {
  const [line, column] = lineAndColumn(code, exprStart);
  if (line !== lineAndColumn(code, magicAt)[0] || column >= head.length) return undefined;
  return { line, column, length: head.length - column };
}

/** `%%remote [options]` on the first line: the rest of the cell is the body of an async function run remotely. */
function parseCellMagic(code: string, start: number, lineEnd: number): Magic {
  const { options, next } = parseOptions(code, start + '%%remote'.length, 'cell');
  const rest = code.slice(next, lineEnd).trim();
  if (rest !== '') throw new MagicSyntaxError(`unexpected ${JSON.stringify(rest)} after %%remote: ${USAGE.cell}`);
  const body = code.slice(lineEnd);
  if (body.trim() === '') throw new MagicSyntaxError('%%remote needs code below it: the rest of the cell runs on the agent');
  const head = overwrite(code.slice(0, lineEnd), 'async () => {', start);
  const returned = returnLastExpression(body);
  const fnSource = head + returned.text + '\n}';
  let inserted: Insertion | undefined;
  if (returned.at !== undefined) {
    const [line, column] = lineAndColumn(head + body, head.length + returned.at);
    inserted = { line, column, length: RETURN.length };
  }
  return {
    kind: 'remote-cell',
    options,
    body,
    fnSource,
    ...(inserted ? { inserted, insertedAt: lineEnd + returned.at! } : {}),
    userStart: lineEnd,
    sourceStart: head.length,
  };
}

function parseAgent(code: string, at: number, lineEnd: number): Magic {
  checkNothingAfter(code, lineEnd, '%remote_agent');
  const words = splitWords(code.slice(at, lineEnd), '%remote_agent');
  const magic: Extract<Magic, { kind: 'agent' }> = { kind: 'agent', local: false };
  for (let i = 0; i < words.length; i++) {
    const [flag, inline] = splitFlag(words[i]!);
    const value = (): string => {
      const v = inline ?? words[++i];
      if (!v || v.startsWith('--')) throw new MagicSyntaxError(`${flag} needs a value: ${USAGE.agent}`);
      return v;
    };
    if (flag === '--local') {
      if (inline !== undefined) throw new MagicSyntaxError(`--local takes no value, got ${words[i]}: ${USAGE.agent}`);
      magic.local = true;
    } else if (flag === '--key' || flag === '--keys') magic.key = value();
    else if (flag === '--name') magic.name = value();
    else if (flag.startsWith('--')) throw new MagicSyntaxError(`unknown option ${flag}: ${USAGE.agent}`);
    else if (magic.endpoint === undefined) magic.endpoint = flag;
    else throw new MagicSyntaxError(`one endpoint at a time, got ${magic.endpoint} and ${flag}: ${USAGE.agent}`);
  }
  if (magic.local && magic.endpoint) throw new MagicSyntaxError(`--local starts a private agent; it takes no endpoint: ${USAGE.agent}`);
  if (magic.local && magic.key) throw new MagicSyntaxError('--local agents listen on a private socket on this machine and need no --key');
  if (magic.endpoint && !/^(tcp|ipc|inproc):\/\//.test(magic.endpoint)) {
    throw new MagicSyntaxError(`${magic.endpoint} is not a ZeroMQ endpoint (like tcp://gpu1:5555): ${USAGE.agent}`);
  }
  return magic;
}

function parseRoot(code: string, at: number, lineEnd: number): Magic {
  checkNothingAfter(code, lineEnd, '%remote_root');
  const words = splitWords(code.slice(at, lineEnd), '%remote_root');
  if (words.length > 1) throw new MagicSyntaxError(`one directory at a time: ${USAGE.root}`);
  return words[0] === undefined ? { kind: 'root' } : { kind: 'root', dir: words[0] };
}

/**
 * The options at the start of the magic's line. Only `--timeout` and `--agent` are options: another `--word` starts
 * EXPR (`%remote --counter` decrements counter), unless what follows it cannot continue an expression, as in
 * `--gpu 1 f()` or `--gpu=1`: that is a mistyped option.
 */
function parseOptions(code: string, at: number, usage: 'remote' | 'cell'): { options: RemoteOptions; next: number } {
  const options: RemoteOptions = {};
  const lineEnd = indexOrEnd(code, '\n', at);
  let pos = at;
  for (;;) {
    const wordStart = skipSpaces(code, pos);
    const match = /^--(timeout|agent)(?:=|(?=\s|$))/.exec(code.slice(wordStart, lineEnd));
    if (!match) {
      const unknown = (usage === 'cell' ? /^--[^\s=]*/ : UNKNOWN_OPTION).exec(code.slice(wordStart, lineEnd));
      if (unknown) throw new MagicSyntaxError(`unknown option ${unknown[0]}: ${USAGE[usage]}`);
      return { options, next: wordStart };
    }
    const name = match[1]!;
    const valueStart = match[0].endsWith('=') ? wordStart + match[0].length : skipSpaces(code, wordStart + match[0].length);
    const value = /^\S*/.exec(code.slice(valueStart, lineEnd))![0];
    if (value === '' || value.startsWith('--')) throw new MagicSyntaxError(`--${name} needs a value: ${USAGE[usage]}`);
    pos = valueStart + value.length;
    if ((name === 'timeout' ? options.timeoutMs : options.agent) !== undefined) {
      throw new MagicSyntaxError(`--${name} given twice: give it once: ${USAGE[usage]}`);
    }
    if (name === 'timeout') {
      const seconds = Number(value);
      // The agent takes whole milliseconds up to 2^31 - 1 (about 24 days).
      if (!Number.isFinite(seconds) || seconds < 0.001 || seconds > 2_147_483) {
        throw new MagicSyntaxError(`--timeout needs a number of seconds from 0.001 to 2147483, got ${value}`);
      }
      options.timeoutMs = Math.round(seconds * 1000);
    } else {
      options.agent = value;
    }
  }
}

/**
 * `--word` then `=`, or a value on the same line where an expression needs an operator (a name, number or string,
 * but not `in`, `instanceof`, `as` or `satisfies`): `--word` cannot be a decrement there. The match is the option.
 */
const UNKNOWN_OPTION = /^--[A-Za-z_$][\w$-]*(?==(?!=)|[ \t]+(?!(?:in|instanceof|as|satisfies)(?![\w$]))[\w$'"`])/;

/**
 * A magic below a cell's first non-blank line is TypeScript to tslab, whose error ("Expression expected") does not
 * say why. When a line starts with one as code (not in a string or comment: `%` is then an operator) and the cell
 * does not parse, say where magics go instead; `x\n%remote` is still `x % remote`.
 */
function checkMagicBelow(code: string): void {
  if (!/^[ \t]*%/m.test(code)) return;
  const ts = tslabTypeScript();
  const file = ts.createSourceFile('cell.ts', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  let found: { at: number; word: string } | undefined;
  const visit = (node: import('typescript').Node): void => {
    if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PercentToken) {
      const at = node.operatorToken.getStart(file);
      const word = /^%{1,2}remote(?:_agent|_root)?(?![\w$])/.exec(code.slice(at))?.[0];
      const lineStart = code.lastIndexOf('\n', at - 1) + 1;
      if (word && code.slice(lineStart, at).trim() === '' && (!found || at < found.at)) found = { at, word };
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  if (!found || !ts.transpileModule(code, { reportDiagnostics: true }).diagnostics?.length) return;
  const line = lineAndColumn(code, found.at)[0] + 1;
  throw new MagicSyntaxError(`${found.word} is on line ${line}: a magic must start its cell (only blank lines may come before it)`);
}

/**
 * Puts `return ` in front of the body's last statement when it is an expression statement, so the function returns
 * the cell's value (as tslab shows a cell's last expression). Parsed with TypeScript, so strings, comments, ASI and
 * nested blocks are handled as the compiler sees them.
 */
export function returnLastExpression(body: string): { text: string; at?: number } {
  const ts = tslabTypeScript();
  const file = ts.createSourceFile('cell.ts', body, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const last = file.statements[file.statements.length - 1];
  if (!last || !ts.isExpressionStatement(last)) return { text: body };
  const at = last.getStart(file);
  return { text: `${body.slice(0, at)}${RETURN}${body.slice(at)}`, at };
}

const RETURN = 'return ';

/**
 * Words that start a statement, never an expression, at the start of EXPR (TypeScript would only say "Expression
 * expected"). `function`, `class` and `async` start expressions too; `import` does before `(` or `.`; `type`,
 * `namespace`, `module`, `declare` and `abstract` are names too, so they count only before another name.
 */
const STATEMENT_START = new RegExp(
  String.raw`^(?:(const|let|var|if|for|while|do|switch|try|throw|return|break|continue|debugger|with|export|enum|interface)(?![\w$])` +
    String.raw`|(import)(?![\w$])(?!\s*[(.])` +
    String.raw`|(type|namespace|module|declare|abstract)[ \t]+(?!(?:in|instanceof|as|satisfies)(?![\w$]))(?=[A-Za-z_$]))`,
);

/**
 * Names `let NAME` refuses in a cell (a module, so strict): checked before the remote run, since the assignment cell
 * runs after it.
 */
const RESERVED = new Set([
  ...['break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do', 'else', 'enum'],
  ...['export', 'extends', 'false', 'finally', 'for', 'function', 'if', 'import', 'in', 'instanceof', 'new', 'null'],
  ...['return', 'super', 'switch', 'this', 'throw', 'true', 'try', 'typeof', 'var', 'void', 'while', 'with'],
  // Reserved in strict mode, and at the top level of a module.
  ...['implements', 'interface', 'let', 'package', 'private', 'protected', 'public', 'static', 'yield', 'await'],
  ...['eval', 'arguments'],
]);

/**
 * Blanks the text (newlines kept) and writes `head` at the start of the magic's line (the one holding `magicAt`), so
 * the code after the text keeps its line and column. Code below the magic's line is never moved by a long head.
 */
function overwrite(text: string, head: string, magicAt: number): string {
  const lineStart = text.lastIndexOf('\n', magicAt) + 1;
  const lineEnd = indexOrEnd(text, '\n', magicAt);
  const blank = (part: string): string => part.replace(/[^\n]/g, ' ');
  const pad = ' '.repeat(Math.max(0, lineEnd - lineStart - head.length));
  return blank(text.slice(0, lineStart)) + head + pad + blank(text.slice(lineEnd));
}

function checkNothingAfter(code: string, lineEnd: number, magic: string): void {
  if (code.slice(lineEnd).trim() !== '') throw new MagicSyntaxError(`${magic} takes one line; put other code in a cell of its own`);
}

/**
 * Splits a magic's arguments at blanks. '...' and "..." keep blanks in a word (`--key "/my keys"`), and a word may
 * join quoted and bare parts (`--key="/my keys"`); nothing is expanded here and there are no escapes, so a Windows
 * path needs no doubled backslashes.
 */
function splitWords(text: string, magic: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  const endWord = (): void => {
    // An empty value is no path, name or endpoint (`%remote_root ""` would quietly be the notebook's directory).
    if (word === '') throw new MagicSyntaxError(`empty quotes in ${magic}${text.trimEnd()}: give a value or leave it out`);
    if (word !== undefined) words.push(word);
    word = undefined;
  };
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === '"' || char === "'") {
      const close = text.indexOf(char, i + 1);
      if (close < 0) throw new MagicSyntaxError(`unterminated ${char} in ${magic}${text.trimEnd()}: close the quote`);
      word = (word ?? '') + text.slice(i + 1, close);
      i = close;
    } else if (/\s/.test(char)) {
      endWord();
    } else {
      word = (word ?? '') + char;
    }
  }
  endWord();
  return words;
}

function splitFlag(word: string): [string, string | undefined] {
  const eq = word.indexOf('=');
  return word.startsWith('--') && eq > 0 ? [word.slice(0, eq), word.slice(eq + 1)] : [word, undefined];
}

/** 0-based line and column of an offset. */
function lineAndColumn(text: string, at: number): [number, number] {
  const before = text.slice(0, at);
  return [before.split('\n').length - 1, at - (before.lastIndexOf('\n') + 1)];
}

function firstNonBlank(code: string): number {
  const match = /\S/.exec(code);
  return match ? match.index : -1;
}

/** Skips spaces, tabs and line ends. */
function skipBlanks(code: string, at: number): number {
  const match = /\S/.exec(code.slice(at));
  return match ? at + match.index : code.length;
}

function skipSpaces(code: string, at: number): number {
  let i = at;
  while (i < code.length && (code[i] === ' ' || code[i] === '\t')) i++;
  return i;
}

function indexOrEnd(text: string, search: string, from: number): number {
  const at = text.indexOf(search, from);
  return at < 0 ? text.length : at;
}

/** The assignment cell run after `%remote NAME = EXPR`: NAME gets the value the agent returned, typed as EXPR. */
export function assignmentSource(name: string, expr: string, isAsync: boolean, resultKey: string): string {
  const fn = isAsync ? `async () => (${expr}\n)` : `() => (${expr}\n)`;
  return `let ${name} = (<T,>(_: () => T): Awaited<T> => (globalThis as any)[Symbol.for(${JSON.stringify(resultKey)})])(${fn});\n`;
}

/**
 * The TypeScript view of a `%remote` / `%%remote` cell for completion and inspection: the synthesized source and
 * position maps between it and the cell. Undefined for other cells, or a cursor in the magic's own text.
 */
export function toolingView(code: string, cursor: number): { source: string; cursor: number; toCell(position: number): number } | undefined {
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
  const toSource = (position: number): number => position + shift + (insertedAt !== undefined && position >= insertedAt ? insertedLength : 0);
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
