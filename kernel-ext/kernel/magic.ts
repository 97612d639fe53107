// The magics, parsed before TypeScript conversion. A cell whose first non-blank line starts with `%` is ours (a `%`
// line is not valid TypeScript, so the split is unambiguous); every other cell goes to tslab untouched, unless it
// does not parse and a later line starts with a magic: that is refused, as magics must start their cell.
//
//   %remote [--timeout S] [--agent A] EXPR          run EXPR on the agent, show its value
//   %remote --on NAME EXPR                          ... on one agent of the pool (%remote_agent add, %remote_cluster)
//   %remote --all EXPR                              ... on every agent of the pool: one row per agent
//   %remote [--timeout S] [--agent A] NAME = EXPR   ... and assign it in the notebook (NAME has EXPR's static type)
//   %%remote [--timeout S] [--agent A]              first line of a cell: the whole cell runs remotely
//   %remote --detach [--name N] EXPR (or %%remote --detach)  a detached job: runs on after the kernel (jobs-magic.ts)
//   %remote_jobs, %remote_attach JOB [VAR[: TYPE]], %remote_cancel JOB   list, follow, cancel detached jobs
//   %remote_agent [ENDPOINT] [--key DIR] [--name N] [--local]   connect, or show the current agent (or the pool)
//   %remote_agent add NAME ENDPOINT [--key DIR]     add an agent to the pool
//   %remote_cluster ...                             place agents with Slurm or SSH (cluster-magic.ts)
//   %remote_root [DIR]                              set (or show) the code root shipped to agents
//   %remote_reload [FILE ...]                       the agent drops those modules (or all) and their importers
//
// %remote's EXPR runs to the end of the cell; it, or NAME =, may start on a line below %remote, but the options stay
// on the %remote line. EXPR must be an expression: one starting with a statement (`const`, `if`, `for`, `return`,
// ...) is refused with a pointer to %%remote, which runs statements.
//
// The options are `--timeout`, `--agent` and `--on`, each with a value (`--timeout 5` or `--timeout=5`), and `--all`
// (none; `%remote --all` alone is the option, so write `(--all)` to decrement a variable `all`). Any other `--word`
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

import { parseAgentAddLine, parseCluster } from './cluster-magic';
import { parseAgent, parseReload, parseRoot } from './magic-args';
import { parseJobsMagic } from './jobs-magic';
import { firstNonBlank, indexOrEnd, lineAndColumn, overwrite, skipBlanks, skipSpaces } from './magic-text';
import { Insertion, Magic, MagicSyntaxError, RemoteOptions, USAGE } from './magic-types';
import {
  checkMagicBelow,
  oneExpressionLength,
  RESERVED,
  RETURN,
  returnLastExpression,
  STATEMENT_START,
} from './magic-syntax';

