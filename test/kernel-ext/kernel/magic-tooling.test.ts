// The magic cells' tooling view: completion and inspection inside %remote and %%remote cells map the cursor to the
// synthesized TypeScript and back.

import { expect } from 'chai';

import { toolingView } from '../../../kernel-ext/kernel/magic-tooling';

describe('kernel magic tooling view (completion and inspection in magic cells)', () => {
  it('maps a cursor in %remote and %%remote cells to the synthesized TypeScript and back', () => {
    const line = '%remote --timeout 5 model.tra';
    const view = toolingView(line, line.length)!;
    expect(view.source.slice(0, view.cursor).endsWith('model.tra')).to.equal(true);
    expect(view.toCell(view.cursor - 3)).to.equal(line.length - 3);
    expect(toolingView(line, 3)).to.equal(undefined); // in the magic's own text
    expect(toolingView('const x = 1', 3)).to.equal(undefined);

    // EXPR below the magic, and a head longer than the magic: the map follows the user's code.
    for (const code of ['%remote\n  model.tra', '%remote await model.tra', '  %remote m =\n await model.tra']) {
      const moved = toolingView(code, code.length)!;
      expect(moved.source.slice(0, moved.cursor).endsWith(code.slice(code.indexOf('model')))).to.equal(true);
      expect(moved.toCell(moved.cursor - 3), code).to.equal(code.length - 3);
      expect(moved.source.indexOf('model'), code).to.equal(toolingView(code, code.indexOf('model'))!.cursor);
    }
    expect(toolingView('%remote\n\nf()', '%remote\n'.length)).to.equal(undefined); // before EXPR

    const cell = '%%remote\nconst a = [1]\na.ma';
    const cellView = toolingView(cell, cell.length)!;
    expect(cellView.source.slice(0, cellView.cursor).endsWith('return a.ma')).to.equal(true);
    expect(cellView.toCell(cellView.cursor - 2)).to.equal(cell.length - 2);
    const mid = cell.indexOf('[1]');
    expect(cellView.source[toolingView(cell, mid)!.cursor]).to.equal('[');
  });
});
