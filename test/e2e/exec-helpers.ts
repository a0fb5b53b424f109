/**
 * What the `tvm exec` / `tvm agent` tests share: the CLI run as a user runs it (its own process),
 * a clean environment, and the stack's lease records read through the admin route.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type S3Answer, s3Get, type VendedCredentials } from '../helpers/s3.js';
import type { TestStack } from '../helpers/stack.js';

export const BIN = resolve('cli/bin.mjs');

export { cleanEnv } from '../helpers/s3.js';

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  done: Promise<Ran>;
  /** Resolves once stdout contains `text` (rejects if the process ends first). */
  waitFor(text: string | RegExp): Promise<string>;
}

/** Starts `node cli/bin.mjs ARGS` in its own process. */
export function startTvm(args: string[], env: Record<string, string>, cwd?: string): Running {
  const child = spawn('node', [BIN, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters: (() => void)[] = [];
  child.stdout!.on('data', (d) => {
    stdout.push(String(d));
    for (const w of waiters) w();
  });
  child.stderr!.on('data', (d) => stderr.push(String(d)));
  const done = new Promise<Ran>((r) => child.on('close', (code, signal) => r({ code, signal, stdout: stdout.join(''), stderr: stderr.join('') })));
  const waitFor = (text: string | RegExp) =>
    new Promise<string>((res, rej) => {
      const check = () => {
        const all = stdout.join('');
        if (typeof text === 'string' ? all.includes(text) : text.test(all)) res(all);
      };
      waiters.push(check);
      check();
      void done.then((r) => rej(new Error(`tvm ended (${r.code ?? r.signal}) before printing ${text}: ${r.stderr}`)));
    });
  return { child, stdout, stderr, done, waitFor };
}

export const runTvm = (args: string[], env: Record<string, string>, cwd?: string) => startTvm(args, env, cwd).done;

export interface LeaseView {
  leaseId: string;
  status: string;
  accessKeyId?: string;
  issuedAt: string;
  expiresAt: string;
  revokeReason?: string;
}

/** Every lease of `dev|<sub>`, through the admin route. */
export async function leasesOf(stack: TestStack, sub: string): Promise<LeaseView[]> {
  const res = await fetch(`${stack.api}/v1/admin/leases?principal=${encodeURIComponent(`dev|${sub}`)}&limit=1000`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
  if (res.status !== 200) throw new Error(`admin leases: ${res.status}`);
  return ((await res.json()) as { leases: LeaseView[] }).leases;
}

/** The object the example's reports-read grant allows a `team=analytics` token, its text, and another team's. */
export const ALLOWED_KEY = 'reports/analytics/q3.csv';
export const ALLOWED_TEXT = readFileSync('config/local-s3/reports/analytics/q3.csv', 'utf8');
export const OTHER_KEY = 'reports/finance/q3.csv';

/**
 * A GetObject of `key` (`bucket/key`) at the local S3 with these credentials, signed at `at` (the
 * stack's clock when a test moves it): 'ok' when the object came back, else S3's error code
 * (`AccessDenied`, `ExpiredToken`…). What the local S3 answers is AWS's decision for that session:
 * role policy ∩ session policy − the role's deny policy (tvm's revocations).
 */
export async function s3Read(stack: TestStack, c: VendedCredentials, key: string, at = Date.now()): Promise<string> {
  const r = await s3Get(stack.s3, c, `/${key}`, { signingDate: new Date(at) });
  if (r.status === 200) return key === ALLOWED_KEY && r.body !== ALLOWED_TEXT ? `wrong body: ${r.body}` : 'ok';
  return r.code ?? `HTTP ${r.status}`;
}

/**
 * Credentials CMD captured itself, written by the child to `file` (as its SDK holds them, or as the
 * container-credentials endpoint it was given answered: `Token` for `SessionToken`).
 */
export function captured(file: string): VendedCredentials {
  const c = JSON.parse(readFileSync(file, 'utf8')) as VendedCredentials & { Token?: string };
  const out = { AccessKeyId: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken ?? c.Token ?? '' };
  if (!/^ASIA/.test(out.AccessKeyId ?? '') || !out.SecretAccessKey || !out.SessionToken) throw new Error(`${file} holds no session credentials`);
  return out;
}

/**
 * A JS SDK agent: `node ...JS_AGENT` (run through tsx from the repository, so it can use this
 * suite's S3 request helper: there is no S3 client among the dependencies). Its default credential
 * chain finds tvm exec's loopback endpoint; it reads $TEST_ALLOWED and $TEST_OTHER from the local S3
 * ($TEST_S3), writes the credentials its SDK used to $TEST_CAPTURE and prints what S3 answered.
 * Then, by $TEST_THEN: `exit` (0), `wait` (prints its pid and `ready`, runs until signalled),
 * `throw` (an uncaught error: exit 1).
 */
export const JS_AGENT = [
  '--import',
  'tsx',
  '--input-type=module',
  '-e',
  `
import { writeFileSync } from 'node:fs';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { s3Get } from ${JSON.stringify(resolve('test/helpers/s3.ts'))};
const env = process.env;
const c = await fromNodeProviderChain()();
const creds = { AccessKeyId: c.accessKeyId, SecretAccessKey: c.secretAccessKey, SessionToken: c.sessionToken };
const allowed = await s3Get(env.TEST_S3, creds, '/' + env.TEST_ALLOWED);
const other = await s3Get(env.TEST_S3, creds, '/' + env.TEST_OTHER);
writeFileSync(env.TEST_CAPTURE, JSON.stringify(creds), { mode: 0o600 });
console.log(JSON.stringify({ allowed, other }));
if (env.TEST_THEN === 'throw') throw new Error('the agent crashed');
if (env.TEST_THEN === 'wait') {
  console.log('pid=' + process.pid + ' ready');
  setInterval(() => {}, 1000);
}
`,
];

/** The environment JS_AGENT reads (beside the clean one). */
export function jsAgentEnv(stack: TestStack, capture: string, then: 'exit' | 'wait' | 'throw' = 'exit'): Record<string, string> {
  return { TEST_S3: stack.s3, TEST_ALLOWED: ALLOWED_KEY, TEST_OTHER: OTHER_KEY, TEST_CAPTURE: capture, TEST_THEN: then };
}

/** What JS_AGENT printed about its two reads. */
export function jsAgentReads(stdout: string): { allowed: S3Answer; other: S3Answer } {
  return JSON.parse(stdout.split('\n')[0]);
}
