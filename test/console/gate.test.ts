/**
 * The ops console's door on the real local stack, over HTTP: one-time codes, the session cookie,
 * CSRF defences, the allow-list of admin routes, and that no secret is in what a browser gets.
 */
import { request } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConsoleGate } from '../../console/gate.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let s: TestStack;
beforeAll(async () => {
  s = await startTestStack();
});
afterAll(() => s?.close());

const codeOf = () => s.stack.console.issueCode();

async function login(): Promise<string> {
  const res = await fetch(`${s.api}/console?code=${codeOf()}`, { redirect: 'manual' });
  expect(res.status).toBe(303);
  return res.headers.get('set-cookie')!.split(';')[0];
}

const api = (path: string, headers: Record<string, string>, init: RequestInit = {}) => fetch(`${s.api}/console/api${path}`, { ...init, headers });

describe('the one-time link', () => {
  it('sets a console-scoped HttpOnly SameSite=Strict cookie that is not the admin token, and redirects without the code', async () => {
    const res = await fetch(`${s.api}/console?code=${codeOf()}`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/console');
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^tvm_console_\d+=[A-Za-z0-9_-]{43};/);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).toContain('Path=/console');
    expect(cookie).not.toContain(s.adminToken);
    const page = await fetch(`${s.api}/console`, { headers: { cookie: cookie.split(';')[0] } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'sha256-[^']+'/);
    const html = await page.text();
    expect(html).toContain('tvm ops console');
    expect(html).not.toContain(s.adminToken);
  });

  it('works once: a reused or made-up code is refused and sets no cookie', async () => {
    const code = codeOf();
    expect((await fetch(`${s.api}/console?code=${code}`, { redirect: 'manual' })).status).toBe(303);
    const again = await fetch(`${s.api}/console?code=${code}`, { redirect: 'manual' });
    expect(again.status).toBe(403);
    expect(again.headers.get('set-cookie')).toBeNull();
    expect(await again.text()).not.toContain('<script>');
    const wrong = await fetch(`${s.api}/console?code=${code.slice(0, -1)}x`, { redirect: 'manual' });
    expect(wrong.status).toBe(403);
  });

  it('the banner link of the stack itself works', async () => {
    const res = await fetch(s.stack.consoleUrl, { redirect: 'manual' });
    expect(res.status).toBe(303);
  });
});

describe('without a session', () => {
  it('refuses the page and the API (401), with no data', async () => {
    const page = await fetch(`${s.api}/console`);
    expect(page.status).toBe(401);
    expect(await page.text()).not.toContain('<script>');
    const leases = await api('/v1/admin/leases', { 'x-tvm-console': '1' });
    expect(leases.status).toBe(401);
    expect(await leases.json()).not.toHaveProperty('leases');
    const forged = await api('/v1/admin/leases', { 'x-tvm-console': '1', cookie: `tvm_console_${new URL(s.api).port}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA` });
    expect(forged.status).toBe(401);
    const wrongToken = await api('/v1/admin/leases', { authorization: 'Bearer tvm-admin-not-it' });
    expect(wrongToken.status).toBe(401);
  });

  it('accepts the admin token as a Bearer instead of the cookie', async () => {
    expect((await fetch(`${s.api}/console`, { headers: { authorization: `Bearer ${s.adminToken}` } })).status).toBe(200);
    const leases = await api('/v1/admin/leases', { authorization: `Bearer ${s.adminToken}` });
    expect(leases.status).toBe(200);
    expect(await leases.json()).toHaveProperty('leases');
  });
});

