/**
 * `cdk synth` builds from tvm.yaml and refuses a bad one with the loader's own message.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../functions/shared/load-config.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'tvm-synth-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('config at synth', () => {
  it('`cdk synth` of config/tvm.yaml succeeds offline, cdk-nag clean', () => {
    const out = spawnSync(join(ROOT, 'node_modules', '.bin', 'cdk'), ['synth', '--quiet', '--output', join(dir, 'good')], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 400_000,
      env: { ...process.env, TVM_CONFIG: join(ROOT, 'config', 'tvm.yaml') },
    });
    expect(out.stderr).not.toMatch(/AwsSolutions-/);
    expect(out.status).toBe(0);
    const template = JSON.parse(readFileSync(join(dir, 'good', 'Tvm.template.json'), 'utf8')) as { Resources: Record<string, { Type: string }> };
    expect(Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function')).toHaveLength(5);
  }, 420_000);

  it('a bad tvm.yaml fails `cdk synth` with every problem the loader names, and no stack trace', () => {
    const bad = join(dir, 'tvm.yaml');
    writeFileSync(bad, ['issuers:', '  - name: GitHub', '    issuer: http://example.com', '    audiences: []', 'bogus: 1', ''].join('\n'));
    let expected = '';
    try {
      loadConfig(bad);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expected = (e as ConfigError).message;
    }
    expect(expected).toMatch(/issuers\[0\]\.name/);

    const out = spawnSync(join(ROOT, 'node_modules', '.bin', 'cdk'), ['synth', '--quiet', '--output', join(dir, 'out')], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, TVM_CONFIG: bad },
    });
    expect(out.status).not.toBe(0);
    expect(out.stderr).toContain(expected);
    expect(out.stderr).not.toMatch(/^\s+at /m);
  }, 90_000);
});
