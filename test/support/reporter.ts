// Mocha's spec reporter plus a closing line `N passed, N failed` that CI reads to tell a run that tested nothing.

import * as Mocha from 'mocha';

class SpecWithTotals extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const { passes, failures, pending } = runner.stats ?? { passes: 0, failures: 0, pending: 0 };
      const skipped = pending > 0 ? `, ${pending} skipped` : '';
      // After the spec reporter's own epilogue, so it is the last line.
      process.on('exit', () => console.log(`${passes} passed, ${failures} failed${skipped}`));
    });
  }
}

export = SpecWithTotals;
