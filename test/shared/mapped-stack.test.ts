/**
 * mappedStack against a real esbuild bundle (minified, with its source map beside it, as the CDK
 * emits it) run by a plain `node` without `--enable-source-maps`: the raw stack names bundle
 * positions, the mapped one the TypeScript source line that threw.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'tvm-mapped-stack-'));
const fixture = join(dir, 'fixture.ts');
const throwLine = 5; // 1-based line of `throw` in the fixture below

function run(): { raw: string; mapped: string } {
  const out = execFileSync(process.execPath, [join(dir, 'out', 'index.js')], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  return JSON.parse(out);
}

beforeAll(async () => {
  writeFileSync(
    fixture,
    [
      `import { mappedStack } from ${JSON.stringify(resolve('functions/shared/mapped-stack.ts'))};`,
      'function deepInside(n: number): number {',
      '  const x = n * 2;',
      '  if (x > 1) {',
      "    throw new Error('boom');",
      '  }',
      '  return x;',
      '}',
      'try { deepInside(4); } catch (e) {',
      '  const raw = (e as Error).stack ?? "";',
      '  process.stdout.write(JSON.stringify({ raw, mapped: mappedStack(raw) }));',
      '}',
    ].join('\n'),
  );
  await build({ entryPoints: [fixture], bundle: true, minify: true, sourcemap: true, sourcesContent: false, platform: 'node', format: 'cjs', outfile: join(dir, 'out', 'index.js'), logLevel: 'silent' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mappedStack', () => {
  it('maps a minified bundle frame to the source line that threw', () => {
    const { raw, mapped } = run();
    const rawTop = raw.split('\n')[1];
    expect(rawTop).toMatch(/out\/index\.js:\d+:\d+\)?$/); // not mapped by Node itself
    const top = mapped.split('\n')[1];
    expect(top).toMatch(new RegExp(`fixture\\.ts:${throwLine}:\\d+\\)?$`));
    expect(mapped.split('\n')[0]).toBe('Error: boom');
    // Node's own frames (node:internal/...) are left as they are
    expect(mapped.split('\n').filter((l) => l.includes('node:')).join('\n')).toBe(raw.split('\n').filter((l) => l.includes('node:')).join('\n'));
  });

  it('leaves the stack as it is where no source map lies beside the bundle', () => {
    const map = join(dir, 'out', 'index.js.map');
    const saved = readFileSync(map);
    rmSync(map);
    try {
      const { raw, mapped } = run();
      expect(mapped).toBe(raw);
    } finally {
      writeFileSync(map, saved);
    }
  });
});
