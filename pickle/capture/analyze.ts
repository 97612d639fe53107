// Source analysis of one function (kernel side only): how to evaluate its `toString()` text again, which names
// are free in it (acorn with ecmaVersion 'latest', then eslint-scope's globalScope.through), which `exports.NAME`
// members a notebook function reads, and for classes the rewrite that makes evaluating the class run no user code:
// `extends EXPR` becomes `extends <placeholder>` bound to the live base class, and static field initializers and
// static blocks are removed (the class's static state travels as captured own properties instead).
//
// Results are cached by source text: the same notebook function pickled on every call is parsed once.

import * as acorn from 'acorn';
import * as eslintScope from 'eslint-scope';

export interface Analysis {
  /** 'expr': evaluate `(SOURCE)`; 'method': evaluate `({ SOURCE })` and take the property's function. */
  form: 'expr' | 'method';
  methodKind: 'value' | 'get' | 'set';
  isClass: boolean;
  isArrow: boolean;
  /** Free identifiers of the emitted source, in first-use order. */
  free: string[];
  /** Members read as `exports.NAME` when `exports` is free: a set, or 'all' when `exports` is used otherwise. */
  exportsMembers: Set<string> | 'all' | null;
  /** An arrow function that reads the `this` of the code it was created in. */
  lexicalThis: boolean;
  /** An arrow function that reads the `arguments` of the function it was created in. */
  lexicalArguments: boolean;
  /** Evaluating the source runs code (class heritage, computed keys). */
  definitionTime: boolean;
  /** The text to evaluate remotely (differs from the source for rewritten classes). */
  emitSource: string;
  /** For a class with `extends`: the placeholder name standing for the base class in emitSource. */
  heritageName?: string;
  /** The base class expression was the literal `null`. */
  extendsNull?: boolean;
}

type AstNode = acorn.Node & Record<string, unknown>;

const cache = new Map<string, Analysis | Error>();
const CACHE_LIMIT = 10_000;

/** Analyzes a function's source text; throws a SyntaxError (with a reason) when no wrapping parses. */
export function analyzeSource(source: string): Analysis {
  const hit = cache.get(source);
  if (hit instanceof Error) throw hit;
  if (hit) return hit;
  let result: Analysis | Error;
  try {
    result = analyzeUncached(source);
  } catch (err) {
    result = err instanceof Error ? err : new Error(String(err));
  }
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(source, result);
  if (result instanceof Error) throw result;
  return result;
}

function parse(text: string): AstNode {
  return acorn.parse(text, { ecmaVersion: 'latest', sourceType: 'script', ranges: true }) as unknown as AstNode;
}

