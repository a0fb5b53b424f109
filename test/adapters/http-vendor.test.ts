/** The generic http adapter, configured as docs/vendors.md shows, against the "acme" fake. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fetchVendorHttp, HttpVendorKeys } from '../../functions/adapters/http-vendor.js';
import { vendorSchema, type VendorConfig } from '../../functions/core/vendor-config.js';
import { ACME_HTTP_CONFIG, HttpFake } from '../../local/vendor-fakes/http.js';

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
