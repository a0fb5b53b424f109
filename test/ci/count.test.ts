/**
 * `.ci/run`'s counting (`.ci/count.mjs`) over a real vitest JSON report: a file whose beforeAll
 * throws, a file that fails to import and a file whose tests all skip must each show as a failure
 * in the printed line and fail the run — none of them may print "0 failed".
 * The fixtures live in test/fixtures/ci-run/ as *.fixture.ts, outside the suite's include.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const fixtures = join(root, 'test/fixtures/ci-run');

/** Runs vitest over the named fixtures, then .ci/count.mjs over its JSON report. */
function runCounted(...only: string[]) {
  const report = join(mkdtempSync(join(tmpdir(), 'ci-count-')), 'vitest.json');
  const vitest = spawnSync(
    join(root, 'node_modules/.bin/vitest'),
    ['run', '--config', 'vitest.config.ts', '--reporter=json', `--outputFile.json=${report}`, ...only],
    { cwd: fixtures, encoding: 'utf8', env: { ...process.env, CI: 'true' } },
  );
  const count = spawnSync(process.execPath, [join(root, '.ci/count.mjs'), report], { cwd: root, encoding: 'utf8' });
  return { vitest, count, line: count.stdout.trim(), json: JSON.parse(readFileSync(report, 'utf8')) };
}

describe('.ci/count.mjs', () => {
  it('counts a throwing beforeAll, an import error and an all-skipped file as failures', () => {
    const { count, line, json } = runCounted('before-all-throws', 'import-fails', 'all-skipped', 'passes');
    // what vitest alone says: no failed test at all
    expect(json.numFailedTests).toBe(0);
    expect(line).toBe('1 passed, 3 failed, 2 skipped');
    expect(count.status).not.toBe(0);
    expect(count.stderr).toContain('before-all-throws.fixture.ts: failed outside its tests: boom');
    expect(count.stderr).toContain('import-fails.fixture.ts: failed outside its tests: Cannot find module');
    expect(count.stderr).toContain('all-skipped.fixture.ts: ran no test');
  });

  it('passes a run where every file ran and passed', () => {
    const { vitest, count, line } = runCounted('passes');
    expect(vitest.status).toBe(0);
    expect(line).toBe('1 passed, 0 failed');
    expect(count.status).toBe(0);
  });

  it('counts a failed test once, beside its passing neighbours', () => {
    const { count, line } = runCounted('one-fails');
    expect(line).toBe('1 passed, 1 failed');
    expect(count.status).not.toBe(0);
  });
});
