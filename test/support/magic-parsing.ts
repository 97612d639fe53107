// What the magic parser tests ask of a cell: the options of its %remote / %%remote, or the message it is refused with.

import { expect } from 'chai';

import { MagicSyntaxError, parseCell } from '../../kernel-ext/kernel/magic';

/** The options of a %remote or %%remote cell. */
export function remoteOptions(code: string): unknown {
  const magic = parseCell(code);
  if (magic.kind !== 'remote' && magic.kind !== 'remote-cell') throw new Error(`expected %remote, got ${magic.kind}`);
  return magic.options;
}

/** The message a cell the parser refuses is refused with (a MagicSyntaxError); throws when it is accepted. */
export function magicRefusal(code: string): string {
  try {
    parseCell(code);
  } catch (error) {
    expect(error).to.be.instanceOf(MagicSyntaxError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(code)} to be refused`);
}
