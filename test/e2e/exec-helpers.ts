/**
 * What the `tvm exec` / `tvm agent` tests share: the CLI run as a user runs it (its own process),
 * a clean environment, and the stack's lease records read through the admin route.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import type { TestStack } from '../helpers/stack.js';

export const BIN = resolve('cli/bin.mjs');

/** A clean environment for the CLI and CMD: no AWS configuration of this machine leaks in. */
export function cleanEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: home,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...extra,
  };
}

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

/** May these credentials read `resource`? Asked of the emulator's policy evaluation (deny policies included). */
export async function mayRead(stack: TestStack, c: { AccessKeyId: string; SecretAccessKey: string; SessionToken: string }, resource: string): Promise<{ allowed: boolean; reason: string }> {
  const res = await fetch(`${stack.sts}/_tvm/evaluate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, action: 's3:GetObject', resource }),
  });
  return (await res.json()) as { allowed: boolean; reason: string };
}
