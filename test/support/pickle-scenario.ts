// What a pickle scenario is (pickle-scenarios.ts gathers them and says how they run), and the code root they use.

import * as path from 'node:path';

export const PICKLE_FIXTURE_ROOT = path.resolve(__dirname, '../../../test/fixtures/pickle/project');

export interface ScenarioCall {
  fn: Function;
  args?: unknown[];
  /** The expected result; when absent, the result of calling fn(...args) of a fresh make() locally. */
  expected?: unknown;
  /** Maps both the local and the remote result before they are compared (checksums of large arrays). */
  digest?(result: unknown): unknown;
  /** Checks on the remote result that deep equality cannot make (instances of local classes, identity). */
  check?(result: unknown, call: ScenarioCall): void;
  /** PickleContext fields for this call (notebook locals, label). */
  context?: { locals?: Record<string, unknown>; label?: string };
  /** Runs after pickling, before the remote call: changes made here must not reach the remote side. */
  afterPickle?(): void;
  /** Unpicklable scenarios: the exact PickleError message. */
  error?: string;
  /** Anything check() needs from this make(): the classes pickled with the call, say. */
  refs?: Record<string, unknown>;
}

export interface PickleScenario {
  name: string;
  make(): ScenarioCall;
}