describe('with a session', () => {
  let cookie: string;
  beforeAll(async () => {
    cookie = await login();
  });

  it('forwards the allowed admin routes', async () => {
    const v = await s.vend({ grant: 'reports-read', context: { task: 'gate' } });
    expect(v.status).toBe(200);
    const res = await api('/v1/admin/leases?task=gate', { cookie, 'x-tvm-console': '1' });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(JSON.parse(text).leases.map((l: { leaseId: string }) => l.leaseId)).toEqual([v.body.leaseId]);
    // A lease record carries the access key id, never the secret, the session token or the admin token.
    expect(text).toContain(v.body.credentials.AccessKeyId);
    for (const secret of [v.body.credentials.SecretAccessKey, v.body.credentials.SessionToken, s.adminToken]) expect(text).not.toContain(secret);
    expect((await api('/v1/admin/vendors', { cookie, 'x-tvm-console': '1' })).status).toBe(200);
    expect((await api(`/v1/admin/events?lease=${v.body.leaseId}`, { cookie, 'x-tvm-console': '1' })).status).toBe(200);
  });

  it('passes the admin route refusals through (an unknown query parameter is a 400)', async () => {
    const res = await api('/v1/admin/leases?colour=red', { cookie, 'x-tvm-console': '1' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
  });

  it('refuses what a cross-site page could send: no console header, a foreign Origin, Sec-Fetch-Site cross-site, a form body', async () => {
    const v = await s.vend({ grant: 'reports-read' });
    const revoke = (headers: Record<string, string>, body = JSON.stringify({ leaseId: v.body.leaseId, reason: 'csrf' })) =>
      api('/v1/admin/revoke', { cookie, ...headers }, { method: 'POST', body });
    expect((await revoke({ 'content-type': 'application/json' })).status).toBe(403);
    expect((await revoke({ 'x-tvm-console': '1', 'content-type': 'application/json', origin: 'http://evil.example' })).status).toBe(403);
    expect((await revoke({ 'x-tvm-console': '1', 'content-type': 'application/json', 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await revoke({ 'x-tvm-console': '1', 'content-type': 'application/x-www-form-urlencoded' }, `leaseId=${v.body.leaseId}&reason=csrf`)).status).toBe(400);
    const lease = await s.runtime.leases.get(v.body.leaseId);
    expect(lease?.status).toBe('active');
    // …and the page's own call goes through.
    const ok = await revoke({ 'x-tvm-console': '1', 'content-type': 'application/json', origin: s.api });
    expect(ok.status).toBe(200);
    expect((await s.runtime.leases.get(v.body.leaseId))?.status).toBe('revoked');
  });

  it('forwards nothing outside the console allow-list', async () => {
    const h = { cookie, 'x-tvm-console': '1', 'content-type': 'application/json' };
    expect((await api('/v1/admin/sweep', h, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await api('/v1/vend', h, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await api('/v1/admin/leases/../../v1/vend', h)).status).toBe(404);
    expect((await api('/v1/admin/leases', h, { method: 'DELETE' })).status).toBe(405);
  });

  it('serves nothing to a DNS-rebound host name', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const u = new URL(`${s.api}/console`);
      request({ host: u.hostname, port: u.port, path: '/console', headers: { host: `evil.example:${u.port}`, cookie } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      })
        .on('error', reject)
        .end();
    });
    expect(status).toBe(403);
  });
});

it('a session ends after its time (the gate on a controllable clock)', async () => {
  let now = 1_000_000;
  const gate = createConsoleGate({ forward: async () => ({ status: 200, body: { leases: [] } }), sessionSeconds: 60, now: () => now });
  const server = createServer((req, res) => void gate.handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const res = await fetch(`${base}/console?code=${gate.issueCode()}`, { redirect: 'manual' });
    const cookie = res.headers.get('set-cookie')!.split(';')[0];
    expect((await fetch(`${base}/console/api/v1/admin/leases`, { headers: { cookie, 'x-tvm-console': '1' } })).status).toBe(200);
    now += 61_000;
    expect((await fetch(`${base}/console/api/v1/admin/leases`, { headers: { cookie, 'x-tvm-console': '1' } })).status).toBe(401);
    expect((await fetch(`${base}/console`, { headers: { cookie } })).status).toBe(401);
  } finally {
    await new Promise((r) => server.close(r));
  }
});
