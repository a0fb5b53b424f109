/** The Datadog adapter against the Datadog fake: create, test, list, revoke, and Datadog's error answers. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DatadogVendorKeys } from '../../functions/adapters/datadog-vendor.js';
import { fetchVendorHttp } from '../../functions/adapters/http-vendor.js';
import type { VendorConfig } from '../../functions/core/vendor-config.js';
import { DatadogFake } from '../../local/vendor-fakes/datadog.js';

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
