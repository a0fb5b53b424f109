// The tests Stryker runs against each mutant (stryker.config.json): the unit, adapter and handler
// suites. The e2e, infra, CLI and local suites drive child processes and whole stacks that take
// minutes a run on this machine; they stay in `npm test`, not in the mutation loop.
// TVM_MUTATION_TESTS=core,handlers narrows the set (folders under test/) for a quicker partial run.
// (Not mergeConfig: it would concatenate the two `include` lists.)
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    // every mutant runs under load (two runners on a shared machine): generous timeouts
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // a folder under test/, or one test file (core/config.test.ts)
    include: (process.env.TVM_MUTATION_TESTS ?? 'core,adapters,handlers,shared')
      .split(',')
      .map((d) => d.trim())
      .map((d) => (d.endsWith('.test.ts') ? `test/${d}` : `test/${d}/**/*.test.ts`)),
  },
});
