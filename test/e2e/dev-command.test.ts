/**
 * `npm start` as a user runs it: `tvm dev` in its own process, then `tvm token`, `tvm vend`, the
 * AWS CLI, `tvm leases`; SIGTERM stops it cleanly and a restart on the same data keeps the leases.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BIN = resolve('cli/bin.mjs');
const data = mkdtempSync(join(tmpdir(), 'tvm-dev-'));
const env = {
  PATH: process.env.PATH ?? '',
  HOME: data,
  TVM_DATA: data,
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

interface Dev {
  child: ChildProcess;
  out: string[];
  exited: Promise<number | null>;
}

async function startDev(): Promise<Dev> {
  const file = join(data, 'endpoints.json');
  const before = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const child = spawn('node', [BIN, 'dev', '--port', '0', '--data', data], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  child.stdout!.on('data', (d) => out.push(String(d)));
  child.stderr!.on('data', (d) => out.push(String(d)));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  for (let i = 0; i < 200; i++) {
    if (out.join('').includes('tvm dev is running') && existsSync(file) && readFileSync(file, 'utf8') !== before) return { child, out, exited };
    if (child.exitCode !== null) throw new Error(`tvm dev exited: ${out.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`tvm dev did not start: ${out.join('')}`);
}

const tvm = (args: string[], extra: Record<string, string> = {}) => run('node', [BIN, ...args], { env: { ...env, ...extra } });

let dev: Dev | undefined;
afterAll(() => {
  dev?.child.kill('SIGKILL');
});

describe('tvm dev', () => {
  let leaseId = '';

  it('starts, writes endpoints.json, and serves a vend the AWS CLI can use', async () => {
    dev = await startDev();
    const endpoints = JSON.parse(readFileSync(join(data, 'endpoints.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(endpoints).sort()).toEqual(['adminToken', 'api', 'dynamodb', 'iam', 'issuer', 'sts', 'vendors']);
    expect(dev.out.join('')).toContain(String(endpoints.adminToken));

    const tokenFile = join(data, 'token');
    await tvm(['token', '--claim', 'team=analytics', '--out', tokenFile]);
    expect(readFileSync(tokenFile, 'utf8')).not.toMatch(/\n$/);
    const vended = await tvm(['vend', '--grant', 'reports-read', '--format', 'env', '--task', 'demo'], { TVM_TOKEN_FILE: tokenFile });
    const vars = Object.fromEntries([...vended.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
    leaseId = vars.TVM_LEASE_ID;
    const who = await run('aws', ['sts', 'get-caller-identity', '--endpoint-url', String(endpoints.sts), '--region', 'us-east-1'], {
      env: { ...env, AWS_ACCESS_KEY_ID: vars.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: vars.AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: vars.AWS_SESSION_TOKEN },
    });
    expect(JSON.parse(who.stdout).Arn).toContain(`tvm-${leaseId}`);

    const listed = await tvm(['leases', '--status', 'active']);
    expect(listed.stdout).toContain(leaseId);
    const shown = await tvm(['leases', 'show', leaseId]);
    expect(shown.stdout).toMatch(/status\s+active/);
    expect(shown.stdout).toMatch(/issued/);

    // The service's own log lines never carry what it handed out.
    const logs = dev.out.join('');
    for (const secret of [vars.AWS_SECRET_ACCESS_KEY, vars.AWS_SESSION_TOKEN, readFileSync(tokenFile, 'utf8')]) expect(logs.includes(secret)).toBe(false);
  });

  it('stops cleanly on SIGTERM and keeps the leases across a restart', async () => {
    dev!.child.kill('SIGTERM');
    expect(await dev!.exited).toBe(0);
    dev = await startDev();
    const shown = await tvm(['leases', 'show', leaseId]);
    expect(shown.stdout).toContain(leaseId);
    const token = await tvm(['token', '--claim', 'team=analytics']);
    const again = await tvm(['vend', '--grant', 'reports-read'], { TVM_TOKEN: token.stdout.trim() });
    expect(JSON.parse(again.stdout).leaseId).toMatch(/^L/);
    dev.child.kill('SIGINT');
    expect(await dev.exited).toBe(0);
    dev = undefined;
  });
});
