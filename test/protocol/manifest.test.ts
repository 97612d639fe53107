// Content addressing and path rules shared by the packager and the agent.

import { expect } from 'chai';

import { isSafeRelativePath } from '../../protocol/manifest';

describe('protocol/manifest', () => {
  it('refuses paths that would escape the directory they are joined to', () => {
    for (const path of ['', '/abs', '../x', 'a/../b', './a', 'a//b', 'a\\b', 'C:x', 'a\0b']) {
      expect(isSafeRelativePath(path), JSON.stringify(path)).to.equal(false);
    }
    expect(isSafeRelativePath('src/model.ts')).to.equal(true);
  });

  it('limits a segment to 255 bytes and a path to 4096 bytes of UTF-8, as file systems do', () => {
    expect(isSafeRelativePath(`src/${'a'.repeat(255)}`)).to.equal(true);
    expect(isSafeRelativePath(`src/${'a'.repeat(256)}`)).to.equal(false);
    expect(isSafeRelativePath('é'.repeat(127))).to.equal(true); // 254 bytes
    expect(isSafeRelativePath('é'.repeat(128))).to.equal(false); // 128 characters, 256 bytes
    const segments = (n: number): string => Array.from({ length: n }, () => 'd'.repeat(240)).join('/');
    expect(isSafeRelativePath(segments(17))).to.equal(true); // 17 × 241 - 1 = 4096 bytes
    expect(isSafeRelativePath(`${segments(17)}x`)).to.equal(false);
    expect(isSafeRelativePath(`${'é'.repeat(120)}/`.repeat(17) + 'a')).to.equal(false); // 2058 characters, 4098 bytes
  });
});
