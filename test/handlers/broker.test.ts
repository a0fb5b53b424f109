/**
 * The broker on the local stack (real handlers, dynalite, the vendor fakes): the right key header
 * at the vendor, the key in no answer, header or log line, the allow-list and Cedar, body limits,
 * vendor timeouts and outages, a key refreshed after a rotation.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseVendorKey } from '../../functions/core/rotate-vendor-key.js';
import { AWSCURRENT } from '../../functions/core/vendor-ports.js';
import { vendorRuntime } from '../../functions/shared/vendor-runtime.js';
import { fakeAt, type VendorFake } from '../../local/vendor-fakes/index.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { VENDOR_POLICIES, vendorYaml } from './broker-config.js';

let stack: TestStack;
let token: string;
beforeAll(async () => {
  stack = await startTestStack({ yaml: vendorYaml(), policies: VENDOR_POLICIES });
  token = await stack.mintToken({ team: 'analytics' });
});
afterAll(() => stack?.close());

function fakes(): Record<string, VendorFake> {
  return Object.fromEntries(stack.runtime.config.vendors.map((v) => [v.name, fakeAt(v.baseUrl)!]));
}
const fake = (name: string) => fakes()[name];

async function currentKey(vendor: string) {
  const vr = vendorRuntime(stack.runtime);
  return parseVendorKey((await vr.secrets.getValue(vr.secretIds[vendor].key, { stage: AWSCURRENT }))!.value)!;
}

async function broker(path: string, init: RequestInit & { headers?: Record<string, string> } = {}, bearer = token) {
  const res = await fetch(`${stack.api}/v1/broker/${path}`, { ...init, headers: { authorization: `Bearer ${bearer}`, ...(init.headers ?? {}) } });
  const text = await res.text();
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => (headers[k] = v));
  return { status: res.status, text, headers };
}

function allKeys(): string[] {
  return Object.values(fakes()).flatMap((f) => [...f.liveKeys().map((k) => k.key), f.managementSecret()]);
}

function expectNoKey(...texts: string[]): void {
  const all = texts.join('\n');
  for (const k of allKeys()) expect(all).not.toContain(k);
}

beforeEach(() => {
  for (const f of Object.values(fakes())) {
    f.faults = [];
    f.echoKey = false;
  }
});

describe('broker', () => {
  it('datadog: the call reaches the fake with DD-API-KEY = the current key; no Authorization, no application key', async () => {
    const a = await broker('datadog/api/v1/validate', { headers: { 'x-tvm-task': 'check', accept: 'application/json' } });
    expect(a.status).toBe(200);
    expect(JSON.parse(a.text)).toEqual({ valid: true });
    const seen = fake('datadog').last('test')!;
    expect(seen.headers['dd-api-key']).toBe((await currentKey('datadog')).key);
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers['dd-application-key']).toBeUndefined();
    expect(seen.headers['x-tvm-task']).toBeUndefined();
    expectNoKey(a.text, JSON.stringify(a.headers));
  });

  it('openai: Bearer key replaces the caller\'s Authorization; body and query relayed', async () => {
    const a = await broker('openai/v1/chat/completions?x=1', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(a.status).toBe(200);
    expect(JSON.parse(a.text).object).toBe('chat.completion');
    const seen = fake('openai').last('call')!;
    expect(seen.headers.authorization).toBe(`Bearer ${(await currentKey('openai')).key}`);
    expect(seen.headers.authorization).not.toContain(token);
  });

  it('http vendor: the configured key header; the caller cannot smuggle its own key header', async () => {
    const a = await broker('acme/v1/things/42?verbose=true', { headers: { 'x-api-key': 'caller-supplied' } });
    expect(a.status).toBe(200);
    expect(JSON.parse(a.text)).toMatchObject({ ok: true, method: 'GET', path: '/v1/things/42', query: 'verbose=true' });
    expect(fake('acme').last('call')!.headers['x-api-key']).toBe((await currentKey('acme')).key);
  });

  it('a vendor that echoes the key: it is scrubbed from the body and the headers', async () => {
    fake('datadog').echoKey = true;
    const a = await broker('datadog/api/v1/validate');
    expect(a.status).toBe(200);
    expect(JSON.parse(a.text).echoedKey).toBe('[redacted]');
    expect(a.headers['x-echo-key']).toBeUndefined();
    expect(a.headers['x-request-id']).toBeUndefined();
    expectNoKey(a.text, JSON.stringify(a.headers));
  });

  it.each([
    ['a path outside allow', 'datadog/api/v1/monitor', 'GET'],
    ['a method outside allow', 'datadog/api/v1/validate', 'DELETE'],
    ['an allowed path with a dot segment', 'datadog/api/v1/validate/../../v2/api_keys', 'GET'],
    ['a vendor that does not exist', 'nope/api/v1/validate', 'GET'],
  ])('%s → 403 access_denied or 400, nothing reaches the vendor', async (_n, path, method) => {
    const before = fake('datadog').seen.length;
    const a = await broker(path, { method });
    expect([400, 403]).toContain(a.status);
    expect(['access_denied', 'invalid_request']).toContain(JSON.parse(a.text).error);
    expect(fake('datadog').seen.length).toBe(before);
  });

  it('Cedar decides: a principal without the team claim → 403', async () => {
    const other = await stack.mintToken({});
    const a = await broker('datadog/api/v1/validate', {}, other);
    expect(a.status).toBe(403);
    expect(JSON.parse(a.text).error).toBe('access_denied');
  });

  it('no token → 401', async () => {
    const res = await fetch(`${stack.api}/v1/broker/datadog/api/v1/validate`);
    expect(res.status).toBe(401);
  });

  it('a body over 6 MB → 413', async () => {
    const a = await broker('datadog/api/v2/series', { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(6 * 1024 * 1024 + 1) });
    expect(a.status).toBe(413);
    expect(JSON.parse(a.text).error).toBe('payload_too_large');
  });

  it('the vendor slower than broker.timeoutSeconds → 504 upstream_timeout', async () => {
    fake('acme').delay('call', 1500);
    const a = await broker('acme/v1/slow');
    expect(a.status).toBe(504);
    expect(JSON.parse(a.text)).toMatchObject({ error: 'upstream_timeout', message: 'A service tvm depends on did not answer in time.' });
  });

  it('the vendor unreachable → 503 upstream_unavailable; its 5xx answers are relayed', async () => {
    const f = fake('acme');
    await f.close();
    try {
      const a = await broker('acme/v1/x');
      expect(a.status).toBe(503);
      expect(JSON.parse(a.text).error).toBe('upstream_unavailable');
    } finally {
      // Back on the same port.
      const port = Number(new URL(f.url).port);
      await f.start(port);
    }
    f.fail('call', 502);
    expect((await broker('acme/v1/x')).status).toBe(502);
  });

  it('after a rotation that revoked the cached key, a 403 reloads the key once and the call succeeds', async () => {
    expect((await broker('datadog/api/v1/validate')).status).toBe(200); // caches the key
    const res = await fetch(`${stack.api}/v1/admin/vendors/datadog/rotate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'test', revokePrevious: true }),
    });
    expect(res.status).toBe(200);
    const a = await broker('datadog/api/v1/validate');
    expect(a.status).toBe(200);
    expect(fake('datadog').last('test')!.headers['dd-api-key']).toBe((await currentKey('datadog')).key);
  });

  it('every broker call is an audit event with principal, vendor, method, path, status, duration; no key in any log line', async () => {
    await broker('datadog/api/v1/validate');
    const events = stack.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'broker');
    expect(events.length).toBeGreaterThan(5);
    expect(events.at(-1)).toMatchObject({ principal: expect.stringMatching(/^dev\|/), vendor: 'datadog', method: 'GET', path: '/api/v1/validate', status: 200 });
    expect(events.at(-1)!.durationMs).toBeTypeOf('number');
    expectNoKey(...stack.logs);
    expect(stack.logs.join('\n')).not.toContain(token);
  });
});
