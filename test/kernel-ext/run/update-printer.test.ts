// `run`'s printing of status lines the kernel updates in place: rewritten on a terminal, rarer and rarer elsewhere.

import { expect } from 'chai';

import { UpdatePrinter } from '../../../kernel-ext/run/update-printer';

function printerFor(tty: boolean): { printer: UpdatePrinter; out: () => string } {
  let text = '';
  return { printer: new UpdatePrinter((_stream, chunk) => (text += chunk), tty), out: () => text };
}

/** An hour-long call: its elapsed line shown, updated every second, emptied, and the final time shown below. */
function hourLongCall(printer: UpdatePrinter): void {
  printer.printed('stdout', 'running on local: 3 s\n', 'elapsed-1');
  for (let s = 4; s <= 3600; s++) {
    printer.updated('elapsed-1', `running on local: ${s} s\n`);
    if (s === 10) printer.printed('stdout', 'a line of output\n');
  }
  printer.updated('elapsed-1', '\n');
  printer.printed('stdout', 'ran on local in 3600.2 s\n', 'elapsed-2');
}

describe('kernel-ext/run/update-printer', () => {
  it('prints updates at growing intervals when stdout is not a terminal: a dozen lines for an hour', () => {
    const { printer, out } = printerFor(false);
    hourLongCall(printer);
    const lines = out().split('\n').filter(Boolean);
    expect(lines.filter((line) => line.startsWith('running on local'))).to.have.length.within(10, 14);
    expect(lines.slice(0, 4)).to.deep.equal([
      'running on local: 3 s',
      'running on local: 4 s',
      'running on local: 5 s',
      'running on local: 7 s',
    ]);
    expect(lines.at(-1)).to.equal('ran on local in 3600.2 s');
  });

  it('rewrites the line in place on a terminal while it is the last one printed', () => {
    const { printer, out } = printerFor(true);
    printer.printed('stdout', 'running on local: 3 s\n', 'elapsed-1');
    printer.updated('elapsed-1', 'running on local: 4 s\n');
    printer.updated('elapsed-1', 'running on local: 5 s\n');
    expect(out()).to.equal(
      'running on local: 3 s\n\x1b[1A\r\x1b[2Krunning on local: 4 s\n\x1b[1A\r\x1b[2Krunning on local: 5 s\n',
    );
    printer.printed('stdout', 'output\n');
    printer.updated('elapsed-1', 'running on local: 6 s\n'); // no longer the last line: printed anew, then rewritten
    printer.updated('elapsed-1', 'running on local: 7 s\n');
    expect(out().split('output\n')[1]).to.equal('running on local: 6 s\n\x1b[1A\r\x1b[2Krunning on local: 7 s\n');
  });
});
