/**
 * 4: the cold-start proxy. Builds the vend handler bundle as the CDK does (esbuild, CommonJS,
 * platform node, minified, AWS SDK bundled, the cedar wasm copied beside it), then times fresh
 * `node` processes that require the bundle, build the runtime from the environment and answer
 * their first vend against the running local stack.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';
import { ENV } from '../functions/shared/env.js';
import type { LocalStack } from '../local/stack.js';
import { httpEvent } from '../test/helpers/events.js';
import { GRANT } from './floor-vs-vend.js';
import { now, progress, round, summarize } from './stats.js';

export interface ColdPhase {
  /** Median over the runs: spawn of `node` → the answer, seen by the parent. */
  p50_ms: number;
  max_ms: number;
  /** Medians of the child's own view: node boot (before the harness ran), require of the bundle, the first invocation. */
  boot_ms: number;
  require_ms: number;
  invoke_ms: number;
  statuses: number[];
}

export interface ColdStart {
  runs: number;
  /**
   * Spawn → first decision: the runtime built from the environment (config loaded and checked,
   * SDK clients, Cedar preparsed and its first decision made at init), answering a first request
   * that needs no network (no token: 401).
   */
  first_decision: ColdPhase;
  /** Spawn → first vend answered 200: the above plus JWKS discovery and fetch, PutItem, AssumeRole, UpdateItem. */
  first_vend: ColdPhase;
  bundle_js_kb: number;
  wasm_kb: number;
}

const HARNESS = `'use strict';
const { performance } = require('node:perf_hooks');
const boot = performance.now();
const mod = require('./index.js');
const required = performance.now();
mod.handler(JSON.parse(process.env.BENCH_EVENT)).then((r) => {
  const done = performance.now();
  process.stdout.write('BENCH ' + JSON.stringify({ status: r.statusCode, boot, require: required - boot, invoke: done - required }) + '\\n');
  process.exit(0);
}, (e) => { process.stdout.write('BENCH ' + JSON.stringify({ error: String(e && e.stack || e) }) + '\\n'); process.exit(1); });
`;

export async function buildVendBundle(outDir: string): Promise<{ jsBytes: number; wasmBytes: number }> {
  const outfile = join(outDir, 'index.js');
  await build({
    entryPoints: ['functions/vend/handler.ts'],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // BENCH_COLD_NO_MINIFY=1: readable names in a cold-start CPU profile.
    minify: !process.env.BENCH_COLD_NO_MINIFY,
    outfile,
    logLevel: 'error',
  });
  const require = createRequire(import.meta.url);
  const wasm = join(dirname(require.resolve('@cedar-policy/cedar-wasm/nodejs')), 'cedar_wasm_bg.wasm');
  copyFileSync(wasm, join(outDir, 'cedar_wasm_bg.wasm'));
  return { jsBytes: statSync(outfile).size, wasmBytes: statSync(wasm).size };
}

function runOnce(dir: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ wall: number; child: Record<string, number> & { status?: number; error?: string } }> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    // BENCH_CPU_PROF_DIR: write a CPU profile of each child there (to see where a cold start goes).
    const prof = process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
    const child = spawn(process.execPath, [...prof, 'harness.cjs'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let settled = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      if (!settled) ((settled = true), reject(new Error(`cold start: no answer within ${timeoutMs} ms; stderr: ${err.slice(0, 500)}`)));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('BENCH '));
      if (line && !settled) {
        settled = true;
        const wall = now() - t0;
        clearTimeout(timer);
        resolve({ wall, child: JSON.parse(line.slice(6)) });
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (!settled) ((settled = true), reject(new Error(`cold start: child exited ${code}; stderr: ${err.slice(0, 500)}`)));
    });
  });
}

export async function coldStart(stack: LocalStack, opts: { runs: number }): Promise<ColdStart> {
  const dir = mkdtempSync(join(tmpdir(), 'tvm-bench-bundle-'));
  progress(`cold start: bundling the vend handler into ${dir}`);
  const { jsBytes, wasmBytes } = await buildVendBundle(dir);
  writeFileSync(join(dir, 'harness.cjs'), HARNESS);
  // The compiled config as the CDK bundles it, with the local stack's issuer URL.
  const configFile = join(dir, 'tvm-config.json');
  writeFileSync(configFile, JSON.stringify(stack.config));
  const creds = stack.runtime.settings.credentials!;
  const baseEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: creds.accessKeyId,
    AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    [ENV.config]: configFile,
    [ENV.table]: stack.runtime.table,
    [ENV.dynamodbEndpoint]: stack.endpoints.dynamodb,
    [ENV.stsEndpoint]: stack.endpoints.sts,
    [ENV.iamEndpoint]: stack.endpoints.iam,
    POWERTOOLS_SERVICE_NAME: 'tvm',
  };
  const phase = async (name: string, event: (i: number) => Promise<object>, expect: number): Promise<ColdPhase> => {
    const walls: number[] = [];
    const boots: number[] = [];
    const requires: number[] = [];
    const invokes: number[] = [];
    const statuses: number[] = [];
    // One run first, not counted: it brings the bundle and node into the page cache, as a Lambda's
    // code is local by the time its init starts.
    for (let i = 0; i < opts.runs + 1; i++) {
      const r = await runOnce(dir, { ...baseEnv, BENCH_EVENT: JSON.stringify(await event(i)) }, 20_000);
      if (r.child.error) throw new Error(`cold start (${name}): ${r.child.error}`);
      if (r.child.status !== expect) throw new Error(`cold start (${name}): answered ${r.child.status}, expected ${expect}`);
      if (i === 0) continue;
      walls.push(r.wall);
      boots.push(r.child.boot);
      requires.push(r.child.require);
      invokes.push(r.child.invoke);
      statuses.push(r.child.status ?? 0);
    }
    const w = summarize(walls);
    return {
      p50_ms: round(w.p50, 1),
      max_ms: round(w.max, 1),
      boot_ms: round(summarize(boots).p50, 1),
      require_ms: round(summarize(requires).p50, 1),
      invoke_ms: round(summarize(invokes).p50, 1),
      statuses,
    };
  };
  const vendEvent = (authorization?: string) =>
    httpEvent('POST /v1/vend', { headers: authorization ? { authorization } : {}, body: { grant: GRANT } });
  let firstDecision: ColdPhase;
  let firstVend: ColdPhase;
  try {
    firstDecision = await phase('first decision', async () => vendEvent(), 401);
    firstVend = await phase(
      'first vend',
      async (i) => vendEvent(`Bearer ${await stack.issuer.mint({ sub: `bench-cold-${i}`, claims: { team: 'analytics' } })}`),
      200,
    );
  } finally {
    // Keep the bundle only when profiles were asked for (their frames point into it).
    if (!process.env.BENCH_CPU_PROF_DIR) rmSync(dir, { recursive: true, force: true });
  }
  return {
    runs: opts.runs,
    first_decision: firstDecision,
    first_vend: firstVend,
    bundle_js_kb: round(jsBytes / 1024, 1),
    wasm_kb: round(wasmBytes / 1024, 1),
  };
}
