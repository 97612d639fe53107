// The detached-job magics as parsed: %remote --detach [--name], %%remote --detach, %remote_jobs, %remote_attach
// (with VAR and a stated TYPE), %remote_cancel, and the errors for misuse.

import { expect } from 'chai';

import { Magic, parseCell } from '../../../kernel-ext/kernel/magic';
import { typedAssignmentSource } from '../../../kernel-ext/kernel/magic-tooling';
import { magicRefusal, remoteOptions } from '../../support/magic-parsing';

describe('detached job magics, parsed', () => {
  it('takes --detach and --name on %remote and %%remote, in either order and spelling', () => {
    expect(remoteOptions('%remote --detach train(3)')).to.deep.equal({ detach: true });
    expect(remoteOptions('%remote --detach --name fit-1 train(3)')).to.deep.equal({ detach: true, name: 'fit-1' });
    expect(remoteOptions('%remote --name=fit.2 --timeout 60 --detach train(3)')).to.deep.equal({
      detach: true,
      name: 'fit.2',
      timeoutMs: 60_000,
    });
    expect(remoteOptions('%%remote --detach --name sweep\nconst x = 1\nx')).to.deep.equal({
      detach: true,
      name: 'sweep',
    });
    const magic = parseCell('%remote --detach --on gpu1 train(3)') as Extract<Magic, { kind: 'remote' }>;
    expect(magic.options).to.deep.equal({ detach: true, on: 'gpu1' });
    expect(magic.expr).to.equal('train(3)');
  });

  it('refuses --detach with --all or an assignment, --name without --detach, and a bad name', () => {
    expect(magicRefusal('%remote --detach --all f()')).to.include(
      '--detach runs one job on one agent, --all one per agent',
    );
    expect(magicRefusal('%remote --detach model = train(3)')).to.include('take it later with %remote_attach JOB model');
    expect(magicRefusal('%remote --name fit train(3)')).to.include('--name names a detached job: add --detach');
    expect(magicRefusal('%remote --detach --name "my fit" f()')).to.include('--name needs a job name');
    expect(magicRefusal('%remote --detach --detach f()')).to.include('--detach given twice');
  });

  it('parses %remote_jobs, %remote_attach with or without VAR and TYPE, and %remote_cancel, each with --agent', () => {
    expect(parseCell('%remote_jobs')).to.deep.equal({ kind: 'jobs' });
    expect(parseCell('%remote_jobs --agent gpu1')).to.deep.equal({ kind: 'jobs', agent: 'gpu1' });
    expect(parseCell('%remote_attach fit')).to.deep.equal({ kind: 'attach', job: 'fit' });
    expect(parseCell('%remote_attach 0a1b2c3d model')).to.deep.equal({
      kind: 'attach',
      job: '0a1b2c3d',
      assign: { name: 'model' },
    });
    expect(parseCell('%remote_attach fit rows: Map<string, number[]> --agent=tcp://h:5555')).to.deep.equal({
      kind: 'attach',
      job: 'fit',
      assign: { name: 'rows', type: 'Map<string, number[]>' },
      agent: 'tcp://h:5555',
    });
    expect(parseCell('%remote_cancel --agent gpu1 fit')).to.deep.equal({ kind: 'cancel', job: 'fit', agent: 'gpu1' });
  });

  it('refuses a missing or malformed job, extra words, unknown options and code below', () => {
    expect(magicRefusal('%remote_attach')).to.include('needs the id or name of a job (%remote_jobs lists them)');
    expect(magicRefusal('%remote_cancel a b')).to.include('one job at a time');
    expect(magicRefusal('%remote_attach fit 3x')).to.include('as VAR or VAR: TYPE');
    expect(magicRefusal('%remote_attach fi/t')).to.include('is not a job id or name');
    expect(magicRefusal('%remote_jobs --all')).to.include('unknown option --all');
    expect(magicRefusal('%remote_jobs now')).to.include('unexpected "now"');
    expect(magicRefusal('%remote_jobs\nmore')).to.include('%remote_jobs takes one line');
  });

  it('types the attached result as stated', () => {
    expect(typedAssignmentSource('model', 'Model', 'k')).to.equal(
      'let model: Model = (globalThis as any)[Symbol.for("k")];\n',
    );
  });
});