function analyzeUncached(source: string): Analysis {
  let prefix = '(';
  let suffix = ')';
  let program: AstNode | null = null;
  let form: Analysis['form'] = 'expr';
  let firstError: unknown = null;
  try {
    program = parse(`(${source})`);
  } catch (err) {
    firstError = err;
  }
  if (!program || !isSingleExpression(program)) {
    try {
      program = parse(`({${source}})`);
      prefix = '({';
      suffix = '})';
      form = 'method';
    } catch (err) {
      const reason = /#[\p{ID_Start}$_]/u.test(source)
        ? 'it is a method that uses private (#) members of its class, which exist only inside the class'
        : String((firstError as Error | null)?.message ?? (err as Error).message);
      throw new SyntaxError(reason);
    }
  }
  const statement = (program['body'] as AstNode[])[0]!;
  let root = statement['expression'] as AstNode;
  let methodKind: Analysis['methodKind'] = 'value';
  let definitionTime = false;
  if (form === 'method') {
    const props = root['properties'] as AstNode[];
    if (props.length !== 1) throw new SyntaxError('the source is not a single method');
    const prop = props[0]!;
    methodKind = prop['kind'] === 'get' ? 'get' : prop['kind'] === 'set' ? 'set' : 'value';
    definitionTime = prop['computed'] === true;
    root = prop['value'] as AstNode;
  }
  const isClass = root.type === 'ClassExpression';
  const isArrow = root.type === 'ArrowFunctionExpression';
  if (isClass) definitionTime = true;

  // Class rewrite: edits in wrapped-text coordinates, applied from the end.
  const edits: { start: number; end: number; text: string }[] = [];
  let heritageName: string | undefined;
  let extendsNull = false;
  if (isClass) {
    const superClass = root['superClass'] as AstNode | null;
    if (superClass) {
      if (superClass.type === 'Literal' && (superClass as unknown as { value: unknown }).value === null) {
        extendsNull = true;
      } else {
        heritageName = freshIdentifier('$extends', source);
        edits.push({ start: superClass.start, end: superClass.end, text: heritageName });
      }
    }
    const wrapped = `${prefix}${source}${suffix}`;
    for (const member of (root['body'] as AstNode)['body'] as AstNode[]) {
      if (member.type === 'StaticBlock') {
        edits.push({ start: member.start, end: member.end, text: '' });
      } else if (member.type === 'PropertyDefinition' && member['static'] === true && member['value']) {
        const key = member['key'] as AstNode;
        if (key.type === 'PrivateIdentifier') continue; // cannot be set from outside: keep its initializer
        const value = member['value'] as AstNode;
        let eq = value.start - 1;
        while (eq > key.end && /\s/.test(wrapped[eq]!)) eq--;
        if (wrapped[eq] === '=') {
          while (eq > key.end && /\s/.test(wrapped[eq - 1]!)) eq--;
          edits.push({ start: eq, end: value.end, text: '' });
        }
      }
    }
  }

  const manager = eslintScope.analyze(program, { ecmaVersion: 2022, sourceType: 'script' });
  const removed = (pos: number): boolean =>
    edits.some((e) => e.text === '' && pos >= e.start && pos < e.end) ||
    (heritageName !== undefined && edits.some((e) => e.text === heritageName && pos >= e.start && pos < e.end));
  const free: string[] = [];
  const freeSet = new Set<string>();
  const exportsNodes = new Set<unknown>();
  let lexicalArguments = false;
  for (const ref of manager.globalScope.through) {
    const id = ref.identifier;
    if (removed(id.start)) continue;
    if (id.name === 'arguments' && isArrow) {
      lexicalArguments = true;
      continue;
    }
    if (id.name === 'exports') exportsNodes.add(id);
    if (!freeSet.has(id.name)) {
      freeSet.add(id.name);
      free.push(id.name);
    }
  }

  let exportsMembers: Analysis['exportsMembers'] = null;
  if (exportsNodes.size > 0) {
    const members = new Set<string>();
    let matched = 0;
    walk(root, (node) => {
      if (node.type !== 'MemberExpression') return;
      const object = node['object'] as AstNode;
      if (!exportsNodes.has(object)) return;
      const property = node['property'] as AstNode;
      if (!node['computed'] && property.type === 'Identifier') {
        members.add((property as unknown as { name: string }).name);
        matched++;
      } else if (
        node['computed'] &&
        property.type === 'Literal' &&
        typeof (property as unknown as { value: unknown }).value === 'string'
      ) {
        members.add((property as unknown as { value: string }).value);
        matched++;
      }
    });
    exportsMembers = matched === exportsNodes.size ? members : 'all';
  }

  const lexicalThis = isArrow && usesLexicalThis(root);

  let emit = `${prefix}${source}${suffix}`;
  for (const edit of [...edits].sort((a, b) => b.start - a.start))
    emit = emit.slice(0, edit.start) + edit.text + emit.slice(edit.end);
  const emitSource = emit.slice(prefix.length, emit.length - suffix.length);

  return {
    form,
    methodKind,
    isClass,
    isArrow,
    free,
    exportsMembers,
    lexicalThis,
    lexicalArguments,
    definitionTime,
    emitSource,
    heritageName,
    extendsNull,
  };
}

function isSingleExpression(program: AstNode): boolean {
  const body = program['body'] as AstNode[];
  if (body.length !== 1 || body[0]!.type !== 'ExpressionStatement') return false;
  const expression = body[0]!['expression'] as AstNode;
  // `(a, b)` or a call would be an expression too, but never a function's toString(): only accept function forms.
  return ['FunctionExpression', 'ArrowFunctionExpression', 'ClassExpression'].includes(expression.type);
}

/** A name absent from `text`, so it can stand in the emitted source without capturing anything. */
function freshIdentifier(base: string, text: string): string {
  let name = base;
  for (let i = 0; text.includes(name); i++) name = `${base}${i}`;
  return name;
}

function walk(node: AstNode, visit: (node: AstNode) => void | false): void {
  const stack: AstNode[] = [node];
  while (stack.length > 0) {
    const current = stack.pop()!;
    if (visit(current) === false) continue;
    for (const key of Object.keys(current)) {
      if (key === 'type' || key === 'start' || key === 'end' || key === 'loc' || key === 'range') continue;
      const value = current[key];
      if (Array.isArray(value)) {
        for (const item of value)
          if (item && typeof item === 'object' && typeof (item as AstNode).type === 'string')
            stack.push(item as AstNode);
      } else if (value && typeof value === 'object' && typeof (value as AstNode).type === 'string') {
        stack.push(value as AstNode);
      }
    }
  }
}

/** `this` (or `super`, `new.target`) used by an arrow function outside any nested non-arrow function or class. */
function usesLexicalThis(arrow: AstNode): boolean {
  let found = false;
  walk(arrow['body'] as AstNode, (node) => {
    if (found) return false;
    if (node.type === 'FunctionExpression' || node.type === 'FunctionDeclaration') return false;
    if (node.type === 'ClassBody') return false;
    if (node.type === 'ThisExpression' || node.type === 'Super') found = true;
    if (node.type === 'MetaProperty' && (node['meta'] as { name?: string }).name === 'new') found = true;
    return undefined;
  });
  if (!found) {
    for (const param of arrow['params'] as AstNode[]) {
      walk(param, (node) => {
        if (node.type === 'FunctionExpression' || node.type === 'FunctionDeclaration' || node.type === 'ClassBody')
          return false;
        if (node.type === 'ThisExpression') found = true;
        return undefined;
      });
    }
  }
  return found;
}
