// The pool's magics on their own: %remote --on / --all, %%remote --all, %remote_agent add, %remote_cluster's forms,
// and the errors for misuse.

import { expect } from 'chai';

import { parseCell } from '../../../kernel-ext/kernel/magic';
import { magicRefusal, remoteOptions } from '../../support/magic-parsing';

describe('kernel pool magic parser', () => {
  it('takes --on NAME and --all on %remote and %%remote, with the other options', () => {
    expect(remoteOptions('%remote --on gpu1 f()')).to.deep.equal({ on: 'gpu1' });
    expect(remoteOptions('%remote --on=gpu-2 --timeout 5 f()')).to.deep.equal({ on: 'gpu-2', timeoutMs: 5000 });
    expect(remoteOptions('%remote --all f()')).to.deep.equal({ all: true });
    expect(remoteOptions('%remote --timeout 2 --all\nf()')).to.deep.equal({ all: true, timeoutMs: 2000 });
    expect(remoteOptions('%%remote --all\nconst x = 1\nx')).to.deep.equal({ all: true });
    expect(remoteOptions('%%remote --on a --timeout=1\nx')).to.deep.equal({ on: 'a', timeoutMs: 1000 });
    const magic = parseCell('%remote --all process.pid');
    expect(magic.kind === 'remote' && magic.expr).to.equal('process.pid');
  });

  it('keeps --word that is no option as EXPR: a decrement of a variable named like one', () => {
    expect(parseCell('%remote --allCount').kind).to.equal('remote');
    const magic = parseCell('%remote (--all)');
    expect(magic.kind === 'remote' && [magic.expr, magic.options]).to.deep.equal(['(--all)', {}]);
  });

  it('refuses --on with --all or --agent, values where none go, and assigning the rows of --all', () => {
    expect(magicRefusal('%remote --on a --all f()')).to.include('--on and --all both say where to run');
    expect(magicRefusal('%remote --agent tcp://h:1 --on a f()')).to.include('--agent and --on');
    expect(magicRefusal('%%remote --all --agent x\nf()')).to.include('--agent and --all');
    expect(magicRefusal('%remote --all=1 f()')).to.include('--all takes no value');
    expect(magicRefusal('%remote --all --all f()')).to.include('--all given twice');
    expect(magicRefusal('%remote --on f()')).to.include('--on needs the name of an agent of the pool, got f()');
    expect(magicRefusal('%remote --on --all f()')).to.include('--on needs a value');
    expect(magicRefusal('%remote --all x = f()')).to.include('assigns nothing');
    expect(magicRefusal('%remote --all')).to.include('needs an expression');
  });

  it('parses %remote_agent add NAME ENDPOINT [--key DIR], and keeps the old forms', () => {
    expect(parseCell('%remote_agent add gpu1 tcp://127.0.0.1:5555')).to.deep.equal({
      kind: 'agent-add',
      name: 'gpu1',
      endpoint: 'tcp://127.0.0.1:5555',
    });
    expect(parseCell('%remote_agent add gpu1 tcp://h:1 --key "~/my keys"')).to.deep.equal({
      kind: 'agent-add',
      name: 'gpu1',
      endpoint: 'tcp://h:1',
      key: '~/my keys',
    });
    expect(parseCell('%remote_agent add --key=k n ipc:///tmp/a.sock')).to.deep.equal({
      kind: 'agent-add',
      name: 'n',
      endpoint: 'ipc:///tmp/a.sock',
      key: 'k',
    });
    expect(parseCell('%remote_agent')).to.deep.equal({ kind: 'agent', local: false });
    expect(parseCell('%remote_agent tcp://h:1 --name add')).to.deep.equal({
      kind: 'agent',
      local: false,
      endpoint: 'tcp://h:1',
      name: 'add',
    });
  });

  it('refuses %remote_agent add without a name and an endpoint, or with other options', () => {
    expect(magicRefusal('%remote_agent add')).to.include('add takes a name and an endpoint, got none');
    expect(magicRefusal('%remote_agent add gpu1')).to.include('got gpu1');
    expect(magicRefusal('%remote_agent add tcp://h:1 gpu1')).to.include('the name comes first');
    expect(magicRefusal('%remote_agent add gpu1 h:1')).to.include('not a ZeroMQ endpoint');
    expect(magicRefusal('%remote_agent add g/1 tcp://h:1')).to.include('agent names are');
    expect(magicRefusal('%remote_agent add g tcp://h:1 --name x')).to.include('unknown option --name');
    expect(magicRefusal('%remote_agent add g tcp://h:1 --key')).to.include('--key needs a directory');
  });

  it('parses %remote_cluster slurm with its options and srun arguments after --', () => {
    expect(parseCell('%remote_cluster slurm --nodes 3')).to.deep.equal({
      kind: 'cluster',
      action: 'slurm',
      nodes: 3,
      srunArgs: [],
    });
    expect(
      parseCell(
        '%remote_cluster slurm --nodes=2 --gpus-per-node 4 --partition gpu --time 1:00:00 --agent-args "--workers 3 " -- --exclusive --mem "8G"',
      ),
    ).to.deep.equal({
      kind: 'cluster',
      action: 'slurm',
      nodes: 2,
      gpusPerNode: 4,
      partition: 'gpu',
      time: '1:00:00',
      agentArgs: ['--workers', '3'],
      srunArgs: ['--exclusive', '--mem', '8G'],
    });
  });

  it('parses %remote_cluster ssh, attach, down and the bare listing', () => {
    expect(parseCell('%remote_cluster ssh a,b.lan,127.0.0.3')).to.deep.equal({
      kind: 'cluster',
      action: 'ssh',
      hosts: ['a', 'b.lan', '127.0.0.3'],
    });
    expect(parseCell("%remote_cluster ssh --agent-command 'npx remote-agent serve' h1")).to.deep.equal({
      kind: 'cluster',
      action: 'ssh',
      hosts: ['h1'],
      agentCommand: 'npx remote-agent serve',
    });
    expect(parseCell('%remote_cluster attach "/shared/run 1"')).to.deep.equal({
      kind: 'cluster',
      action: 'attach',
      dir: '/shared/run 1',
    });
    expect(parseCell('%remote_cluster down')).to.deep.equal({ kind: 'cluster', action: 'down' });
    expect(parseCell('  %remote_cluster')).to.deep.equal({ kind: 'cluster', action: 'list' });
  });

  it('refuses %remote_cluster misuse with the form to write', () => {
    expect(magicRefusal('%remote_cluster slurm')).to.include('slurm needs --nodes N');
    expect(magicRefusal('%remote_cluster slurm --nodes 0')).to.include('--nodes needs a whole number from 1, got 0');
    expect(magicRefusal('%remote_cluster slurm --nodes 2.5')).to.include('got 2.5');
    expect(magicRefusal('%remote_cluster slurm --nodes 2 --gpus 1')).to.include('unknown option --gpus');
    expect(magicRefusal('%remote_cluster slurm --nodes 2 --nodes 3')).to.include('--nodes given twice');
    expect(magicRefusal('%remote_cluster slurm --nodes 2 extra')).to.include('unexpected extra');
    expect(magicRefusal('%remote_cluster ssh')).to.include('ssh needs the hosts');
    expect(magicRefusal('%remote_cluster ssh a b')).to.include('one list separated by commas');
    expect(magicRefusal('%remote_cluster ssh a,,b')).to.include('empty host name');
    expect(magicRefusal('%remote_cluster ssh a --agent-command')).to.include('--agent-command needs a value');
    expect(magicRefusal('%remote_cluster attach')).to.include('attach takes one directory');
    expect(magicRefusal('%remote_cluster down now')).to.include('down takes nothing more');
    expect(magicRefusal('%remote_cluster up')).to.include('unknown %remote_cluster action up');
    expect(magicRefusal('%remote_cluster down\nf()')).to.include('takes one line');
    expect(magicRefusal('f(\n%remote_cluster down')).to.include('%remote_cluster is on line 2');
  });
});
