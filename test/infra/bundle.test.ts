/**
 * Bundles the real handlers the way `cdk synth` does (local esbuild, CommonJS, node24) and
 * inspects each asset: the config and cedar-wasm's .wasm sit beside index.js, and nothing AGPL
 * (@cloud-copilot/iam-simulate, iam-data: the local emulator's policy engine) is in any bundle.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Template } from 'aws-cdk-lib/assertions';
import { build } from 'esbuild';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FUNCTION_NAMES, type FunctionName } from '../../infra/constructs/token-vending-machine.js';
import type { TvmStack } from '../../infra/tvm-stack.js';
import { buildStack, fixtureConfig, FIXTURES, STUB_FUNCTIONS } from './helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const real = (name: FunctionName) => join(ROOT, 'functions', name, 'handler.ts');
const present = FUNCTION_NAMES.filter((n) => existsSync(real(n)));
const missing = FUNCTION_NAMES.filter((n) => !existsSync(real(n)));

/** Things that must never ship in a Lambda bundle. */
const FORBIDDEN = [/@cloud-copilot[/\\]/, /iam-simulate/, /iam-data/, /GNU AFFERO GENERAL PUBLIC LICENSE/];

let stack: TvmStack;
let outdir: string;
let functionsDir: string;

beforeAll(() => {
  // Real handlers where they exist, stand-ins for the others (their tests report them as todo).
  functionsDir = join(ROOT, 'node_modules', '.cache', 'tvm-infra-test', String(process.pid));
  for (const name of FUNCTION_NAMES) {
    mkdirSync(join(functionsDir, name), { recursive: true });
    symlinkSync(existsSync(real(name)) ? real(name) : join(STUB_FUNCTIONS, name, 'handler.ts'), join(functionsDir, name, 'handler.ts'));
  }
  outdir = mkdtempSync(join(tmpdir(), 'tvm-cdk-out-'));
  ({ stack } = buildStack({ functionsDir }, { bundle: true, outdir }));
  Template.fromStack(stack); // synthesizes: bundles every function and runs cdk-nag
}, 240_000);

afterAll(() => {
  rmSync(functionsDir, { recursive: true, force: true });
  rmSync(outdir, { recursive: true, force: true });
});

/** Sources and files of a bundle directory that come from AGPL packages. */
function agplIn(dir: string): string[] {
  const found: string[] = [];
  const map = JSON.parse(readFileSync(join(dir, 'index.js.map'), 'utf8')) as { sources: string[] };
  if (map.sources.length === 0) found.push('(empty source map)');
  for (const source of map.sources) if (FORBIDDEN.some((re) => re.test(source))) found.push(source);
  for (const file of readdirSync(dir)) {
    if (file.endsWith('.wasm')) continue;
    const text = readFileSync(join(dir, file), 'utf8');
    if (/GNU AFFERO GENERAL PUBLIC LICENSE|@cloud-copilot\/iam-(simulate|data)/.test(text)) found.push(file);
  }
  return found;
}

function assetDir(name: FunctionName): string {
  const fn = stack.tvm.functions[name].node.defaultChild as CfnFunction;
  const code = stack.resolve(fn.code) as { s3Key: string };
  return join(outdir, `asset.${code.s3Key.replace(/\.zip$/, '')}`);
}

describe('function bundles', () => {
  it.each(present)('%s: index.js (CommonJS) with its source map, tvm-config.json and cedar_wasm_bg.wasm', (name) => {
    const dir = assetDir(name);
    const files = readdirSync(dir).sort();
    expect(files).toEqual(expect.arrayContaining(['cedar_wasm_bg.wasm', 'index.js', 'index.js.map', 'tvm-config.json']));
    expect(JSON.parse(readFileSync(join(dir, 'tvm-config.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(fixtureConfig())));
    const js = readFileSync(join(dir, 'index.js'), 'utf8');
    expect(js).toMatch(/module\.exports|exports\.handler|__export\(/);
    expect(js).not.toMatch(/^import |^export /m);
  });

  it.each(present)('%s: nothing AGPL is bundled', (name) => {
    expect(agplIn(assetDir(name))).toEqual([]);
  });

  it('the AGPL check catches a handler that imports the emulator policy engine', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tvm-agpl-'));
    try {
      await build({
        entryPoints: [join(FIXTURES, 'agpl', 'handler.ts')],
        bundle: true,
        platform: 'node',
        format: 'cjs',
        target: 'node24',
        sourcemap: true,
        outfile: join(dir, 'index.js'),
        logLevel: 'silent',
      });
      expect(agplIn(dir).length).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(present)('%s: the AWS SDK is bundled (the version that was tested is the one that runs)', (name) => {
    const map = JSON.parse(readFileSync(join(assetDir(name), 'index.js.map'), 'utf8')) as { sources: string[] };
    expect(map.sources.some((s) => s.includes('@aws-sdk/') || s.includes('@smithy/'))).toBe(true);
  });

  for (const name of missing) it.todo(`${name}: handler not written yet, bundle not checked`);
});

describe('bundles load as Lambda would load them', () => {
  it.each(present)('%s: index.js loads from its own folder and exports handler', (name) => {
    const dir = assetDir(name);
    const out = spawnSync(
      process.execPath,
      ['-e', `const m = require(${JSON.stringify(join(dir, 'index.js'))}); if (typeof m.handler !== 'function') process.exit(3);`],
      {
        cwd: dir,
        encoding: 'utf8',
        timeout: 30_000,
        env: {
          PATH: process.env.PATH,
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
          AWS_SECRET_ACCESS_KEY: 'example',
          TVM_TABLE: 'tvm-test',
          TVM_CONFIG: join(dir, 'tvm-config.json'),
          TVM_VENDOR_SECRETS: '{}',
          TVM_DENY_POLICY_NAME: 'tvm-revocations',
        },
      },
    );
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
  });
});
