/**
 * 4: the cold start of the vend function as `cdk synth` emits it. Synthesizes the stack (the
 * real construct, bundling on: node24 target, minified, its source map) from the running local
 * stack's config, takes the vend asset from cdk.out, and times fresh `node` processes started as
 * Lambda starts them: the asset as the task root, the template's environment, the SDK's
 * AWS_ENDPOINT_URL_* pointing at the local stack. Also measured with `--enable-source-maps` added
 * (the deployed functions do not set it), to price Node's eager source-map load.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { FUNCTION_NAMES } from '../infra/constructs/token-vending-machine.js';
import { TvmStack } from '../infra/tvm-stack.js';
import { TABLE, type LocalStack } from '../local/stack.js';
import { httpEvent } from '../test/helpers/events.js';
import { assetDirOf, functionAsset, PSEUDO_REFS, type CfnTemplate } from '../test/helpers/lambda-bundle.js';
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
  /** The same with `NODE_OPTIONS=--enable-source-maps` added (not deployed: what it would cost). */
  first_decision_with_source_maps: ColdPhase;
  /** Spawn → first vend answered 200: the above plus JWKS discovery and fetch, PutItem, AssumeRole, UpdateItem. */
  first_vend: ColdPhase;
  /** index.js of the largest function bundle, and each function's. */
  bundle_js_kb: number;
  bundles_js_kb: Record<string, number>;
  /** The vend bundle's source map (shipped in the asset). */
  source_map_kb: number;
  wasm_kb: number;
  /** The deployed NODE_OPTIONS. */
  node_options: string;
}

const HARNESS = `'use strict';
const { performance } = require('node:perf_hooks');
const boot = performance.now();
const mod = require(process.env.LAMBDA_TASK_ROOT + '/index.js');
const required = performance.now();
mod.handler(JSON.parse(process.env.BENCH_EVENT)).then((r) => {
  const done = performance.now();
  process.stdout.write('BENCH ' + JSON.stringify({ status: r.statusCode, boot, require: required - boot, invoke: done - required }) + '\\n');
  process.exit(0);
}, (e) => { process.stdout.write('BENCH ' + JSON.stringify({ error: String(e && e.stack || e) }) + '\\n'); process.exit(1); });
`;

/** Synthesizes the stack into `outDir` (bundling on) and answers the template. */
export function synthesize(config: LocalStack['config'], outDir: string): { template: CfnTemplate; vendId: string } {
  const { local: _local, ...deployed } = config;
  const app = new App({ outdir: outDir });
  const stack = new TvmStack(app, 'Tvm', { config: deployed });
  app.synth();
  const template = JSON.parse(readFileSync(join(outDir, 'Tvm.template.json'), 'utf8')) as CfnTemplate;
  return { template, vendId: stack.getLogicalId(stack.tvm.functions.vend.node.defaultChild as CfnFunction) };
}

function runOnce(dir: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ wall: number; child: Record<string, number> & { status?: number; error?: string } }> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    // BENCH_CPU_PROF_DIR: write a CPU profile of each child there (to see where a cold start goes).
    const prof = process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
    const flags = (process.env.BENCH_COLD_NODE_FLAGS ?? '').split(' ').filter(Boolean);
    const child = spawn(process.execPath, [...prof, ...flags, join(dir, '..', 'harness.cjs')], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let settled = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      if (!settled) ((settled = true), reject(new Error(`cold start: no answer within ${timeoutMs} ms; stderr: ${err.slice(0, 500)}`)));
    }, timeoutMs);
    // The wall time is taken at the answer; the run ends when the child has exited. The next run
    // must not start while this one still runs: after its answer a child goes on compiling the
    // wasm in the background (V8 tiers Cedar's hot functions up) for ~300 ms, and a next child
    // started beside it measured its boot 3× and its require 1.6× slower on this 2-core machine.
    let answered: { wall: number; child: Record<string, number> } | undefined;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('BENCH '));
      if (line && !answered) answered = { wall: now() - t0, child: JSON.parse(line.slice(6)) };
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (settled) return;
      settled = true;
      if (answered) resolve(answered);
      else reject(new Error(`cold start: child exited ${code} without an answer; stderr: ${err.slice(0, 500)}`));
    });
  });
}

