// Runtime checks of what arrives from the wire.

import { expect } from 'chai';

import { AgentError } from '../../protocol/errors';
import { fileHash, snapshotHash } from '../../protocol/manifest';
import { PROTOCOL_VERSION } from '../../protocol/messages';
import { checkWireError, validateReply, validateRequest } from '../../protocol/validate';

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
    const header = { v: PROTOCOL_VERSION, type: 'snapshot.check', id: 'k-1', snapshot: snapshotHash(files), files };
    const error = thrown(() => validateRequest(header, 0));
    expect(error.code).to.equal('UNSAFE_ARCHIVE');
    expect(error.message).to.contain(JSON.stringify(path)).and.contain('255 bytes');
  });

  it('checks a wire error field by field, its causes too, and names the bad field', () => {
    const error = checkWireError({
      code: 'REMOTE_EXCEPTION',
      name: 'RangeError',
      message: 'm',
      cause: { code: 'INTERNAL' },
      props: { a: 1 },
    });
    expect(error).to.deep.equal({
      code: 'REMOTE_EXCEPTION',
      name: 'RangeError',
      message: 'm',
      cause: { code: 'INTERNAL', name: 'Error', message: '' },
      props: { a: 1 },
    });
    const bad = thrown(() => checkWireError({ code: 'NOPE' }, 'header.error'));
    expect(bad.code).to.equal('BAD_MESSAGE');
    expect(bad.message).to.contain('header.error.code');
    expect(thrown(() => checkWireError({ code: 'INTERNAL', cause: { code: 7 } })).message).to.contain(
      'error.cause.code',
    );
  });

  it('refuses a manifest over maxFiles with TOO_LARGE naming the bound, and a bad entry with BAD_MESSAGE naming it', () => {
    const file = (i: number) => ({ path: `f${i}.js`, size: 1, hash: fileHash(`f${i}.js`, Buffer.from('x')) });
    const files = [file(0), file(1), file(2)];
    const header = { v: PROTOCOL_VERSION, type: 'snapshot.check', id: 'k-2', snapshot: snapshotHash(files), files };
    const limits = { maxHeaderBytes: 1 << 20, maxFiles: 2, maxSourceBytes: 100 };
    const over = thrown(() => validateRequest(header, 0, limits));
    expect(over.code).to.equal('TOO_LARGE');
    expect(over.message).to.contain('header.files has 3 items').and.contain('at most 2');
    const bad = thrown(() => validateRequest({ ...header, files: [file(0), { ...file(1), hash: 'nope' }] }, 0, limits));
    expect(bad.code).to.equal('BAD_MESSAGE');
    expect(bad.message).to.contain('header.files[1].hash should be a SHA-256 hex digest');
    const source = thrown(() =>
      validateRequest(
        {
          v: PROTOCOL_VERSION,
          type: 'call',
          id: 'c',
          snapshot: null,
          code: { kind: 'source', source: 'x'.repeat(101) },
          options: {},
        },
        1,
        limits,
      ),
    );
    expect(source.message).to.contain('header.code.source should be at most 100 characters');
  });

  it("checks a status reply's workers, store and resources field by field", () => {
    const agent = {
      name: 'remote-agent',
      version: '0.1.0',
      protocol: PROTOCOL_VERSION,
      instance: 'i',
      hostname: 'h',
      node: 'v20',
      pid: 1,
      workers: 1,
      limits: {
        maxMessageBytes: 1,
        maxArchiveBytes: 1,
        maxFileBytes: 1,
        maxSnapshotBytes: 1,
        maxFiles: 1,
        maxJobsPerClient: 1,
      },
    };
    const worker = { index: 0, pid: 7, state: 'idle', restarts: 0, queued: 0, snapshot: null };
    const store = { snapshots: 0, blobs: 0, bytes: 0, created: 0, evicted: 0 };
    const resources = {
      cpus: 2,
      cpuModel: 'cpu',
      loadAverage: [0.5, 0.25, 0.1],
      memoryTotalMb: 1024,
      memoryFreeMb: 512,
      gpus: [],
    };
    const status = { v: PROTOCOL_VERSION, type: 'status', re: 's-1', agent, workers: [worker], store, resources };
    const reply = validateReply(status, 0);
    expect(reply.type === 'status' && reply.workers[0]?.state).to.equal('idle');
    const badState = thrown(() => validateReply({ ...status, workers: [{ ...worker, state: 'dancing' }] }, 0));
    expect(badState.code).to.equal('BAD_MESSAGE');
    expect(badState.message).to.contain('header.workers[0].state');
    expect(thrown(() => validateReply({ ...status, store: { ...store, bytes: 'many' } }, 0)).message).to.contain(
      'header.store.bytes',
    );
    expect(
      thrown(() => validateReply({ ...status, resources: { ...resources, gpus: [{ index: 0 }] } }, 0)).message,
    ).to.contain('header.resources.gpus[0].');
  });
});
