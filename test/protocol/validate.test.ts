// Runtime checks of what arrives from the wire.

import { expect } from 'chai';

import { AgentError } from '../../protocol/errors';
import { fileHash, snapshotHash } from '../../protocol/manifest';
import { checkWireError, validateRequest } from '../../protocol/validate';

function thrown(fn: () => unknown): AgentError {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(AgentError);
    return error as AgentError;
  }
  throw new Error('expected a throw');
}

describe('protocol/validate', () => {
  it('refuses a manifest path with a name over 255 bytes in the header, with UNSAFE_ARCHIVE naming it', () => {
    const path = `src/${'a'.repeat(300)}.js`;
    const files = [{ path, size: 1, hash: fileHash(path, Buffer.from('x')) }];
    const header = { v: 1, type: 'snapshot.check', id: 'k-1', snapshot: snapshotHash(files), files };
    const error = thrown(() => validateRequest(header, 0));
    expect(error.code).to.equal('UNSAFE_ARCHIVE');
    expect(error.message).to.contain(JSON.stringify(path)).and.contain('255 bytes');
  });

  it('checks a wire error field by field, its causes too, and names the bad field', () => {
    const error = checkWireError({ code: 'REMOTE_EXCEPTION', name: 'RangeError', message: 'm', cause: { code: 'INTERNAL' }, props: { a: 1 } });
    expect(error).to.deep.equal({ code: 'REMOTE_EXCEPTION', name: 'RangeError', message: 'm', cause: { code: 'INTERNAL', name: 'Error', message: '' }, props: { a: 1 } });
    const bad = thrown(() => checkWireError({ code: 'NOPE' }, 'header.error'));
    expect(bad.code).to.equal('BAD_MESSAGE');
    expect(bad.message).to.contain('header.error.code');
    expect(thrown(() => checkWireError({ code: 'INTERNAL', cause: { code: 7 } })).message).to.contain('error.cause.code');
  });
});
