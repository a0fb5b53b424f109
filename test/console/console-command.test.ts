/**
 * `tvm console` as a user runs it, in its own process. In front of a deployed tvm it signs every
 * forwarded admin call with the operator's AWS credentials (SigV4): here a loopback stand-in for
 * API Gateway's IAM authorization verifies each signature with the local emulator's verifier
 * (execute-api, the caller's secret) and only then passes the call to the real local stack. With
 * no --endpoint it finds the running local stack and uses its admin token.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAmzDate, parseAuthorization, verifySignature } from '../../local/emulator/sigv4.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const BIN = resolve('cli/bin.mjs');
const SECRET = 'console-test-secret-0123456789abcdefghij';
const KEY_ID = 'AKIATESTCONSOLE00001';
const home = mkdtempSync(join(tmpdir(), 'tvm-console-'));
const baseEnv = {
  PATH: process.env.PATH ?? '',
  HOME: home,
  XDG_STATE_HOME: join(home, 'state'),
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

let s: TestStack;
let front: Server;
let frontUrl = '';
const verdicts: { path: string; outcome: string; authorization: string }[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  s = await startTestStack();
  front = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const u = new URL(req.url ?? '/', 'http://x');
      const body = Buffer.concat(chunks);
      const headers = req.headers as Record<string, string>;
      const auth = parseAuthorization(headers.authorization);
      const date = parseAmzDate(headers['x-amz-date']);
      const outcome =
        auth && date && auth.service === 'execute-api' && auth.accessKeyId === KEY_ID
          ? await verifySignature({ method: req.method!, path: u.pathname, query: Object.fromEntries(u.searchParams), headers, body }, auth, SECRET, date)
          : 'unsigned';
      verdicts.push({ path: u.pathname, outcome, authorization: headers.authorization ?? '' });
      if (outcome !== 'ok') return res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"Forbidden"}');
      const answer = await fetch(`${s.api}${req.url}`, {
        method: req.method,
        headers: { authorization: `Bearer ${s.adminToken}`, ...(body.length ? { 'content-type': 'application/json' } : {}) },
        body: body.length ? body : undefined,
      });
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(await answer.text());
    });
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await new Promise((r) => front?.close(r));
  await s?.close();
});

/** Starts `tvm console …` and answers its one-time link from stdout. */
async function startConsole(args: string[], env: Record<string, string>): Promise<{ child: ChildProcess; link: string; out: string[] }> {
  const child = spawn('node', [BIN, 'console', ...args], { env: { ...baseEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out: string[] = [];
  child.stdout!.on('data', (d) => out.push(String(d)));
  child.stderr!.on('data', (d) => out.push(String(d)));
  const link = await new Promise<string>((resolve, reject) => {
    const check = () => {
      const m = /open (http:\/\/127\.0\.0\.1:\d+\/console\?code=[A-Za-z0-9_-]+)/.exec(out.join(''));
      if (m) resolve(m[1]);
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => reject(new Error(`tvm console exited ${code}: ${out.join('')}`)));
  });
  return { child, link, out };
}

async function session(link: string): Promise<{ base: string; headers: Record<string, string> }> {
  const res = await fetch(link, { redirect: 'manual' });
  expect(res.status).toBe(303);
  return { base: new URL(link).origin, headers: { cookie: res.headers.get('set-cookie')!.split(';')[0], 'x-tvm-console': '1' } };
}

describe('tvm console --endpoint (a deployed tvm)', () => {
  it('signs every forwarded admin call with SigV4: lists, revokes, and nothing secret reaches the browser', async () => {
    const v = await s.vend({ grant: 'reports-read', context: { task: 'sigv4-console' } });
    const { child, link, out } = await startConsole(['--endpoint', frontUrl, '--port', '0'], {
      TVM_ADMIN_AUTH: 'sigv4',
      AWS_ACCESS_KEY_ID: KEY_ID,
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_REGION: 'eu-west-1',
    });
    expect(out.join('')).not.toContain(SECRET);
    const { base, headers } = await session(link);
    const before = verdicts.length;
    const listed = await fetch(`${base}/console/api/v1/admin/leases?task=sigv4-console&status=active`, { headers });
    expect(listed.status).toBe(200);
    const text = await listed.text();
    expect(JSON.parse(text).leases.map((l: { leaseId: string }) => l.leaseId)).toEqual([v.body.leaseId]);
    for (const secret of [SECRET, s.adminToken, v.body.credentials.SecretAccessKey, v.body.credentials.SessionToken]) expect(text).not.toContain(secret);

    const revoked = await fetch(`${base}/console/api/v1/admin/revoke`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'sigv4-console', reason: 'console over sigv4' }),
    });
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ revoked: 1, leaseIds: [v.body.leaseId] });
    expect((await s.runtime.leases.get(v.body.leaseId))?.status).toBe('revoked');

    const mine = verdicts.slice(before);
    expect(mine.map((m) => [m.path, m.outcome])).toEqual([
      ['/v1/admin/leases', 'ok'],
      ['/v1/admin/revoke', 'ok'],
    ]);
    for (const m of mine) expect(m.authorization).not.toContain(SECRET);
    child.kill('SIGTERM');
  });

  it('the stand-in really checks: an unsigned call, or one signed with another secret, is refused', async () => {
    expect((await fetch(`${frontUrl}/v1/admin/leases`, { headers: { authorization: `Bearer ${s.adminToken}` } })).status).toBe(403);
    const { child, link } = await startConsole(['--endpoint', frontUrl], {
      TVM_ADMIN_AUTH: 'sigv4',
      AWS_ACCESS_KEY_ID: KEY_ID,
      AWS_SECRET_ACCESS_KEY: 'not-the-operators-secret-000000000000000',
      AWS_REGION: 'eu-west-1',
    });
    const { base, headers } = await session(link);
    const res = await fetch(`${base}/console/api/v1/admin/vendors`, { headers });
    expect(res.status).toBe(403);
    expect(verdicts[verdicts.length - 1]).toMatchObject({ path: '/v1/admin/vendors', outcome: 'mismatch' });
    child.kill('SIGTERM');
  });
});

describe('tvm console (the running local stack)', () => {
  it('with no --endpoint finds the local stack and calls it with its admin token; the link works once', async () => {
    const data = mkdtempSync(join(tmpdir(), 'tvm-console-data-'));
    writeFileSync(join(data, 'endpoints.json'), JSON.stringify({ ...s.stack.endpoints }), { mode: 0o600 });
    const before = verdicts.length;
    const { child, link } = await startConsole([], { TVM_DATA: data });
    const { base, headers } = await session(link);
    const res = await fetch(`${base}/console/api/v1/admin/vendors`, { headers });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { vendors: { name: string }[] }).vendors.map((v: { name: string }) => v.name)).toContain('datadog');
    expect(verdicts.length).toBe(before); // straight to the stack, not through the SigV4 stand-in
    expect((await fetch(link, { redirect: 'manual' })).status).toBe(403);
    expect((await fetch(`${base}/console`)).status).toBe(401);
    child.kill('SIGTERM');
  });
});

describe('usage', () => {
  const run = promisify(execFile);
  it('--help exits 0; bad usage exits 2', async () => {
    const help = await run('node', [BIN, 'console', '--help'], { env: baseEnv });
    expect(help.stdout).toMatch(/^usage: tvm console/);
    for (const args of [['--bogus'], ['extra'], ['--port', 'x']]) {
      const r = await run('node', [BIN, 'console', ...args], { env: baseEnv }).then(
        () => 0,
        (e: { code: number }) => e.code,
      );
      expect(r, args.join(' ')).toBe(2);
    }
  });
});
