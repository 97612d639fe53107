// What TypeScript's parser says about a magic's code: one expression or several statements, a statement keyword
// where an expression must be, a magic below the first line, and the last expression a %%remote cell returns.

import { MagicSyntaxError } from './magic-types';
import { lineAndColumn } from './magic-text';
import { tslabTypeScript } from './tslab-parts';

/**
 * The length of the one expression `text` holds: all of it, or without a `;` and a comment after it. Several
 * statements (`f(); g()`) are refused with a pointer to %%remote rather than left to TypeScript's "')' expected".
 */
export function oneExpressionLength(text: string): number {
  const ts = tslabTypeScript();
  const parses = (source: string): boolean =>
    (
      (ts.createSourceFile('expr.ts', source, ts.ScriptTarget.Latest) as unknown as { parseDiagnostics: unknown[] })
        .parseDiagnostics ?? []
    ).length === 0;
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

/**
 * A magic below a cell's first non-blank line is TypeScript to tslab, whose error ("Expression expected") does not
 * say why. When a line starts with one as code (not in a string or comment: `%` is then an operator) and the cell
 * does not parse, say where magics go instead; `x\n%remote` is still `x % remote`.
 */
export function checkMagicBelow(code: string): void {
  if (!/^[ \t]*%/m.test(code)) return;
  const ts = tslabTypeScript();
  const file = ts.createSourceFile('cell.ts', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  let found: { at: number; word: string } | undefined;
  const visit = (node: import('typescript').Node): void => {
    if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PercentToken) {
      const at = node.operatorToken.getStart(file);
      const word = /^%{1,2}remote(?:_agent|_root|_cluster)?(?![\w$])/.exec(code.slice(at))?.[0];
      const lineStart = code.lastIndexOf('\n', at - 1) + 1;
      if (word && code.slice(lineStart, at).trim() === '' && (!found || at < found.at)) found = { at, word };
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  if (!found || !ts.transpileModule(code, { reportDiagnostics: true }).diagnostics?.length) return;
  const line = lineAndColumn(code, found.at)[0] + 1;
  throw new MagicSyntaxError(
    `${found.word} is on line ${line}: a magic must start its cell (only blank lines may come before it)`,
  );
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

export const RETURN = 'return ';

/**
 * Words that start a statement, never an expression, at the start of EXPR (TypeScript would only say "Expression
 * expected"). `function`, `class` and `async` start expressions too; `import` does before `(` or `.`; `type`,
 * `namespace`, `module`, `declare` and `abstract` are names too, so they count only before another name.
 */
export const STATEMENT_START = new RegExp(
  String.raw`^(?:(const|let|var|if|for|while|do|switch|try|throw|return|break|continue|debugger|with|export|enum|interface)(?![\w$])` +
    String.raw`|(import)(?![\w$])(?!\s*[(.])` +
    String.raw`|(type|namespace|module|declare|abstract)[ \t]+(?!(?:in|instanceof|as|satisfies)(?![\w$]))(?=[A-Za-z_$]))`,
);

/**
 * Names `let NAME` refuses in a cell (a module, so strict): checked before the remote run, since the assignment cell
 * runs after it.
 */
export const RESERVED = new Set([
  ...['break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do', 'else', 'enum'],
  ...['export', 'extends', 'false', 'finally', 'for', 'function', 'if', 'import', 'in', 'instanceof', 'new', 'null'],
  ...['return', 'super', 'switch', 'this', 'throw', 'true', 'try', 'typeof', 'var', 'void', 'while', 'with'],
  // Reserved in strict mode, and at the top level of a module.
  ...['implements', 'interface', 'let', 'package', 'private', 'protected', 'public', 'static', 'yield', 'await'],
  ...['eval', 'arguments'],
]);
