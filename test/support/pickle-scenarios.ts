// The pickle scenario matrix, as data, so that the same scenarios run through a child process here
// (test/kernel-ext/client/capture/capture-scenarios.test.ts) and through a real agent later: this file gathers them
// from pickle-scenarios-*.ts, one file per theme.
//
// Each scenario's make() builds a fresh function (and arguments) with fresh state. A runner calls make() twice: once
// to compute the expected result locally by calling fn(...args) (unless `expected` is given), once to pickle with
// `pickleCall(fn, args, { codeRoot: PICKLE_FIXTURE_ROOT, ...context })`, run `fn(...args)` on the other side,
// pickle the result back with `pickleResult(result, { codeRoot })`, unpickle it here with
// `{ localClasses: localRegistry }`, and compare: `digest` (when given) maps both results first, then deep equality,
// then `check(result, call)` for what deep equality cannot see (instances of local classes, identity).
// Unpicklable scenarios give `error`: pickleCall must throw a PickleError with exactly that message.
//
// Local modules come from test/fixtures/pickle/project (the code root of these scenarios). The helpers a scenario's
// shipped function uses live in the same file as the scenario, so the function captures them as they are written.

import { closureScenarios } from './pickle-scenarios-closures';
import { dataScenarios } from './pickle-scenarios-data';
import { runtimeScenarios } from './pickle-scenarios-runtime';
import type { PickleScenario } from './pickle-scenario';

export { unpicklableScenarios } from './pickle-scenarios-unpicklable';

export { PICKLE_FIXTURE_ROOT, type PickleScenario, type ScenarioCall } from './pickle-scenario';

export const pickleScenarios: PickleScenario[] = [...closureScenarios, ...dataScenarios, ...runtimeScenarios];
