/** The generic http adapter, configured as docs/vendors.md shows, against the "acme" fake. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { credentialField, fetchVendorHttp, getPath, HttpVendorKeys, managementCall } from '../../functions/adapters/http-vendor.js';
import type { TvmError } from '../../functions/core/errors.js';
import { vendorSchema, type VendorConfig } from '../../functions/core/vendor-config.js';
import type { VendorRequest } from '../../functions/core/vendor-ports.js';
import { ACME_HTTP_CONFIG, HttpFake } from '../../local/vendor-fakes/http.js';
import { type AnsweringServer, json, refusal, type SeenCall, startAnsweringServer } from '../helpers/answering-server.js';

let fake: HttpFake;
let vendor: VendorConfig;
beforeAll(async () => {
  fake = new HttpFake('acme');
  await fake.start();
  vendor = vendorSchema.parse({
    name: 'acme',
    kind: 'http',
    baseUrl: fake.url,
    rotation: { every: '30d', overlap: '1h' },
    broker: { allow: ['GET /v1/*'] },
    http: ACME_HTTP_CONFIG,
  });
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.keys.clear();
  fake.faults = [];
});

const adapter = (secret = () => fake.managementSecret()) => new HttpVendorKeys(vendor, async () => secret(), fetchVendorHttp());

describe('HttpVendorKeys', () => {
  it('creates with the body template, reads key and id by path, tests with the key header, lists by name, revokes by id', async () => {
    const h = adapter();
    const key = await h.create('tvm-acme-t1');
    expect(key.keyId).toMatch(/^k_/);
    expect(fake.isLive(key.key)).toBe(true);
    expect(fake.liveKeys()[0].name).toBe('tvm-acme-t1');
    expect(fake.last('create')!.headers['x-admin-token']).toBe(fake.adminToken);

    await h.test(key);
    expect(fake.last('test')!.headers['x-api-key']).toBe(key.key);
    expect(await h.list!('tvm-acme-')).toEqual([{ keyId: key.keyId, name: 'tvm-acme-t1' }]);
    await h.revoke(key.keyId);
    expect(fake.isLive(key.key)).toBe(false);
    await expect(h.revoke(key.keyId)).resolves.toBeUndefined();
  });

  it('a plain-string management secret works; a wrong one → VendorRefused 401', async () => {
    await expect(adapter(() => fake.adminToken).create('n')).resolves.toBeTruthy();
    await expect(adapter(() => 'nope').create('n')).rejects.toMatchObject({ name: 'VendorRefused', status: 401 });
  });

  it('a bad key → KeyRejected; 5xx → UpstreamUnavailable', async () => {
    const h = adapter();
    await expect(h.test({ keyId: 'k', key: 'bad' })).rejects.toMatchObject({ name: 'KeyRejected', status: 401 });
    fake.fail('create', 500);
    await expect(h.create('n')).rejects.toMatchObject({ code: 'upstream_unavailable', reason: 'vendor_500' });
    const key = await h.create('n');
    fake.fail('revoke', 503);
    await expect(h.revoke(key.keyId)).rejects.toMatchObject({ reason: 'vendor_503' });
  });

  it('without a list section there is no list (orphans are then recorded as unresolved)', () => {
    const { list: _l, ...rest } = vendor.http!;
    expect(new HttpVendorKeys({ ...vendor, http: rest }, async () => '', fetchVendorHttp()).list).toBeUndefined();
  });

  it('config: kind http needs the http section; openai needs projectId; overlap shorter than every', () => {
    const base = { name: 'x', baseUrl: 'https://x.example', rotation: { every: '1d', overlap: '1h' }, broker: { allow: ['GET /a'] } };
    expect(vendorSchema.safeParse({ ...base, kind: 'http' }).success).toBe(false);
    expect(vendorSchema.safeParse({ ...base, kind: 'openai' }).success).toBe(false);
    expect(vendorSchema.safeParse({ ...base, kind: 'openai', projectId: 'proj_1' }).success).toBe(true);
    expect(vendorSchema.safeParse({ ...base, kind: 'datadog', rotation: { every: '1h', overlap: '2h' } }).success).toBe(false);
    expect(vendorSchema.safeParse({ ...base, kind: 'datadog', extra: 1 }).success).toBe(false);
  });
});

/**
 * The wire and the management plumbing against a loopback "vendor" whose answer each test sets
 * (status, headers, raw body): what tvm sends, what it makes of what comes back.
 */
