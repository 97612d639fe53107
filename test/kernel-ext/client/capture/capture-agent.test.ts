// Pickled calls through a real agent, for what the scenario matrix cannot show: packages resolved by name on the
// agent (and a warning when its version differs), and errors that happen before or after the call.

import { expect } from 'chai';
import * as net from 'node:net';
import * as path from 'node:path';

import { AgentClient, connect } from '../../../../kernel-ext/client/agent-client';
import { PickleError } from '../../../../pickle';
import { RemoteError } from '../../../../protocol/errors';
import { rejectionOf } from '../../../support/rejection';
import { AgentProcess, makeTree, startAgent } from '../../../support/agent-process';

const pkg = (version: string, answer: string): Record<string, string> => ({
  'node_modules/verpkg/package.json': JSON.stringify({ name: 'verpkg', version, main: 'index.js' }),
  'node_modules/verpkg/index.js': `exports.where = () => ${JSON.stringify(answer)};\n`,
});

describe('pickled calls through a real agent', function () {
  this.timeout(30_000);
  let agent: AgentProcess;
  let client: AgentClient;
  let local: { where(): string };

  before(async () => {
    const agentSide = await makeTree({
      ...pkg('1.0.0', 'agent'),
      'node_modules/agentonly/package.json': '{"name":"agentonly","version":"1.0.0"}',
      'node_modules/agentonly/index.js': 'exports.hello = () => "hi";\n',
    });
    const notebookSide = await makeTree(pkg('2.0.0', 'notebook'));
    agent = await startAgent({ args: ['--workers', '1', '--node-modules', path.join(agentSide, 'node_modules')] });
    client = await connect(agent.endpoint);
    local = require(path.join(notebookSide, 'node_modules', 'verpkg')) as { where(): string };
  });

  after(async () => {
    await client?.close();
    await agent?.stop();
  });

  it("runs a package by name with the agent's copy and warns that its version differs", async () => {
    const verpkg = local;
    const stderr: string[] = [];
    const where = await client.call(() => verpkg.where(), [], {
      onOutput: (stream, text) => stream === 'stderr' && stderr.push(text),
    }).result;
    expect(where).to.equal('agent');
    expect(stderr.join('')).to.include('package verpkg is 1.0.0 on the agent, 2.0.0 in the notebook');
  });

  it('fails only the call whose result cannot be rebuilt here, and goes on', async () => {
    // The package exists only on the agent: its function comes back as a module reference the notebook cannot load.
    const error = await rejectionOf(client.call(() => require('agentonly').hello, []).result, Error);
    expect(error.message).to.include('agentonly');
    expect(await client.call(() => 'still here', []).result).to.equal('still here');
  });

  it('fails only the call whose output handler throws, and goes on', async () => {
    const error = await rejectionOf(
      client.call(() => console.log('hello'), [], {
        onOutput: () => {
          throw new Error('display failed');
        },
      }).result,
      Error,
    );
    expect(error.message).to.equal('display failed');
    expect(await client.call(() => 1 + 1, []).result).to.equal(2);
  });

  it('refuses a value that cannot travel before sending, naming its path', async () => {
    const socket = new net.Socket();
    const cfg = { conn: socket };
    const useIt = () => cfg.conn.remotePort;
    const error = await rejectionOf(client.call(useIt, []).result, PickleError);
    expect(error.message).to.match(/^useIt → captured cfg → \.conn: net\.Socket cannot be pickled/);
    socket.destroy();
  });

  it('refuses a result that cannot travel back (a function made on the agent over a socket) with a PickleError naming its path, and goes on', async () => {
    const error = await rejectionOf(
      client.call(() => {
        const conn = new (require('node:net') as typeof net).Socket();
        return { send: (text: string) => conn.write(text) };
      }, []).result,
      RemoteError,
    );
    expect(error.code).to.equal('UNPICKLABLE');
    expect(error.remoteName).to.equal('PickleError');
    expect(error.message).to.equal(
      'the job ran, but its return value cannot be sent back: result → .send → captured conn: net.Socket cannot be pickled (live handle). ' +
        'A result travels back by value: return plain data instead (an address, a count) and keep the live object on the agent, in a module-level variable for later calls',
    );
    expect(error.remoteStack).to.not.include('\n    at ');
    expect(await client.call(() => 'still here', []).result).to.equal('still here');
  });

  it('brings a function made on the agent back by value', async () => {
    const makeAdder = (n: number) => ({ add: (x: number) => x + n });
    const back = await client.call(() => makeAdder(2), []).result;
    expect((back as { add(x: number): number }).add(40)).to.equal(42);
  });

  it('rejects with the remote exception, its stack naming the function', async () => {
    function failing(): never {
      throw new TypeError('bad input');
    }
    const error = await rejectionOf(client.call(failing, []).result, RemoteError);
    expect(error.code).to.equal('REMOTE_EXCEPTION');
    expect(error.remoteName).to.equal('TypeError');
    expect(error.remoteStack).to.include('failing');
  });
});
