/** The OpenAI adapter against the OpenAI fake: service-account keys created, tested, listed, deleted; OpenAI's error answers. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fetchVendorHttp } from '../../functions/adapters/http-vendor.js';
import { OpenAiVendorKeys } from '../../functions/adapters/openai-vendor.js';
import type { VendorConfig } from '../../functions/core/vendor-config.js';
import { OpenAiFake } from '../../local/vendor-fakes/openai.js';

let fake: OpenAiFake;
let vendor: VendorConfig;
beforeAll(async () => {
  fake = new OpenAiFake('openai', 'proj_abc');
  await fake.start();
  vendor = {
    name: 'openai',
    kind: 'openai',
    baseUrl: fake.url,
    projectId: 'proj_abc',
    rotation: { every: '7d', overlap: '1h' },
    broker: { allow: ['POST /v1/chat/completions'], timeoutSeconds: 5, keyCacheSeconds: 30 },
  };
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.keys.clear();
  fake.faults = [];
});

const adapter = (v: Partial<VendorConfig> = {}, secret = () => fake.managementSecret()) => new OpenAiVendorKeys({ ...vendor, ...v }, async () => secret(), fetchVendorHttp());

describe('OpenAiVendorKeys', () => {
  it('creates a service account (its id is the key id), tests the key on /v1/models, lists, deletes the account', async () => {
    const oa = adapter();
    const key = await oa.create('tvm-openai-t1');
    expect(key.keyId).toMatch(/^svc_acct_/);
    expect(key.key).toMatch(/^sk-svcacct-/);
    const create = fake.last('create')!;
    expect(create).toMatchObject({ method: 'POST', path: '/v1/organization/projects/proj_abc/service_accounts' });
    expect(create.headers.authorization).toBe(`Bearer ${fake.adminKey}`);

    await oa.test(key);
    expect(fake.last('test')!.headers.authorization).toBe(`Bearer ${key.key}`);
    expect(await oa.list('tvm-openai-')).toEqual([{ keyId: key.keyId, name: 'tvm-openai-t1' }]);

    await oa.revoke(key.keyId);
    expect(fake.isLive(key.key)).toBe(false);
    expect(fake.last('revoke')!.path).toBe(`/v1/organization/projects/proj_abc/service_accounts/${key.keyId}`);
    await expect(oa.revoke(key.keyId)).resolves.toBeUndefined(); // 404: already gone
    expect(oa.keyHeaders('sk-x')).toEqual({ Authorization: 'Bearer sk-x' });
  });

  it('pages through the service accounts when listing', async () => {
    const oa = adapter();
    for (let i = 0; i < 105; i++) await oa.create(`other-${i}`);
    const mine = await oa.create('tvm-openai-last');
    expect(await oa.list('tvm-openai-')).toEqual([{ keyId: mine.keyId, name: 'tvm-openai-last' }]);
  });

  it('a bad key fails the test with 401 → KeyRejected', async () => {
    await expect(adapter().test({ keyId: 'svc_acct_x', key: 'sk-bad' })).rejects.toMatchObject({ name: 'KeyRejected', status: 401 });
  });

  it('a wrong admin key: 401 → VendorRefused; an unknown project: 404 → VendorRefused', async () => {
    await expect(adapter({}, () => 'sk-admin-wrong').create('n')).rejects.toMatchObject({ name: 'VendorRefused', status: 401 });
    await expect(adapter({ projectId: 'proj_other' }).create('n')).rejects.toMatchObject({ name: 'VendorRefused', status: 404 });
  });

  it.each([
    ['create', 500],
    ['test', 503],
    ['revoke', 500],
    ['create', 429],
  ] as const)('%s answered %i → UpstreamUnavailable', async (op, status) => {
    const oa = adapter();
    const key = op === 'create' ? undefined : await oa.create('n');
    fake.fail(op, status);
    const call = op === 'create' ? oa.create('n') : op === 'test' ? oa.test(key!) : oa.revoke(key!.keyId);
    await expect(call).rejects.toMatchObject({ code: 'upstream_unavailable', reason: `vendor_${status}` });
  });

  it('a vendor slower than the timeout → UpstreamTimeout', async () => {
    fake.delay('test', 300);
    const http = fetchVendorHttp();
    await expect(
      http.send({ url: `${fake.url}/v1/models`, method: 'GET', headers: {}, timeoutMs: 50, maxResponseBytes: 1000 }),
    ).rejects.toMatchObject({ code: 'upstream_timeout' });
  });
});
