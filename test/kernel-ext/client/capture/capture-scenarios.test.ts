// The scenario matrix (test/support/pickle-scenarios.ts), each scenario run through a real agent on loopback (its
// worker shares no memory with this process) and unpickled in this process, where failures are easier to debug;
// both results are compared with the result of running a fresh copy of the scenario locally.

import { expect } from 'chai';

import { AgentClient, connect } from '../../../../kernel-ext/client/agent-client';
import { localRegistry, pickleCall } from '../../../../kernel-ext/client/capture';
import { snapshot } from '../../../../kernel-ext/client/snapshot';
import { PickleError, pickleResult, requireFromRoot, unpickle } from '../../../../pickle';
import { AgentProcess, startAgent } from '../../../support/agent-process';
import {
  PICKLE_FIXTURE_ROOT,
  PickleScenario,
  pickleScenarios as baseScenarios,
  ScenarioCall,
  unpicklableScenarios,
} from '../../../support/pickle-scenarios';
import { closureCellScenarios } from '../../../support/pickle-scenarios-cells';
import { resultScenarios } from '../../../support/pickle-scenarios-results';

const pickleScenarios = [...baseScenarios, ...closureCellScenarios, ...resultScenarios];

const kernelContext = { requireModule: requireFromRoot(PICKLE_FIXTURE_ROOT), localClasses: localRegistry };

async function expectedOf(scenario: PickleScenario): Promise<unknown> {
  const local = scenario.make();
  return local.expected !== undefined ? local.expected : await local.fn(...(local.args ?? []));
}

function compare(result: unknown, expected: unknown, call: ScenarioCall): void {
  const digest = call.digest ?? ((x: unknown) => x);
  expect(digest(result)).to.deep.equal(digest(expected));
  call.check?.(result, call);
}

describe('kernel-ext/client/capture scenarios', function () {
  this.timeout(60_000);

  describe('run through a real agent', () => {
    let agent: AgentProcess;
    let client: AgentClient;
    let snapshotHash: string;
    before(async () => {
      agent = await startAgent({ args: ['--workers', '1'] });
      client = await connect(agent.endpoint);
      const local = await snapshot(PICKLE_FIXTURE_ROOT);
      await client.upload(local);
      snapshotHash = local.hash;
    });
    after(async () => {
      await client?.close();
      await agent?.stop();
    });

    for (const scenario of pickleScenarios) {
      it(scenario.name, async () => {
        const expected = await expectedOf(scenario);
        const call = scenario.make();
        const running = client.call(call.fn, call.args ?? [], {
          codeRoot: PICKLE_FIXTURE_ROOT,
          snapshot: snapshotHash,
          ...call.context,
        });
        call.afterPickle?.();
        compare(await running.result, expected, call);
      });
    }
  });

  describe('unpickled in this process', () => {
    for (const scenario of pickleScenarios) {
      it(scenario.name, async () => {
        const expected = await expectedOf(scenario);
        const call = scenario.make();
        const frames = pickleCall(call.fn, call.args ?? [], { codeRoot: PICKLE_FIXTURE_ROOT, ...call.context });
        call.afterPickle?.();
        const [fn, ...args] = unpickle(frames, { requireModule: requireFromRoot(PICKLE_FIXTURE_ROOT) }) as [
          Function,
          ...unknown[],
        ];
        expect(fn).to.not.equal(call.fn);
        const value = (await fn(...args)) as unknown;
        const result = unpickle(pickleResult(value, { codeRoot: PICKLE_FIXTURE_ROOT }), kernelContext);
        compare(result, expected, call);
      });
    }
  });

  describe('what cannot travel fails before anything is sent', () => {
    for (const scenario of unpicklableScenarios) {
      it(scenario.name, () => {
        const call = scenario.make();
        let thrown: unknown;
        try {
          pickleCall(call.fn, call.args ?? [], { codeRoot: PICKLE_FIXTURE_ROOT, ...call.context });
        } catch (err) {
          thrown = err;
        }
        expect(thrown).to.be.instanceOf(PickleError);
        const err = thrown as PickleError;
        expect(err.message).to.equal(call.error);
        expect(err.code).to.equal('UNPICKLABLE');
        expect(err.message.startsWith(`${err.path.join(' → ')}: `)).to.equal(true);
      });
    }
  });
});