export async function coldStart(stack: LocalStack, opts: { runs: number }): Promise<ColdStart> {
  const root = mkdtempSync(join(tmpdir(), 'tvm-bench-cold-'));
  progress(`cold start: synthesizing the stack into ${root}/cdk.out`);
  const outDir = join(root, 'cdk.out');
  const { template, vendId } = synthesize(stack.config, outDir);
  const refs: Record<string, string> = { ...PSEUDO_REFS };
  for (const [id, r] of Object.entries(template.Resources)) if (r.Type === 'AWS::DynamoDB::Table') refs[id] = TABLE;
  const vend = functionAsset(template, outDir, vendId, refs);
  // The asset as Lambda unpacks it: its own folder, the harness outside it.
  const dir = join(root, 'task');
  cpSync(vend.dir, dir, { recursive: true });
  writeFileSync(join(root, 'harness.cjs'), HARNESS);
  const bundles: Record<string, number> = {};
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::Lambda::Function' || !r.Properties.Code?.S3Key) continue;
    const name = FUNCTION_NAMES.find((n) => id.startsWith(`Tvm${n[0].toUpperCase()}${n.slice(1)}Function`)) ?? id;
    bundles[name] = round(statSync(join(assetDirOf(template, outDir, id), 'index.js')).size / 1024, 1);
  }
  const mapBytes = statSync(join(dir, 'index.js.map')).size;
  const wasmBytes = readdirSync(dir).includes('cedar_wasm_bg.wasm') ? statSync(join(dir, 'cedar_wasm_bg.wasm')).size : 0;
  const creds = stack.runtime.settings.credentials!;
  const baseEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: root,
    ...vend.env,
    LAMBDA_TASK_ROOT: dir,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: creds.accessKeyId,
    AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    AWS_ENDPOINT_URL_DYNAMODB: stack.endpoints.dynamodb,
    AWS_ENDPOINT_URL_STS: stack.endpoints.sts,
  };
  const withSourceMaps: NodeJS.ProcessEnv = { ...baseEnv, NODE_OPTIONS: [baseEnv.NODE_OPTIONS, '--enable-source-maps'].filter(Boolean).join(' ') };
  const phase = async (name: string, event: (i: number) => Promise<object>, expect: number, env = baseEnv): Promise<ColdPhase> => {
    const walls: number[] = [];
    const boots: number[] = [];
    const requires: number[] = [];
    const invokes: number[] = [];
    const statuses: number[] = [];
    // One run first, not counted: it brings the bundle and node into the page cache, as a Lambda's
    // code is local by the time its init starts.
    for (let i = 0; i < opts.runs + 1; i++) {
      const r = await runOnce(dir, { ...env, BENCH_EVENT: JSON.stringify(await event(i)) }, 20_000);
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
  let firstDecisionWithMaps: ColdPhase;
  let firstVend: ColdPhase;
  try {
    firstDecision = await phase('first decision', async () => vendEvent(), 401);
    firstDecisionWithMaps = await phase('first decision, with --enable-source-maps', async () => vendEvent(), 401, withSourceMaps);
    firstVend = await phase(
      'first vend',
      async (i) => vendEvent(`Bearer ${await stack.issuer.mint({ sub: `bench-cold-${i}`, claims: { team: 'analytics' } })}`),
      200,
    );
  } finally {
    // Keep the bundle only when profiles were asked for (their frames point into it).
    if (!process.env.BENCH_CPU_PROF_DIR) rmSync(root, { recursive: true, force: true });
  }
  return {
    runs: opts.runs,
    first_decision: firstDecision,
    first_decision_with_source_maps: firstDecisionWithMaps,
    first_vend: firstVend,
    bundle_js_kb: Math.max(...Object.values(bundles)),
    bundles_js_kb: bundles,
    source_map_kb: round(mapBytes / 1024, 1),
    wasm_kb: round(wasmBytes / 1024, 1),
    node_options: vend.env.NODE_OPTIONS ?? '',
  };
}
