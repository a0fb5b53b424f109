/**
 * Loads a synthesized function asset the way the Lambda Node.js runtime does and invokes it:
 * the asset copied to a read-only folder, a fresh `node` with only the environment given (the
 * template's, resolved, plus what the test adds: credentials, `AWS_ENDPOINT_URL_*`), the
 * handler taken from `index.js` as the template names it (`index.handler`). Events go in one a
 * line; each answer comes back in order, as a warm container would serve them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const HARNESS = `'use strict';
const readline = require('node:readline');
let mod;
try {
  mod = require(process.env.LAMBDA_TASK_ROOT + '/index.js');
} catch (e) {
  process.stdout.write('INIT_FAILED ' + JSON.stringify(String(e && e.message || e)) + '\\n');
  process.exit(2);
}
if (typeof mod.handler !== 'function') { process.stdout.write('INIT_FAILED "no handler export"\\n'); process.exit(3); }
process.stdout.write('READY\\n');
const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    const started = Date.now();
    const context = { awsRequestId: 'test', getRemainingTimeInMillis: () => 300000 - (Date.now() - started) };
    try {
      const result = await mod.handler(JSON.parse(line), context);
      process.stdout.write('RESULT ' + JSON.stringify({ ok: true, result: result === undefined ? null : result }) + '\\n');
    } catch (e) {
      process.stdout.write('RESULT ' + JSON.stringify({ ok: false, error: String(e && e.message || e) }) + '\\n');
    }
  });
});
`;

export interface LoadedBundle {
  /** Invokes the handler once (in this process, as a warm container). */
  invoke(event: unknown): Promise<{ ok: boolean; result?: any; error?: string }>;
  /** Every stdout line that is not the harness's own (the function's logs). */
  logs: string[];
  close(): Promise<void>;
}

/** A read-only copy of `assetDir` (files 0444, folders 0555) and the harness beside it. */
function readOnlyCopy(assetDir: string): { root: string; taskRoot: string } {
  const root = mkdtempSync(join(tmpdir(), 'tvm-lambda-'));
  const taskRoot = join(root, 'task');
  cpSync(assetDir, taskRoot, { recursive: true });
  writeFileSync(join(root, 'harness.cjs'), HARNESS);
  const lock = (p: string) => {
    if (statSync(p).isDirectory()) {
      for (const f of readdirSync(p)) lock(join(p, f));
      chmodSync(p, 0o555);
    } else chmodSync(p, 0o444);
  };
  lock(taskRoot);
  return { root, taskRoot };
}

function unlockAndRemove(root: string): void {
  const open = (p: string) => {
    if (statSync(p).isDirectory()) {
      chmodSync(p, 0o755);
      for (const f of readdirSync(p)) open(join(p, f));
    }
  };
  open(root);
  rmSync(root, { recursive: true, force: true });
}

/**
 * Starts the bundle in `assetDir` with exactly `env` (plus what Lambda itself sets: the task
 * root, the handler name). Rejects if the init fails, with the function's own log lines.
 */
export async function loadBundle(assetDir: string, env: Record<string, string>): Promise<LoadedBundle> {
  const { root, taskRoot } = readOnlyCopy(assetDir);
  const child: ChildProcess = spawn(process.execPath, [join(root, 'harness.cjs')], {
    cwd: taskRoot,
    env: { PATH: '/usr/bin:/bin', ...env, LAMBDA_TASK_ROOT: taskRoot, _HANDLER: 'index.handler', HOME: root },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let stderr = '';
  // Lambda sends both streams to the function's log group.
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr += `${line}\n`;
    logs.push(line);
  });
  const waiting: ((line: string) => void)[] = [];
  let ready!: (v: void) => void;
  let failed!: (e: Error) => void;
  const started = new Promise<void>((res, rej) => ((ready = res), (failed = rej)));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line === 'READY') ready();
    else if (line.startsWith('INIT_FAILED ')) failed(new Error(`init failed: ${JSON.parse(line.slice(12))}\nlogs:\n${logs.join('\n')}`));
    else if (line.startsWith('RESULT ')) waiting.shift()?.(line.slice(7));
    else logs.push(line);
  });
  child.once('exit', (code) => failed(new Error(`the function process exited (${code}) before it was ready\nlogs:\n${logs.join('\n')}\nstderr: ${stderr}`)));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  try {
    await started;
  } catch (e) {
    unlockAndRemove(root);
    throw Object.assign(e as Error, { logs });
  }
  return {
    logs,
    invoke: (event) =>
      new Promise((resolve, reject) => {
        if (child.exitCode !== null) return reject(new Error(`the function process has exited; stderr: ${stderr}`));
        waiting.push((text) => resolve(JSON.parse(text)));
        child.stdin!.write(`${JSON.stringify(event)}\n`);
      }),
    async close() {
      child.stdin!.end();
      child.kill('SIGTERM');
      await exited;
      unlockAndRemove(root);
    },
  };
}

export interface CfnTemplate {
  Resources: Record<string, { Type: string; Properties: Record<string, any> }>;
}

/** A CloudFormation value with its references replaced from `refs` (logical id, `id.Attr`, `AWS::…`). */
export function resolveCfnValue(v: unknown, refs: Record<string, string>): string {
  if (typeof v === 'string') return v;
  const o = v as Record<string, any>;
  const ref = o.Ref ?? (o['Fn::GetAtt'] ? (o['Fn::GetAtt'] as string[]).join('.') : undefined);
  if (ref !== undefined) {
    if (!(ref in refs)) throw new Error(`the template sets an environment value from ${ref}, which is not stood up here`);
    return refs[ref];
  }
  if (o['Fn::Join']) return (o['Fn::Join'][1] as unknown[]).map((x) => resolveCfnValue(x, refs)).join(o['Fn::Join'][0]);
  throw new Error(`unexpected CloudFormation value ${JSON.stringify(v)}`);
}

/** The pseudo parameters of the account the tests stand for. */
export const PSEUDO_REFS = { 'AWS::AccountId': '123456789012', 'AWS::Region': 'us-east-1', 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com' };

/** A function's asset folder in `outdir` (cdk.out). */
export function assetDirOf(template: CfnTemplate, outdir: string, logicalId: string): string {
  return join(outdir, `asset.${(template.Resources[logicalId].Properties.Code.S3Key as string).replace(/\.zip$/, '')}`);
}

/** A function's asset folder in `outdir` and the environment the template gives it, resolved. */
export function functionAsset(template: CfnTemplate, outdir: string, logicalId: string, refs: Record<string, string>) {
  const vars = (template.Resources[logicalId].Properties.Environment?.Variables ?? {}) as Record<string, unknown>;
  return {
    dir: assetDirOf(template, outdir, logicalId),
    env: Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, resolveCfnValue(v, refs)])) as Record<string, string>,
  };
}
