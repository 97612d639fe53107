// %remote_agent and %remote_root: one line of words, quoted or bare, nothing expanded.

import { Magic, MagicSyntaxError, USAGE } from './magic-types';

export function parseAgent(code: string, at: number, lineEnd: number): Magic {
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
  if (magic.local && magic.endpoint)
    throw new MagicSyntaxError(`--local starts a private agent; it takes no endpoint: ${USAGE.agent}`);
  if (magic.local && magic.key)
    throw new MagicSyntaxError('--local agents listen on a private socket on this machine and need no --key');
  if (magic.endpoint && !/^(tcp|ipc|inproc):\/\//.test(magic.endpoint)) {
    throw new MagicSyntaxError(`${magic.endpoint} is not a ZeroMQ endpoint (like tcp://gpu1:5555): ${USAGE.agent}`);
  }
  return magic;
}

export function parseRoot(code: string, at: number, lineEnd: number): Magic {
  checkNothingAfter(code, lineEnd, '%remote_root');
  const words = splitWords(code.slice(at, lineEnd), '%remote_root');
  if (words.length > 1) throw new MagicSyntaxError(`one directory at a time: ${USAGE.root}`);
  return words[0] === undefined ? { kind: 'root' } : { kind: 'root', dir: words[0] };
}

/** `%remote_reload [FILE ...]`. */
export function parseReload(code: string, at: number, lineEnd: number): Magic {
  checkNothingAfter(code, lineEnd, '%remote_reload');
  return { kind: 'reload', files: splitWords(code.slice(at, lineEnd), '%remote_reload') };
}

export function checkNothingAfter(code: string, lineEnd: number, magic: string): void {
  if (code.slice(lineEnd).trim() !== '')
    throw new MagicSyntaxError(`${magic} takes one line; put other code in a cell of its own`);
}

/**
 * Splits a magic's arguments at blanks. '...' and "..." keep blanks in a word (`--key "/my keys"`), and a word may
 * join quoted and bare parts (`--key="/my keys"`); nothing is expanded here and there are no escapes, so a Windows
 * path needs no doubled backslashes.
 */
export function splitWords(text: string, magic: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  const endWord = (): void => {
    // An empty value is no path, name or endpoint (`%remote_root ""` would quietly be the notebook's directory).
    if (word === '')
      throw new MagicSyntaxError(`empty quotes in ${magic}${text.trimEnd()}: give a value or leave it out`);
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

export function splitFlag(word: string): [string, string | undefined] {
  const eq = word.indexOf('=');
  return word.startsWith('--') && eq > 0 ? [word.slice(0, eq), word.slice(eq + 1)] : [word, undefined];
}
