// Stryker over functions/adapters/ only, against test/adapters (docs/mutation/adapters.md):
// TVM_MUTATION_TESTS=adapters npx stryker run stryker.adapters.config.mjs
// Its incremental file (reports/stryker/adapters.json) is committed, so a rerun tests only what changed.
import base from './stryker.config.json' with { type: 'json' };

export default {
  ...base,
  mutate: ['functions/adapters/**/*.ts'],
  incrementalFile: 'reports/stryker/adapters.json',
  concurrency: 1,
  htmlReporter: { fileName: 'reports/mutation/adapters.html' },
  jsonReporter: { fileName: 'reports/mutation/adapters.json' },
  thresholds: { high: 90, low: 80, break: null },
};
