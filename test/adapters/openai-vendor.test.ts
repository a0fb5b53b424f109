/** The OpenAI adapter against the OpenAI fake: service-account keys created, tested, listed, deleted; OpenAI's error answers. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fetchVendorHttp } from '../../functions/adapters/http-vendor.js';
import { OpenAiVendorKeys } from '../../functions/adapters/openai-vendor.js';
import type { TvmError } from '../../functions/core/errors.js';
import type { VendorConfig } from '../../functions/core/vendor-config.js';
import { OpenAiFake } from '../../local/vendor-fakes/openai.js';
import { type AnsweringServer, json, refusal, startAnsweringServer } from '../helpers/answering-server.js';

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

/** OpenAI's answers tvm must read right, from a loopback vendor that answers what each test sets. */
describe('OpenAiVendorKeys against exact answers', () => {
  let srv: AnsweringServer;
  beforeAll(async () => {
    srv = await startAnsweringServer();
  });
  afterAll(() => srv.close());
  beforeEach(() => {
    srv.seen.length = 0;
  });
  const oa = () => new OpenAiVendorKeys({ ...vendor, baseUrl: `${srv.url}//`, projectId: 'proj_a' }, async () => '{"adminKey":"adm"}', fetchVendorHttp());
  const ACCOUNTS = '/v1/organization/projects/proj_a/service_accounts';

  it('needs a projectId', () => {
    expect(() => new OpenAiVendorKeys({ ...vendor, projectId: undefined }, async () => '', fetchVendorHttp())).toThrow('vendor openai has no projectId');
  });

  it('create: 200 or 201 with id and api_key.value; the base URL’s trailing slashes dropped; the admin key as Bearer', async () => {
    for (const status of [200, 201]) {
      srv.answer = json(status, { id: 'svc_1', api_key: { value: 'sk-1' } });
      expect(await oa().create('tvm-x')).toEqual({ keyId: 'svc_1', key: 'sk-1' });
    }
    expect(srv.seen[0]).toMatchObject({ method: 'POST', url: ACCOUNTS });
    expect(JSON.parse(srv.seen[0].body)).toEqual({ name: 'tvm-x' });
    expect(srv.seen[0].headers.authorization).toBe('Bearer adm');
    for (const body of [{ api_key: { value: 'k' } }, { id: '', api_key: { value: 'k' } }, { id: 1, api_key: { value: 'k' } }, { id: 'i' }, { id: 'i', api_key: { value: '' } }, { id: 'i', api_key: { value: 2 } }]) {
      srv.answer = json(201, body);
      expect(await refusal(oa().create('n'))).toMatchObject({ reason: 'vendor_answer_malformed', detail: { vendor: 'openai', operation: 'create' } });
    }
  });

  it('OpenAI’s error code (else its type, at most 100 characters) is the vendor’s words', async () => {
    for (const [status, body, words] of [
      [400, { error: { code: 'invalid_name', type: 'invalid_request_error' } }, 'invalid_name'],
      [400, { error: { code: null, type: 'invalid_request_error' } }, 'invalid_request_error'],
      [409, { error: { type: 'y'.repeat(150) } }, 'y'.repeat(100)],
      [202, { error: { code: 5 } }, undefined],
      [400, {}, undefined],
    ] as const) {
      srv.answer = json(status, body);
      expect(await refusal(oa().create('n'))).toMatchObject({ name: 'VendorRefused', operation: 'create', status, vendorMessage: words });
    }
  });

  it.each(['create', 'test', 'revoke', 'list'] as const)('%s: a 500 names the vendor and the operation for the log', async (op) => {
    srv.answer = json(500, {});
    const a = oa();
    const call = op === 'create' ? a.create('n') : op === 'test' ? a.test({ keyId: 'i', key: 'k' }) : op === 'revoke' ? a.revoke('i') : a.list('n');
    expect((await refusal(call)).detail).toEqual({ vendor: 'openai', operation: op, status: 500 });
  });

  it('test: GET /v1/models with the key; 200 passes, 401/403 KeyRejected, another status VendorRefused', async () => {
    srv.answer = json(200, { data: [] });
    await oa().test({ keyId: 'i', key: 'sk-t' });
    expect(srv.seen[0]).toMatchObject({ method: 'GET', url: '/v1/models' });
    expect(srv.seen[0].headers.authorization).toBe('Bearer sk-t');
    for (const status of [401, 403]) {
      srv.answer = json(status, {});
      expect(await refusal(oa().test({ keyId: 'i', key: 'k' }))).toMatchObject({ name: 'KeyRejected', status });
    }
    for (const status of [404, 204]) {
      srv.answer = json(status, { error: { code: 'nf' } });
      expect(await refusal(oa().test({ keyId: 'i', key: 'k' }))).toMatchObject({ name: 'VendorRefused', operation: 'test', status });
    }
  });

  it('revoke: 200, 204 and 404 are revoked (the id URL-encoded); another status is VendorRefused', async () => {
    for (const status of [200, 204, 404]) {
      srv.answer = json(status, {});
      await oa().revoke('svc/1');
    }
    expect(srv.seen[0]).toMatchObject({ method: 'DELETE', url: `${ACCOUNTS}/svc%2F1` });
    expect(srv.seen[0].headers.authorization).toBe('Bearer adm');
    for (const status of [400, 201]) {
      srv.answer = json(status, { error: { code: 'no' } });
      expect(await refusal(oa().revoke('i'))).toMatchObject({ name: 'VendorRefused', operation: 'revoke', status, vendorMessage: 'no' });
    }
  });

  const acct = (id: unknown, name: unknown) => ({ id, name });

  it('list: follows has_more and last_id (after=), filtered by prefix; ids and names that are not strings left out', async () => {
    srv.answer = (req) => {
      const after = new URL(req.url!, srv.url).searchParams.get('after');
      if (!after) return json(200, { data: [acct('s1', 'tvm-a'), acct('s2', 'other')], has_more: true, last_id: 's2' })();
      if (after === 's2') return json(200, { data: [acct('s3', 'tvm-b'), acct(3, 'tvm-num'), acct('s5', 5)], has_more: true, last_id: 's5' })();
      return json(200, { data: [acct('s6', 'tvm-c')], has_more: false, last_id: 's6' })();
    };
    expect(await oa().list('tvm-')).toEqual([
      { keyId: 's1', name: 'tvm-a' },
      { keyId: 's3', name: 'tvm-b' },
      { keyId: 's6', name: 'tvm-c' },
    ]);
    expect(srv.seen.map((s) => s.url)).toEqual([`${ACCOUNTS}?limit=100`, `${ACCOUNTS}?limit=100&after=s2`, `${ACCOUNTS}?limit=100&after=s5`]);
    expect(srv.seen[0].headers.authorization).toBe('Bearer adm');
  });

  it('list: stops when has_more is not true or last_id is missing, and after 100 pages', async () => {
    srv.answer = json(200, { data: [acct('s1', 'tvm-a')], has_more: 'yes', last_id: 's1' });
    await oa().list('tvm-');
    srv.answer = json(200, { data: [acct('s1', 'tvm-a')], has_more: true });
    await oa().list('tvm-');
    expect(srv.seen).toHaveLength(2);
    srv.seen.length = 0;
    srv.answer = json(200, { data: [], has_more: true, last_id: 'again' });
    expect(await oa().list('tvm-')).toEqual([]);
    expect(srv.seen).toHaveLength(100);
  });

  it('list: an answer without a data list is malformed; a non-200 is VendorRefused', async () => {
    srv.answer = json(200, { data: 'x' });
    expect(await refusal(oa().list('tvm-'))).toMatchObject({ reason: 'vendor_answer_malformed', detail: { vendor: 'openai', operation: 'list' } });
    srv.answer = json(403, { error: { code: 'scope' } });
    expect(await refusal(oa().list('tvm-'))).toMatchObject({ name: 'VendorRefused', operation: 'list', status: 403, vendorMessage: 'scope' });
  });
});
