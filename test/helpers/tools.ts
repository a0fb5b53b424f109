/**
 * Tools from the machine image (moto, cfn-lint, chromium, the AWS CLI, python3 with boto3).
 * A test that needs one skips loudly outside CI when it is missing, and fails in CI (CI=true):
 * a missing tool must never turn a CI run green.
 */
import { spawnSync } from 'node:child_process';

const found = new Map<string, string | undefined>();

/** The absolute path of `tool` on PATH, or undefined. */
export function whichTool(tool: string): string | undefined {
  if (!found.has(tool)) {
    const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
    found.set(tool, r.status === 0 ? r.stdout.trim() || undefined : undefined);
  }
  return found.get(tool);
}

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Whether the tests needing `tool` should run. Outside CI a missing tool prints one plain line
 * and answers false (use with `describe.skipIf(!needTool(...))`); in CI a missing tool throws, so
 * the file fails instead of skipping.
 */
export function needTool(tool: string, why: string): boolean {
  if (whichTool(tool)) return true;
  if (inCI) throw new Error(`${tool} is required in CI (${why}) but is not on PATH`);
  console.warn(`[skipped] ${why}: ${tool} is not on PATH (it is on the CI image; these tests never skip in CI)`);
  return false;
}