describe('the wire (fetchVendorHttp, managementCall) and the http vendor’s answers', () => {
  let srv: AnsweringServer;
  let base: string;
  let seen: SeenCall[];
  const answer = (f: AnsweringServer['answer']) => (srv.answer = f);

  beforeAll(async () => {
    srv = await startAnsweringServer();
    base = srv.url;
    seen = srv.seen;
  });
  afterAll(() => srv.close());
  beforeEach(() => {
    seen.length = 0;
    answer(json(200, {}));
  });

  const send = (over: Partial<VendorRequest> = {}) =>
    fetchVendorHttp().send({ url: `${base}/x`, method: 'GET', headers: {}, timeoutMs: 2000, maxResponseBytes: 1000, ...over });

  it('answers status, headers (lower-cased) and the body as bytes', async () => {
    answer(() => ({ status: 207, headers: { 'X-Thing': 'a' }, body: 'hello' }));
    const res = await send({ method: 'POST', headers: { 'x-sent': '1' }, body: Buffer.from('payload') });
    expect(res.status).toBe(207);
    expect(res.headers['x-thing']).toBe('a');
    expect(res.body.toString('utf8')).toBe('hello');
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/x', body: 'payload' });
    expect(seen[0].headers['x-sent']).toBe('1');
  });

  it('does not follow a redirect: the key never travels to another origin', async () => {
    answer((req) => (req.url === '/x' ? { status: 302, headers: { location: `${base}/elsewhere` } } : { status: 200, body: 'followed' }));
    const res = await send({ headers: { 'x-api-key': 'secret' } });
    expect(res.status).toBe(302);
    expect(seen.map((s) => s.url)).toEqual(['/x']);
  });

  it('an answer over the size limit is refused (upstream_answer_too_large), one at the limit is kept', async () => {
    answer(() => ({ status: 200, body: Buffer.alloc(1001, 97) }));
    const big = await refusal(send());
    expect(big).toMatchObject({ code: 'upstream_unavailable', reason: 'upstream_answer_too_large' });
    expect(big.detail!.bytes).toBeGreaterThan(1000);
    answer(() => ({ status: 200, body: Buffer.alloc(1000, 97) }));
    expect((await send()).body.length).toBe(1000);
  });

  it('a body cut short is vendor_unreachable (not a raw stream error)', async () => {
    answer(() => 'truncate');
    expect(await refusal(send())).toMatchObject({ code: 'upstream_unavailable', reason: 'vendor_unreachable', detail: { host: new URL(base).host } });
  });

  it('an answer with no body is an empty body', async () => {
    answer(() => ({ status: 204 }));
    expect((await send()).body.length).toBe(0);
  });

  it('a dropped connection is vendor_unreachable naming the host and the error; a silent vendor is vendor_timeout', async () => {
    answer(() => 'drop');
    const e = await refusal(send());
    expect(e).toMatchObject({ code: 'upstream_unavailable', reason: 'vendor_unreachable' });
    expect(e.detail).toEqual({ host: new URL(base).host, error: 'TypeError' });
    answer(() => 'hang');
    const t = await refusal(send({ timeoutMs: 100 }));
    expect(t).toMatchObject({ code: 'upstream_timeout', reason: 'vendor_timeout' });
    expect(t.detail).toEqual({ host: new URL(base).host });
  });

  it('a URL that cannot be parsed is unreachable with no host', async () => {
    const e = await refusal(send({ url: 'not a url' }));
    expect(e).toMatchObject({ reason: 'vendor_unreachable' });
    expect(e.detail).toEqual({ host: undefined, error: 'TypeError' });
  });

  it('managementCall sends JSON with accept and content-type, and parses the JSON answer', async () => {
    answer(json(201, { ok: 1 }));
    const out = await managementCall(fetchVendorHttp(), 'acme', 'create', { url: `${base}/m`, method: 'POST', headers: { 'x-admin': 't' }, json: { a: 1 } });
    expect(out).toEqual({ status: 201, json: { ok: 1 } });
    expect(seen[0].headers).toMatchObject({ accept: 'application/json', 'content-type': 'application/json', 'x-admin': 't' });
    expect(seen[0].body).toBe('{"a":1}');
  });

  it('managementCall without JSON sends no body and no content-type; a body that is not JSON is json: undefined', async () => {
    answer(() => ({ status: 200, body: 'not json' }));
    expect(await managementCall(fetchVendorHttp(), 'acme', 'test', { url: `${base}/m`, method: 'GET', headers: {} })).toEqual({ status: 200, json: undefined });
    expect(seen[0].headers['content-type']).toBeUndefined();
    expect(seen[0].body).toBe('');
  });

  it.each([500, 502, 429])('managementCall: %i → UpstreamUnavailable vendor_<status> (the next run retries)', async (status) => {
    answer(json(status, { message: 'busy' }));
    const e = await refusal(managementCall(fetchVendorHttp(), 'acme', 'list', { url: `${base}/m`, method: 'GET', headers: {} }));
    expect(e).toMatchObject({ code: 'upstream_unavailable', reason: `vendor_${status}` });
    expect(e.detail).toEqual({ vendor: 'acme', operation: 'list', status });
  });

  it('managementCall: 499 and 400 are answers, not outages', async () => {
    answer(json(499, {}));
    expect((await managementCall(fetchVendorHttp(), 'acme', 'list', { url: `${base}/m`, method: 'GET', headers: {} })).status).toBe(499);
  });

  it('getPath walks objects and arrays and stops at anything else', () => {
    expect(getPath({ a: { b: [{ c: 1 }] } }, 'a.b.0.c')).toBe(1);
    expect(getPath({ a: null }, 'a.b')).toBeUndefined();
    expect(getPath({ a: 'str' }, 'a.length')).toBeUndefined();
    expect(getPath(undefined, 'a')).toBeUndefined();
  });

  it.each([
    ['{"token":"t1"}', true, 't1'],
    ['  {"token":"t1"}  ', false, 't1'],
    ['  plain-token \n', true, 'plain-token'],
  ])('credentialField(%j, plain allowed %s) → %s', (secret, plain, want) => {
    expect(credentialField(secret, 'token', plain)).toBe(want);
  });

  it.each([
    ['{"token":""}', true],
    ['{"other":"x"}', true],
    ['{"token":5}', true],
    ['{not json', true],
    ['plain-token', false],
    ['   ', true],
  ])('credentialField(%j, plain allowed %s) is refused, naming the field', (secret, plain) => {
    let e: unknown;
    try {
      credentialField(secret, 'token', plain);
    } catch (err) {
      e = err;
    }
    expect(e).toMatchObject({ reason: 'management_credential_invalid', detail: { field: 'token' } });
  });

  const vendorAt = (http: Record<string, unknown>) =>
    vendorSchema.parse({ name: 'acme', kind: 'http', baseUrl: `${base}//`, rotation: { every: '30d', overlap: '1h' }, broker: { allow: ['GET /v1/*'] }, http: { ...ACME_HTTP_CONFIG, ...http } });
  const keysAt = (http: Record<string, unknown> = {}, secret = '{"token":"adm"}') => new HttpVendorKeys(vendorAt(http), async () => secret, fetchVendorHttp());

  it('the templates: {keyName} URL-encoded in the path, as is in the body (nested, in arrays); prefixes before the credential and the key', async () => {
    answer(json(201, { key: { id: 42, secret: 's3cret' } }));
    const h = keysAt({
      managementPrefix: 'Token ',
      keyPrefix: 'Bearer ',
      create: { method: 'POST', path: '/admin/{keyName}/keys', body: { name: '{keyName}', tags: ['x-{keyName}', 7, true, null], meta: { n: '{keyName}' } }, keyPath: 'key.secret', idPath: 'key.id' },
    });
    expect(await h.create('a b/c')).toEqual({ keyId: '42', key: 's3cret' });
    expect(seen[0].url).toBe('/admin/a%20b%2Fc/keys');
    expect(JSON.parse(seen[0].body)).toEqual({ name: 'a b/c', tags: ['x-a b/c', 7, true, null], meta: { n: 'a b/c' } });
    expect(seen[0].headers['x-admin-token']).toBe('Token adm');
    expect(h.keyHeaders('k1')).toEqual({ 'X-Api-Key': 'Bearer k1' });
    expect(keysAt().keyHeaders('k1')).toEqual({ 'X-Api-Key': 'k1' });
    // a placeholder the operation has no value for is empty
    answer(json(201, { key: { id: 'i', secret: 's' } }));
    await keysAt({ create: { method: 'POST', path: '/admin/{keyId}/keys', body: { id: '{keyId}' }, keyPath: 'key.secret', idPath: 'key.id' } }).create('n');
    expect(seen.at(-1)!.url).toBe('/admin//keys');
    expect(JSON.parse(seen.at(-1)!.body)).toEqual({ id: '' });
  });

  it('create: a non-2xx answer is VendorRefused with the vendor’s words; an answer without key or id is malformed', async () => {
    for (const [status, body, words] of [
      [400, { message: 'bad name' }, 'bad name'],
      [409, { error: { message: 'exists' } }, 'exists'],
      [403, { error: 'forbidden' }, 'forbidden'],
      [302, { message: 'x'.repeat(300) }, 'x'.repeat(200)],
      [400, { message: 5 }, undefined],
    ] as const) {
      answer(json(status, body));
      const e = await refusal(keysAt().create('n'));
      expect(e).toMatchObject({ name: 'VendorRefused', operation: 'create', status, vendorMessage: words });
    }
    for (const body of [{ key: { id: 'k1' } }, { key: { id: 'k1', secret: '' } }, { key: { id: 'k1', secret: 7 } }, { key: { secret: 's' } }, { key: { id: { x: 1 }, secret: 's' } }]) {
      answer(json(201, body));
      expect(await refusal(keysAt().create('n'))).toMatchObject({ reason: 'vendor_answer_malformed', detail: { vendor: 'acme', operation: 'create' } });
    }
    answer(json(200, { key: { id: 'k1', secret: 's' } }));
    expect(await keysAt().create('n')).toEqual({ keyId: 'k1', key: 's' });
    answer(json(299, { key: { id: 'k1', secret: 's' } }));
    expect(await keysAt().create('n')).toEqual({ keyId: 'k1', key: 's' });
  });

  it('create without a body template sends no body', async () => {
    answer(json(201, { key: { id: 'k1', secret: 's' } }));
    await keysAt({ create: { method: 'POST', path: '/admin/keys', keyPath: 'key.secret', idPath: 'key.id' } }).create('n');
    expect(seen[0].body).toBe('');
    expect(seen[0].headers['content-type']).toBeUndefined();
  });

  it('test: 2xx passes, 401/403 are KeyRejected, any other status VendorRefused', async () => {
    const key = { keyId: 'k/1', key: 'kv' };
    answer(json(299, {}));
    await keysAt().test(key);
    answer(json(204, {}));
    await keysAt({ test: { method: 'GET', path: '/v1/keys/{keyId}' } }).test(key);
    expect(seen[1].url).toBe('/v1/keys/k%2F1');
    expect(seen[1].headers['x-api-key']).toBe('kv');
    for (const status of [401, 403]) {
      answer(json(status, {}));
      expect(await refusal(keysAt().test(key))).toMatchObject({ name: 'KeyRejected', status });
    }
    for (const status of [404, 300]) {
      answer(json(status, { message: 'no' }));
      expect(await refusal(keysAt().test(key))).toMatchObject({ name: 'VendorRefused', operation: 'test', status, vendorMessage: 'no' });
    }
  });

  it('revoke: 2xx and 404 are revoked, anything else VendorRefused; the body template gets {keyId}', async () => {
    const h = keysAt({ revoke: { method: 'POST', path: '/admin/keys/{keyId}/revoke', body: { id: '{keyId}' } } });
    for (const status of [200, 204, 299, 404]) {
      answer(json(status, {}));
      await h.revoke('k/1');
    }
    expect(seen[0].url).toBe('/admin/keys/k%2F1/revoke');
    expect(JSON.parse(seen[0].body)).toEqual({ id: 'k/1' });
    expect(seen[0].headers['x-admin-token']).toBe('adm');
    for (const status of [400, 300]) {
      answer(json(status, { message: 'nope' }));
      expect(await refusal(h.revoke('k1'))).toMatchObject({ name: 'VendorRefused', operation: 'revoke', status, vendorMessage: 'nope' });
    }
  });

  it('list: items by path, filtered by the name prefix, items without an id left out; a non-array is malformed', async () => {
    answer(json(200, { keys: [{ id: 'k1', name: 'tvm-a' }, { id: 2, name: 'tvm-b' }, { name: 'tvm-c' }, { id: 'k4', name: 'other' }, { id: 'k5' }] }));
    expect(await keysAt().list!('tvm-')).toEqual([
      { keyId: 'k1', name: 'tvm-a' },
      { keyId: '2', name: 'tvm-b' },
    ]);
    expect(seen[0].url).toBe('/admin/keys?name=tvm-');
    answer(json(299, { keys: [{ id: 'k5' }, { id: 'k6', name: 'a/b' }] }));
    expect(await keysAt().list!('')).toEqual([
      { keyId: 'k5', name: '' },
      { keyId: 'k6', name: 'a/b' },
    ]);
    expect(await keysAt().list!('a/')).toEqual([{ keyId: 'k6', name: 'a/b' }]);
    expect(seen.at(-1)!.url).toBe('/admin/keys?name=a%2F');
    expect(seen[0].headers['x-admin-token']).toBe('adm');
    answer(json(200, { keys: { k1: 'x' } }));
    expect(await refusal(keysAt().list!('tvm-'))).toMatchObject({ reason: 'vendor_answer_malformed', detail: { vendor: 'acme', operation: 'list' } });
    answer(json(401, { message: 'who' }));
    expect(await refusal(keysAt().list!('tvm-'))).toMatchObject({ name: 'VendorRefused', operation: 'list', status: 401, vendorMessage: 'who' });
  });

  it.each(['create', 'test', 'revoke', 'list'] as const)('%s: a 500 names the vendor and the operation for the log', async (op) => {
    answer(json(500, {}));
    const h = keysAt();
    const call = op === 'create' ? h.create('n') : op === 'test' ? h.test({ keyId: 'i', key: 'k' }) : op === 'revoke' ? h.revoke('i') : h.list!('n');
    expect((await refusal(call)).detail).toEqual({ vendor: 'acme', operation: op, status: 500 });
  });

  it('a vendor without its http section cannot be built', () => {
    const { http: _h, ...rest } = vendorAt({});
    expect(() => new HttpVendorKeys(rest as VendorConfig, async () => '', fetchVendorHttp())).toThrow('vendor acme has no http section');
  });
});
