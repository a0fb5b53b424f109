/** The Datadog adapter against the Datadog fake: create, test, list, revoke, and Datadog's error answers. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DatadogVendorKeys } from '../../functions/adapters/datadog-vendor.js';
import { fetchVendorHttp } from '../../functions/adapters/http-vendor.js';
import type { TvmError } from '../../functions/core/errors.js';
import type { VendorConfig } from '../../functions/core/vendor-config.js';
import { DatadogFake } from '../../local/vendor-fakes/datadog.js';
import { type AnsweringServer, json, refusal, startAnsweringServer } from '../helpers/answering-server.js';

let fake: DatadogFake;
let vendor: VendorConfig;
beforeAll(async () => {
  fake = new DatadogFake('datadog');
  await fake.start();
  vendor = { name: 'datadog', kind: 'datadog', baseUrl: fake.url, rotation: { every: '24h', overlap: '15m' }, broker: { allow: ['GET /api/v1/validate'], timeoutSeconds: 5, keyCacheSeconds: 30 } };
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.keys.clear();
  fake.faults = [];
});

const adapter = (secret = () => fake.managementSecret()) => new DatadogVendorKeys(vendor, async () => secret(), fetchVendorHttp());

describe('DatadogVendorKeys', () => {
  it('creates a key with both management headers, tests it with DD-API-KEY, lists it by name, revokes it', async () => {
    const dd = adapter();
    const key = await dd.create('tvm-datadog-abc');
    expect(key.keyId).toBeTruthy();
    expect(fake.isLive(key.key)).toBe(true);
    const create = fake.last('create')!;
    expect(create).toMatchObject({ method: 'POST', path: '/api/v2/api_keys' });
    expect(create.headers['dd-application-key']).toBe(JSON.parse(fake.managementSecret()).applicationKey);
    expect(create.headers['content-type']).toBe('application/json');

    await dd.test(key);
    expect(fake.last('test')!.headers['dd-api-key']).toBe(key.key);
    expect(await dd.list('tvm-datadog-')).toEqual([{ keyId: key.keyId, name: 'tvm-datadog-abc' }]);

    await dd.revoke(key.keyId);
    expect(fake.isLive(key.key)).toBe(false);
    expect(fake.last('revoke')).toMatchObject({ method: 'DELETE', path: `/api/v2/api_keys/${key.keyId}` });
    // An unknown key (404) counts as revoked.
    await expect(dd.revoke(key.keyId)).resolves.toBeUndefined();
    expect(dd.keyHeaders('k')).toEqual({ 'DD-API-KEY': 'k' });
  });

  it('a revoked or unknown key fails the test with 403 → KeyRejected', async () => {
    await expect(adapter().test({ keyId: 'x', key: 'not-a-key' })).rejects.toMatchObject({ name: 'KeyRejected', status: 403 });
  });

  it('a wrong application key: 403 on create → VendorRefused (not retried as an outage)', async () => {
    const dd = adapter(() => JSON.stringify({ apiKey: JSON.parse(fake.managementSecret()).apiKey, applicationKey: 'wrong' }));
    await expect(dd.create('n')).rejects.toMatchObject({ name: 'VendorRefused', operation: 'create', status: 403 });
  });

  it('a management secret without both fields is refused before any call', async () => {
    await expect(adapter(() => 'just-a-string').create('n')).rejects.toMatchObject({ reason: 'management_credential_invalid' });
  });

  it.each([
    ['create', 500],
    ['create', 429],
    ['test', 503],
    ['revoke', 502],
    ['list', 500],
  ] as const)('%s answered %i → UpstreamUnavailable vendor_%i', async (op, status) => {
    const dd = adapter();
    const key = op === 'create' ? undefined : await dd.create('n');
    fake.fail(op, status);
    const call = op === 'create' ? dd.create('n') : op === 'test' ? dd.test(key!) : op === 'revoke' ? dd.revoke(key!.keyId) : dd.list('n');
    await expect(call).rejects.toMatchObject({ code: 'upstream_unavailable', reason: `vendor_${status}` });
  });

  it('400 on a malformed create → VendorRefused', async () => {
    fake.fail('create', 400);
    await expect(adapter().create('n')).rejects.toMatchObject({ name: 'VendorRefused', status: 400 });
  });
});

/** Datadog's answers tvm must read right, from a loopback vendor that answers what each test sets. */
describe('DatadogVendorKeys against exact answers', () => {
  let srv: AnsweringServer;
  beforeAll(async () => {
    srv = await startAnsweringServer();
  });
  afterAll(() => srv.close());
  beforeEach(() => {
    srv.seen.length = 0;
  });
  const SECRET = JSON.stringify({ apiKey: 'api', applicationKey: 'app' });
  const dd = () => new DatadogVendorKeys({ ...vendor, baseUrl: `${srv.url}//` }, async () => SECRET, fetchVendorHttp());

  it('create: 201 or 200 with data.id and data.attributes.key; the base URL’s trailing slashes dropped', async () => {
    for (const status of [201, 200]) {
      srv.answer = json(status, { data: { id: 'id1', attributes: { key: 'k1' } } });
      expect(await dd().create('tvm-x')).toEqual({ keyId: 'id1', key: 'k1' });
    }
    expect(srv.seen[0]).toMatchObject({ method: 'POST', url: '/api/v2/api_keys' });
    expect(JSON.parse(srv.seen[0].body)).toEqual({ data: { type: 'api_keys', attributes: { name: 'tvm-x' } } });
    expect(srv.seen[0].headers).toMatchObject({ 'dd-api-key': 'api', 'dd-application-key': 'app' });
  });

  it('create: an answer without a string id and key is malformed', async () => {
    for (const data of [{ attributes: { key: 'k1' } }, { id: '', attributes: { key: 'k1' } }, { id: 5, attributes: { key: 'k1' } }, { id: 'i' }, { id: 'i', attributes: { key: '' } }, { id: 'i', attributes: { key: 7 } }]) {
      srv.answer = json(201, { data });
      expect(await refusal(dd().create('n'))).toMatchObject({ reason: 'vendor_answer_malformed', detail: { vendor: 'datadog', operation: 'create' } });
    }
  });

  it('Datadog’s error list becomes the vendor’s words (strings only, joined, at most 200 characters)', async () => {
    for (const [body, words] of [
      [{ errors: ['bad', 3, 'worse'] }, 'bad; worse'],
      [{ errors: ['x'.repeat(300)] }, 'x'.repeat(200)],
      [{ errors: 'not a list' }, undefined],
      [{}, undefined],
    ] as const) {
      srv.answer = json(400, body);
      expect(await refusal(dd().create('n'))).toMatchObject({ name: 'VendorRefused', operation: 'create', status: 400, vendorMessage: words });
    }
  });

  it.each(['create', 'test', 'revoke', 'list'] as const)('%s: a 500 names the vendor and the operation for the log', async (op) => {
    srv.answer = json(500, {});
    const a = dd();
    const call = op === 'create' ? a.create('n') : op === 'test' ? a.test({ keyId: 'i', key: 'k' }) : op === 'revoke' ? a.revoke('i') : a.list('n');
    expect((await refusal(call)).detail).toEqual({ vendor: 'datadog', operation: op, status: 500 });
  });

  it('test: 200 {valid: true} passes; 200 without it, 401 and 403 are KeyRejected; another status VendorRefused', async () => {
    srv.answer = json(200, { valid: true });
    await dd().test({ keyId: 'i', key: 'the-key' });
    expect(srv.seen[0]).toMatchObject({ method: 'GET', url: '/api/v1/validate' });
    expect(srv.seen[0].headers['dd-api-key']).toBe('the-key');
    for (const [status, body] of [[200, { valid: false }], [200, {}], [401, {}], [403, {}]] as const) {
      srv.answer = json(status, body);
      expect(await refusal(dd().test({ keyId: 'i', key: 'k' }))).toMatchObject({ name: 'KeyRejected', status });
    }
    srv.answer = json(404, { errors: ['gone'] });
    expect(await refusal(dd().test({ keyId: 'i', key: 'k' }))).toMatchObject({ name: 'VendorRefused', operation: 'test', status: 404, vendorMessage: 'gone' });
  });

  it('revoke: 204, 200 and 404 are revoked (the id URL-encoded); another status is VendorRefused', async () => {
    for (const status of [204, 200, 404]) {
      srv.answer = json(status, {});
      await dd().revoke('a/b');
    }
    expect(srv.seen[0]).toMatchObject({ method: 'DELETE', url: '/api/v2/api_keys/a%2Fb' });
    for (const status of [400, 403, 202]) {
      srv.answer = json(status, { errors: ['no'] });
      expect(await refusal(dd().revoke('i'))).toMatchObject({ name: 'VendorRefused', operation: 'revoke', status, vendorMessage: 'no' });
    }
  });

  const item = (id: unknown, name: unknown) => ({ id, attributes: { name } });

  it('list: pages of 100 until a short page, filtered by prefix; ids and names that are not strings left out', async () => {
    srv.answer = (req) => {
      const page = Number(new URL(req.url!, srv.url).searchParams.get('page[number]'));
      const data = page === 0 ? Array.from({ length: 100 }, (_, i) => item(`a${i}`, i === 0 ? 'tvm-first' : `other-${i}`)) : [item('b1', 'tvm-second'), item(2, 'tvm-num'), item('b3', 4), item('b4', 'nope')];
      return json(200, { data })();
    };
    expect(await dd().list('tvm-')).toEqual([
      { keyId: 'a0', name: 'tvm-first' },
      { keyId: 'b1', name: 'tvm-second' },
    ]);
    expect(srv.seen.map((s) => new URL(s.url, srv.url).searchParams.toString())).toEqual([
      'filter=tvm-&page%5Bsize%5D=100&page%5Bnumber%5D=0',
      'filter=tvm-&page%5Bsize%5D=100&page%5Bnumber%5D=1',
    ]);
    expect(srv.seen[0].headers).toMatchObject({ 'dd-api-key': 'api', 'dd-application-key': 'app' });
  });

  it('list: stops after 50 full pages; an answer without a data list is malformed; a non-200 VendorRefused', async () => {
    srv.answer = json(200, { data: Array.from({ length: 100 }, (_, i) => item(`a${i}`, `x${i}`)) });
    expect(await dd().list('tvm-')).toEqual([]);
    expect(srv.seen).toHaveLength(50);
    srv.answer = json(200, { data: { a: 1 } });
    expect(await refusal(dd().list('tvm-'))).toMatchObject({ reason: 'vendor_answer_malformed', detail: { vendor: 'datadog', operation: 'list' } });
    srv.answer = json(403, { errors: ['scope'] });
    expect(await refusal(dd().list('tvm-'))).toMatchObject({ name: 'VendorRefused', operation: 'list', status: 403, vendorMessage: 'scope' });
  });
});
