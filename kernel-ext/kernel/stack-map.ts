// Remote stack frames back to notebook cells. A remote call's functions (the cell's `() => (EXPR)`, functions of
// earlier cells it captured) are the JavaScript tslab compiled from the cells. On the agent, the unpickler compiles
// all of a call's functions into one generated program named after the call (`cell-7.js`), so a frame says
// `cell-7.js:LINE:COL` in that program. To point at a cell and its TypeScript line:
//
//   1. rebuild the generated program here (the same unpickler, on a fresh pickle of the same call, see
//      `recoverProgram`), and find the function whose source holds the frame's line;
//   2. find that source in the JavaScript tslab produced for some cell (the kernel keeps each cell's TypeScript
//      and JavaScript, CellHistory);
//   3. map the JavaScript line to the TypeScript line: tslab emits without source maps, so the cell is transpiled
//      again here with TypeScript's source maps, and tslab's CommonJS lines are aligned with those of the
//      transpile (they differ only by `exports.` prefixes and CommonJS bookkeeping lines).
//
// Frames in the user's files (`src/model.ts:5:11`) are mapped on the agent already and stay as they are; frames of
// the kernel's own entry wrapper are dropped. Whatever cannot be mapped stays as the agent reported it.

import { CellHistory, countLines } from './cell-history';

/** A function of the generated program: where its source starts (0-based line) and its text. */
interface ProgramFunction {
  startLine: number;
  source: string;
}

/**
 * The functions of an unpickler program: each is emitted as `function (P) { ["use strict"; ]return (` (or `({`
 * for methods) on a line of its own, then its source, then `)` (or `})`) and `; }` on the line after it.
 */
export function programFunctions(program: string): ProgramFunction[] {
  const lines = program.split('\n');
  const out: ProgramFunction[] = [];
  const head = /^function \([^)]*\) \{ (?:"use strict"; )?return \(\{?$/;
  for (let i = 0; i < lines.length; i++) {
    if (!head.test(lines[i]!)) continue;
    const method = lines[i]!.endsWith('({');
    const tail = method ? /^\}\); \},?$/ : /^\); \},?$/;
    let end = i + 1;
    while (end < lines.length && !tail.test(lines[end]!)) end++;
    out.push({ startLine: i + 1, source: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return out;
}

/**
 * Runs `unpickle` only as far as its program: the decoder shows the program before compiling it, and the unpickling
 * is stopped there, before any of the program runs. Undefined when the unpickler never builds one (no functions).
 */
export function recoverProgram(
  unpickleUntilProgram: (onProgram: (program: string) => never) => unknown,
): string | undefined {
  const stop = new Error('program recorded');
  let program: string | undefined;
  try {
    unpickleUntilProgram((code) => {
      program = code;
      throw stop;
    });
  } catch (err) {
    if (err !== stop && program === undefined) return undefined;
  }
  return program;
}

export interface StackMapper {
  /** The generated program of the call (recovered lazily, once). */
  program(): string | undefined;
  history: CellHistory;
  /** Names of the kernel's own wrapper functions, whose frames are dropped. */
  ownFunctions: Set<string>;
}

const FRAME = /^(\s+at )(?:(.*?) \()?((?:[^\s()]*[\\/])?cell-\d+\.js):(\d+):(\d+)\)?$/;

/** Rewrites the frames of a remote stack that lie in the call's generated program to `In [N]:LINE:COL`. */
export function mapRemoteStack(stack: string, mapper: StackMapper): string {
  const lines = stack.split('\n');
  if (!lines.some((line) => FRAME.test(line))) return stack;
  const program = mapper.program();
  const functions = program ? programFunctions(program) : [];
  const out: string[] = [];
  for (const line of lines) {
    const match = FRAME.exec(line);
    if (!match) {
      out.push(line);
      continue;
    }
    const [, at, name, , lineText, columnText] = match;
    const frameLine = Number(lineText) - 1;
    const frameColumn = Number(columnText) - 1;
    const fn = findFunction(functions, frameLine);
    if (fn) {
      const located = mapper.history.locateFunction(fn.source);
      if (!located) {
        const bare = name?.replace(/ \[as [^\]]*\]$/, '').replace(/^.*\./, '');
        if (
          (bare && mapper.ownFunctions.has(bare)) ||
          [...mapper.ownFunctions].some((own) => fn.source.startsWith(`function ${own}(`))
        )
          continue;
        out.push(line);
        continue;
      }
      const relLine = frameLine - fn.startLine;
      const jsLine = located.line + relLine;
      const jsColumn = relLine === 0 ? located.column + frameColumn : frameColumn;
      const position = mapper.history.toTypeScript(located.count, jsLine, jsColumn);
      if (position) {
        // tslab's name for a cell's last expression says nothing to the user: such frames are the cell itself.
        const shown = name && !/^(?:Object\.)?tsLastExpr\d*(?: \[as [^\]]*\])?$/.test(name) ? name : undefined;
        out.push(
          `${at}${shown ? `${shown} (` : ''}In [${position.count}]:${position.line}:${position.column}${shown ? ')' : ''}`,
        );
        continue;
      }
    }
    out.push(line);
  }
  return out.join('\n');
}

function findFunction(functions: ProgramFunction[], line: number): ProgramFunction | undefined {
  let found: ProgramFunction | undefined;
  for (const fn of functions) {
    const lineCount = countLines(fn.source) + 1;
    if (line >= fn.startLine && line < fn.startLine + lineCount) found = fn;
  }
  return found;
}
