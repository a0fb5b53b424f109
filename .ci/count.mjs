#!/usr/bin/env node
// Prints the run's real counts from vitest's JSON report as `N passed, N failed[, N skipped]` and
// exits non-zero unless every file ran at least one test and nothing failed.
// A file counts as one failure (beyond its failed tests) when it failed as a whole — a throwing
// beforeAll/afterAll marks its tests skipped, an import error contributes no tests — or when it
// ran no test at all (everything skipped or empty): a test that never ran proves nothing.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const report = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const files = report.testResults ?? [];
let passed = 0;
let failed = 0;
let skipped = 0;
const broken = [];
for (const file of files) {
  const tests = file.assertionResults ?? [];
  const p = tests.filter((t) => t.status === 'passed').length;
  const f = tests.filter((t) => t.status === 'failed').length;
  passed += p;
  failed += f;
  skipped += tests.length - p - f;
  const name = relative(process.cwd(), file.name);
  if (file.status === 'failed' && f === 0) {
    failed += 1;
    broken.push(`${name}: failed outside its tests: ${String(file.message ?? '').split('\n')[0]}`);
  } else if (p + f === 0 && file.status !== 'failed') {
    failed += 1;
    broken.push(`${name}: ran no test (${tests.length} skipped or todo)`);
  }
}
if (files.length === 0) {
  failed += 1;
  broken.push('the report lists no test file');
}
if (report.success === false && failed === 0) {
  // vitest failed the run for something outside every file (an unhandled error, a bad config)
  failed += 1;
  broken.push('vitest reported the run as failed outside any test file (see its output above)');
}
for (const line of broken) console.error(`[ci] ${line}`);
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
if (failed > 0) process.exitCode = 1;