export { Insertion, Magic, MagicSyntaxError, RemoteOptions } from './magic-types';

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
      return parseAgentAddLine(code, start + word.length, lineEnd) ?? parseAgent(code, start + word.length, lineEnd);
    case '%remote_cluster':
      return parseCluster(code, start + word.length, lineEnd);
    case '%remote_root':
      return parseRoot(code, start + word.length, lineEnd);
    case '%remote_reload':
      return parseReload(code, start + word.length, lineEnd);
    case '%remote_jobs':
    case '%remote_attach':
    case '%remote_cancel':
      return parseJobsMagic(word, code, start + word.length, lineEnd);
    default:
      if (word === '%remote_' || word.startsWith('%remote') || word.startsWith('%%')) {
        throw new MagicSyntaxError(`unknown magic ${word}; the magics are:\n  ${Object.values(USAGE).join('\n  ')}`);
      }
      throw new MagicSyntaxError(
        `unknown magic ${word}: this kernel knows %remote, %%remote, %remote_agent, %remote_root, %remote_reload, %remote_cluster, ` +
          '%remote_jobs, %remote_attach and %remote_cancel; ' +
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
    if (options.all)
      throw new MagicSyntaxError(`%remote --all shows one row per agent and assigns nothing: drop "${assign} ="`);
    if (options.detach)
      throw new MagicSyntaxError(
        `a detached job's result is not here yet: drop "${assign} =" and take it later with %remote_attach JOB ${assign}`,
      );
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
  if (body.trim() === '')
    throw new MagicSyntaxError('%%remote needs code below it: the rest of the cell runs on the agent');
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

/**
 * The options at the start of the magic's line. Only `--timeout`, `--agent`, `--on` and `--all` are options: another `--word` starts
 * EXPR (`%remote --counter` decrements counter), unless what follows it cannot continue an expression, as in
 * `--gpu 1 f()` or `--gpu=1`: that is a mistyped option.
 */
function parseOptions(code: string, at: number, usage: 'remote' | 'cell'): { options: RemoteOptions; next: number } {
  const options: RemoteOptions = {};
  const lineEnd = indexOrEnd(code, '\n', at);
  let pos = at;
  for (;;) {
    const wordStart = skipSpaces(code, pos);
    const flag = /^--(all|detach)(?=\s|$|(=))/.exec(code.slice(wordStart, lineEnd));
    if (flag) {
      const name = flag[1] as 'all' | 'detach';
      if (flag[2]) throw new MagicSyntaxError(`--${name} takes no value: ${USAGE[usage]}`);
      if (options[name]) throw new MagicSyntaxError(`--${name} given twice: give it once: ${USAGE[usage]}`);
      options[name] = true;
      checkTarget(options, usage);
      pos = wordStart + flag[0].length;
      continue;
    }
    const match = /^--(timeout|agent|on|name)(?:=|(?=\s|$))/.exec(code.slice(wordStart, lineEnd));
    if (!match) {
      const unknown = (usage === 'cell' ? /^--[^\s=]*/ : UNKNOWN_OPTION).exec(code.slice(wordStart, lineEnd));
      if (unknown) throw new MagicSyntaxError(`unknown option ${unknown[0]}: ${USAGE[usage]}`);
      if (options.name !== undefined && !options.detach)
        throw new MagicSyntaxError(`--name names a detached job: add --detach: ${USAGE[usage]}`);
      return { options, next: wordStart };
    }
    const name = match[1]!;
    const valueStart = match[0].endsWith('=')
      ? wordStart + match[0].length
      : skipSpaces(code, wordStart + match[0].length);
    const value = /^\S*/.exec(code.slice(valueStart, lineEnd))![0];
    if (value === '' || value.startsWith('--')) throw new MagicSyntaxError(`--${name} needs a value: ${USAGE[usage]}`);
    pos = valueStart + value.length;
    if (
      (name === 'timeout'
        ? options.timeoutMs
        : name === 'on'
          ? options.on
          : name === 'name'
            ? options.name
            : options.agent) !== undefined
    ) {
      throw new MagicSyntaxError(`--${name} given twice: give it once: ${USAGE[usage]}`);
    }
    if (name === 'timeout') {
      const seconds = Number(value);
      // The agent takes whole milliseconds up to 2^31 - 1 (about 24 days).
      if (!Number.isFinite(seconds) || seconds < 0.001 || seconds > 2_147_483) {
        throw new MagicSyntaxError(`--timeout needs a number of seconds from 0.001 to 2147483, got ${value}`);
      }
      options.timeoutMs = Math.round(seconds * 1000);
    } else if (name === 'name') {
      if (!/^[\w.@-]{1,128}$/.test(value))
        throw new MagicSyntaxError(`--name needs a job name of letters, digits and . _ @ -, got ${value}`);
      options.name = value;
    } else {
      if (name === 'on' && !/^[\w.@-]+$/.test(value))
        throw new MagicSyntaxError(`--on needs the name of an agent of the pool, got ${value}: ${USAGE[usage]}`);
      if (name === 'on') options.on = value;
      else options.agent = value;
      checkTarget(options, usage);
    }
  }
}

/** --agent, --on and --all each say where the call runs: one of them at most; a detached job runs on one agent. */
function checkTarget(options: RemoteOptions, usage: 'remote' | 'cell'): void {
  if (options.all && options.detach)
    throw new MagicSyntaxError(
      `--detach runs one job on one agent, --all one per agent: give one of them: ${USAGE[usage]}`,
    );
  const given = [
    options.agent !== undefined && '--agent',
    options.on !== undefined && '--on',
    options.all && '--all',
  ].filter(Boolean);
  if (given.length > 1)
    throw new MagicSyntaxError(`${given.join(' and ')} both say where to run: give one: ${USAGE[usage]}`);
}

/**
 * `--word` then `=`, or a value on the same line where an expression needs an operator (a name, number or string,
 * but not `in`, `instanceof`, `as` or `satisfies`): `--word` cannot be a decrement there. The match is the option.
 */
const UNKNOWN_OPTION = /^--[A-Za-z_$][\w$-]*(?==(?!=)|[ \t]+(?!(?:in|instanceof|as|satisfies)(?![\w$]))[\w$'"`])/;
