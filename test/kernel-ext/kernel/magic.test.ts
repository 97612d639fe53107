// The magic parser on its own: which cells are ours, options, assignment, the synthesized TypeScript (positions kept
// where the user wrote them), and the errors for misuse.

import { expect } from 'chai';

import { Magic, MagicSyntaxError, parseCell } from '../../../kernel-ext/kernel/magic';
import { returnLastExpression } from '../../../kernel-ext/kernel/magic-syntax';
import { assignmentSource } from '../../../kernel-ext/kernel/magic-tooling';
import { magicRefusal } from '../../support/magic-parsing';

function remote(code: string): Extract<Magic, { kind: 'remote' }> {
  const magic = parseCell(code);
  if (magic.kind !== 'remote') throw new Error(`expected a %remote magic, got ${magic.kind}`);
  return magic;
}

/** Line and column (0-based) of the first occurrence of `needle`. */
function positionOf(text: string, needle: string): [number, number] {
  const at = text.indexOf(needle);
  if (at < 0) throw new Error(`${needle} not in ${text}`);
  const before = text.slice(0, at);
  return [before.split('\n').length - 1, at - (before.lastIndexOf('\n') + 1)];
}

describe('kernel magic parser', () => {
  it('leaves ordinary TypeScript to tslab, including % inside code and comments', () => {
    const cells = ['const x = 1', '', '   \n  ', '10 % 3', '// %remote f()\nf()', 'const s = `%remote`', 'x\n%remote'];
    // A magic-looking line in a string or comment of a cell that does not parse is left to tslab's error.
    cells.push('const s = `\n%%remote\n`\nf(', '/*\n%%remote\n*/ f(');
    for (const code of cells) {
      expect(parseCell(code), code).to.deep.equal({ kind: 'typescript' });
    }
  });

  it('parses %remote EXPR and keeps the expression at its line and column', () => {
    const magic = remote('%remote train(0.1)');
    expect(magic.expr).to.equal('train(0.1)');
    expect(magic.options).to.deep.equal({});
    expect(magic.assign).to.equal(undefined);
    expect(magic.async).to.equal(false);
    expect(magic.fnSource).to.match(/^\(\) => \( *train\(0\.1\)\n\)$/);
    expect(positionOf(magic.fnSource, 'train')).to.deep.equal(positionOf('%remote train(0.1)', 'train'));
  });

  it('takes a multi-line expression, after leading blank lines, without trailing semicolons', () => {
    const code = '\n\n%remote   f({\n  a: 1,\n});  \n';
    const magic = remote(code);
    expect(magic.expr).to.equal('f({\n  a: 1,\n})');
    expect(positionOf(magic.fnSource, 'a: 1')).to.deep.equal(positionOf(code, 'a: 1'));
    expect(magic.fnSource.split('\n').length).to.equal(code.trimEnd().split('\n').length + 1);
  });

  it('parses options before the expression, in both spellings', () => {
    expect(remote('%remote --timeout 2.5 --agent gpu1 f()').options).to.deep.equal({ timeoutMs: 2500, agent: 'gpu1' });
    expect(remote('%remote --agent=tcp://h:5555 --timeout=10 f()').options).to.deep.equal({
      agent: 'tcp://h:5555',
      timeoutMs: 10_000,
    });
    const magic = remote('%remote --timeout 3 f(1)');
    expect(magic.expr).to.equal('f(1)');
    expect(positionOf(magic.fnSource, 'f(1)')).to.deep.equal([0, '%remote --timeout 3 '.length]);
  });

  it('reads a --word other than --timeout and --agent as the start of EXPR, if it can be one', () => {
    expect(remote('%remote --counter').expr).to.equal('--counter');
    expect(remote('%remote --x').expr).to.equal('--x');
    const magic = remote('%remote --timeout 5 --counter');
    expect(magic.options).to.deep.equal({ timeoutMs: 5000 });
    expect(magic.expr).to.equal('--counter');
    expect(positionOf(magic.fnSource, '--counter')).to.deep.equal([0, '%remote --timeout 5 '.length]);
    for (const expr of [
      '--x == 1',
      '--x in o',
      '--x as number',
      '--x + 1',
      '--x\n+ 1',
      '--agent.count',
      '--timeouts',
    ]) {
      expect(remote(`%remote ${expr}`).expr, expr).to.equal(expr);
      expect(remote(`%remote ${expr}`).options, expr).to.deep.equal({});
    }
  });

  it('parses %remote NAME = EXPR, but not comparisons or arrows', () => {
    const magic = remote('%remote model = await load("m")');
    expect(magic.assign).to.equal('model');
    expect(magic.expr).to.equal('await load("m")');
    expect(magic.async).to.equal(true);
    expect(magic.fnSource.startsWith('async () => (')).to.equal(true);
    expect(magic.inserted).to.equal(undefined);
    expect(remote('%remote a == b').assign).to.equal(undefined);
    expect(remote('%remote a === b').expr).to.equal('a === b');
    expect(remote('%remote x => x').assign).to.equal(undefined);
  });

  it('takes EXPR or NAME = EXPR on the lines below %remote, at their line and column', () => {
    const code = '%remote --timeout 5\n\n  model =\n    fit(data)\n';
    const magic = remote(code);
    expect(magic.options).to.deep.equal({ timeoutMs: 5000 });
    expect(magic.assign).to.equal('model');
    expect(magic.expr).to.equal('fit(data)');
    expect(magic.userStart).to.equal(code.indexOf('fit'));
    expect(magic.fnSource).to.equal('() => (            \n\n         \n    fit(data)\n)');
    expect(positionOf(magic.fnSource, 'fit')).to.deep.equal(positionOf(code, 'fit'));

    const plain = remote('%remote\nfit(data)');
    expect(plain.assign).to.equal(undefined);
    expect(plain.expr).to.equal('fit(data)');
    // The head is longer than `%remote`: it sticks out on the magic's own line, not into the user's code.
    const awaited = remote('%remote\nawait fit(data)');
    expect(awaited.fnSource).to.equal('async () => (\nawait fit(data)\n)');
    expect(awaited.sourceStart - awaited.userStart).to.equal('async () => ('.length - '%remote'.length);
  });

  it('records how far a head longer than the magic pushes EXPR right on its line', () => {
    const code = '\n  %remote await f(1)\n.then(g)';
    const magic = remote(code);
    expect(magic.fnSource).to.equal('\nasync () => (await f(1)\n.then(g)\n)');
    // `await` is at column 10 in the cell and 13 in fnSource; the next line is not moved.
    expect(magic.inserted).to.deep.equal({ line: 1, column: 10, length: 3 });
    expect(positionOf(magic.fnSource, '.then(g)')).to.deep.equal(positionOf(code, '.then(g)'));
    expect(remote('%remote      await f()').inserted).to.equal(undefined);
    expect(remote('%remote f()').inserted).to.equal(undefined);
  });

  it('refuses a statement after %remote, pointing at %%remote', () => {
    expect(magicRefusal('%remote const x = 1')).to.equal(
      "%remote takes an expression, and const starts a statement: put the code under %%remote (the cell's last expression is its result)",
    );
    const cases: [string, string][] = [
      ['%remote for (const x of xs) {}', 'for'],
      ['%remote if (x) y()', 'if'],
      ['%remote\n  return 1', 'return'],
      ['%remote let [a] = xs', 'let'],
      ['%remote throw new Error("x")', 'throw'],
      ['%remote do f(); while (x)', 'do'],
      ['%remote import x from "y"', 'import'],
      ['%remote type T = number', 'type'],
      ['%remote y = while (x) f()', 'while'],
    ];
    for (const [code, word] of cases) expect(magicRefusal(code), code).to.include(`and ${word} starts a statement`);
  });

  it('refuses several statements after %remote, and drops a comment after the closing semicolon', () => {
    const several =
      "%remote takes one expression, and this is 2 statements: put them under %%remote (the cell's last expression is its result)";
    expect(magicRefusal('%remote f(); g()')).to.equal(several);
    expect(magicRefusal('%remote f()\ng()')).to.equal(several);
    const commented = remote('%remote x = f(1);  // the first try');
    expect(commented).to.deep.include({ assign: 'x', expr: 'f(1)' });
    expect(commented.fnSource).to.equal('() => (     f(1)\n)');
    for (const expr of ['{ a: 1 }', 'function () { return 1 }', 'class { }', 'await f()']) {
      expect(remote(`%remote ${expr}; // note`).expr, expr).to.equal(expr);
    }
    // What parses as one expression is left whole: semicolons in strings, templates and bodies, object literals.
    for (const expr of ['"a; b"', '`${a}; b`', '(() => { a(); b() })()', '{ a: 1, b: 2 }', 'f() // a comment']) {
      expect(remote(`%remote ${expr}`).expr, expr).to.equal(expr);
    }
  });

  it('takes expressions that begin with a keyword or a statement word used as a name', () => {
    const exprs = ['function f() { return 1 }', 'class { }', 'async function () {}', 'import("m")', 'import.meta.url'];
    exprs.push(
      'typeof x',
      'new Map()',
      'letters',
      'constant + 1',
      'type',
      'type.length',
      'type as string',
      'module.id',
    );
    for (const expr of exprs) expect(remote(`%remote ${expr}`).expr, expr).to.equal(expr);
  });

  it('builds the assignment cell that types NAME as the awaited expression', () => {
    const source = assignmentSource('report', 'train(0.1)', false, 'key');
    expect(source).to.include('let report = ');
    expect(source).to.include('Awaited<T>');
    expect(source).to.include('(() => (train(0.1)\n))');
    expect(source).to.include('Symbol.for("key")');
  });

  it('parses %%remote: the body runs in an async function that returns the last expression', () => {
    const code = '%%remote --timeout 5\nconst a = 1\nconsole.log(a)\na + 1';
    const magic = parseCell(code);
    if (magic.kind !== 'remote-cell') throw new Error(magic.kind);
    expect(magic.options).to.deep.equal({ timeoutMs: 5000 });
    expect(magic.fnSource.startsWith('async () => {')).to.equal(true);
    expect(magic.fnSource).to.include('\nreturn a + 1\n}');
    expect(magic.inserted).to.deep.equal({ line: 3, column: 0, length: 7 });
    expect(positionOf(magic.fnSource, 'console')).to.deep.equal(positionOf(code, 'console'));
  });

  it('returns only a final expression statement, as the compiler sees statements', () => {
    expect(returnLastExpression('x = 1\ny').text).to.equal('x = 1\nreturn y');
    expect(returnLastExpression('f(\n  1,\n  2\n)').text).to.equal('return f(\n  1,\n  2\n)');
    expect(returnLastExpression('const a = 1').at).to.equal(undefined);
    expect(returnLastExpression('if (a) { b }').at).to.equal(undefined);
    expect(returnLastExpression('for (const x of xs) { f(x) }').at).to.equal(undefined);
    expect(returnLastExpression('a; b // c').text).to.equal('a; return b // c');
    expect(returnLastExpression('const s = "; x"\ns.length').text).to.equal('const s = "; x"\nreturn s.length');
    // A string followed by a template on the next line is one tagged template, as the compiler reads it.
    expect(returnLastExpression('"a"\n`b`').text).to.equal('return "a"\n`b`');
  });

  it('takes blanks and blank lines before every magic, positions kept', () => {
    const line = remote(' \t\n \t%remote x = f()');
    expect(line.assign).to.equal('x');
    expect(line.userStart).to.equal(' \t\n \t%remote x = '.length);
    expect(line.fnSource).to.equal('  \n() => (       f()\n)');
    expect(line.sourceStart).to.equal(line.userStart);

    const code = '\n  %%remote\nconst a = 1\na';
    const cell = parseCell(code);
    if (cell.kind !== 'remote-cell') throw new Error(cell.kind);
    expect(cell.fnSource).to.equal('\nasync () => {\nconst a = 1\nreturn a\n}');
    expect(cell.userStart).to.equal(code.indexOf('\nconst'));
    expect(cell.sourceStart).to.equal(cell.fnSource.indexOf('\nconst'));
    expect(cell.inserted).to.deep.equal({ line: 3, column: 0, length: 7 });
    expect(cell.insertedAt).to.equal(code.lastIndexOf('a'));
    expect(positionOf(cell.fnSource, 'const')).to.deep.equal(positionOf(code, 'const'));

    expect(parseCell('\n\t%remote_agent tcp://h:1')).to.deep.equal({
      kind: 'agent',
      local: false,
      endpoint: 'tcp://h:1',
    });
    expect(parseCell('\n  %remote_root dir')).to.deep.equal({ kind: 'root', dir: 'dir' });
  });

  it('takes Windows line ends after the magic', () => {
    expect(remote('%remote\r\nf()\r\n').expr).to.equal('f()');
    expect(remote('%remote --timeout 1\r\nf()').options).to.deep.equal({ timeoutMs: 1000 });
    expect(parseCell('%%remote\r\nf()').kind).to.equal('remote-cell');
    expect(parseCell('%remote_root d\r\n')).to.deep.equal({ kind: 'root', dir: 'd' });
  });

  it('refuses a magic below the first line of a cell that is not TypeScript, saying where magics go', () => {
    expect(magicRefusal('x\n%%remote\nf()')).to.equal(
      '%%remote is on line 2: a magic must start its cell (only blank lines may come before it)',
    );
    expect(magicRefusal('// train\n  %%remote --timeout 5\nf()')).to.include('%%remote is on line 2');
    expect(magicRefusal('const a = 1\n\n%remote f(a)')).to.include('%remote is on line 3');
    expect(magicRefusal('a()\n%remote_agent tcp://h:1')).to.include('%remote_agent is on line 2');
  });

  it('parses %remote_reload with no file (every module) or files, quoted or bare', () => {
    expect(parseCell('%remote_reload')).to.deep.equal({ kind: 'reload', files: [] });
    expect(parseCell('%remote_reload src/model.ts "src/my data.ts"')).to.deep.equal({
      kind: 'reload',
      files: ['src/model.ts', 'src/my data.ts'],
    });
    expect(() => parseCell('%remote_reload a.ts\nmore')).to.throw(MagicSyntaxError, '%remote_reload takes one line');
  });

  it('parses %remote_agent and %remote_root', () => {
    expect(parseCell('%remote_agent')).to.deep.equal({ kind: 'agent', local: false });
    expect(parseCell('%remote_agent tcp://gpu1:5555 --key ~/.tslab-remote --name gpu1')).to.deep.equal({
      kind: 'agent',
      local: false,
      endpoint: 'tcp://gpu1:5555',
      key: '~/.tslab-remote',
      name: 'gpu1',
    });
    expect(parseCell('  %remote_agent --local')).to.deep.equal({ kind: 'agent', local: true });
    expect(parseCell('%remote_root')).to.deep.equal({ kind: 'root' });
    expect(parseCell('%remote_root ../project')).to.deep.equal({ kind: 'root', dir: '../project' });
  });

  it('takes quoted values with blanks in %remote_agent and %remote_root, expanding nothing', () => {
    expect(parseCell('%remote_root "my dir"')).to.deep.equal({ kind: 'root', dir: 'my dir' });
    expect(parseCell("%remote_root  'my $HOME dir' ")).to.deep.equal({ kind: 'root', dir: 'my $HOME dir' });
    expect(parseCell('%remote_root "it\'s"')).to.deep.equal({ kind: 'root', dir: "it's" });
    expect(parseCell('%remote_root C:\\Users\\me')).to.deep.equal({ kind: 'root', dir: 'C:\\Users\\me' });
    const agent = { kind: 'agent', local: false, endpoint: 'tcp://h:5555', key: '/path with spaces', name: 'my gpu' };
    expect(parseCell('%remote_agent tcp://h:5555 --key "/path with spaces" --name \'my gpu\'')).to.deep.equal(agent);
    expect(parseCell('%remote_agent tcp://h:5555 --key="/path with spaces" --name=my" "gpu')).to.deep.equal(agent);
  });

  it('refuses misuse with a message that says what is expected', () => {
    expect(magicRefusal('%remote')).to.include('needs an expression');
    expect(magicRefusal('%remote   ;')).to.include('needs an expression');
    expect(magicRefusal('%remote --timeout f()')).to.include(
      '--timeout needs a number of seconds from 0.001 to 2147483',
    );
    expect(magicRefusal('%remote --timeout -1 f()')).to.include('--timeout');
    expect(magicRefusal('%remote --timeout 1e-4 f()')).to.include('from 0.001 to 2147483, got 1e-4');
    expect(magicRefusal('%remote --timeout 1e7 f()')).to.include('from 0.001 to 2147483, got 1e7');
    expect(magicRefusal('%remote --gpu 1 f()')).to.include(
      'unknown option --gpu: %remote [--timeout SECONDS] [--agent',
    );
    expect(magicRefusal('%remote --timout 5 f()')).to.include('unknown option --timout:');
    expect(magicRefusal('%remote --agent a --gpu=1 f()')).to.include('unknown option --gpu:');
    expect(magicRefusal('%remote --gpu-count "2" f()')).to.include('unknown option --gpu-count:');
    expect(magicRefusal('%remote --timeout= 5 f()')).to.include('--timeout needs a value');
    expect(magicRefusal('%remote --agent --counter')).to.include('--agent needs a value');
    expect(magicRefusal('%remote --timeout 1 --timeout 2 f()')).to.include('--timeout given twice');
    expect(magicRefusal('%%remote --agent a --agent=b\nf()')).to.include('--agent given twice');
    expect(magicRefusal('%%remote --x\nf()')).to.include('unknown option --x: %%remote');
    expect(magicRefusal('%%remote --timeout 1 --x=2\nf()')).to.include('unknown option --x:');
    expect(magicRefusal('%%remote extra\nf()')).to.include('unexpected');
    expect(magicRefusal('%%remote\n\n')).to.include('needs code below it');
    expect(magicRefusal('%remote_agent gpu1:5555')).to.include('not a ZeroMQ endpoint');
    expect(magicRefusal('%remote_agent --local tcp://h:1')).to.include('no endpoint');
    expect(magicRefusal('%remote_agent tcp://a:1 tcp://b:2')).to.include('one endpoint');
    expect(magicRefusal('%remote_agent tcp://a:1\nf()')).to.include('one line');
    expect(magicRefusal('%remote_agent --key')).to.include('--key needs a value');
    expect(magicRefusal('%remote_agent --local=yes')).to.include('--local takes no value, got --local=yes');
    expect(magicRefusal('%remote_agent --local=')).to.include('--local takes no value');
    expect(magicRefusal('%remote_agent tcp://h:1 --key "/my keys')).to.equal(
      'unterminated " in %remote_agent tcp://h:1 --key "/my keys: close the quote',
    );
    expect(magicRefusal("%remote_root 'my dir  ")).to.equal("unterminated ' in %remote_root 'my dir: close the quote");
    expect(magicRefusal('%remote_root "a b" c')).to.include('one directory at a time');
    expect(magicRefusal('%remote_root ""')).to.equal('empty quotes in %remote_root "": give a value or leave it out');
    expect(magicRefusal("%remote_agent '' --local")).to.include('empty quotes in %remote_agent');
    expect(magicRefusal('%remote_agent tcp://h:1 --name=')).to.include('--name needs a value');
    expect(magicRefusal('%remote_agent tcp://h:1 --key=""')).to.include('--key needs a value');
    expect(magicRefusal('%remotex f()')).to.include('unknown magic %remotex');
    expect(magicRefusal('  %remote-x f()')).to.include('unknown magic %remote-x;');
    expect(magicRefusal('\n%%remote(x)\nf()')).to.include('unknown magic %%remote(x);');
    expect(magicRefusal('%time f()')).to.include('unknown magic %time');
    expect(magicRefusal('%remote const = 1')).to.include('reserved word');
    for (const name of ['default', 'in', 'let', 'static', 'yield', 'eval', 'arguments', 'null']) {
      expect(magicRefusal(`%remote ${name} = f()`)).to.equal(`cannot assign to ${name}: it is a reserved word`);
    }
    expect(remote('%remote type = f()').assign).to.equal('type');
  });
});
