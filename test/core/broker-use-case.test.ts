/**
 * `brokerRequest` (core/broker-request.ts) on fakes of its ports: what is checked before the
 * vendor is called, what reaches the vendor (headers, URL, body, limits, the key), what comes
 * back (relayed headers, the key scrubbed), the reload after a rotation, and the key cache.
 */
import { describe, expect, it } from 'vitest';
import { LocalSecretStore } from '../../functions/adapters/local-secret-store.js';
import {
  brokerRequest,
  canonicalVendorPath,
  isAllowed,
  KeyCache,
  keyForms,
  MAX_BROKER_ANSWER_BYTES,
  MAX_BROKER_BODY_BYTES,
  redact,
  type BrokerCall,
} from '../../functions/core/broker-request.js';
import type { IssuerConfig } from '../../functions/core/config.js';
import type { AuthzRequest, Decision } from '../../functions/core/ports.js';
import type { VendorConfig } from '../../functions/core/vendor-config.js';
import { AWSCURRENT, AWSPENDING, type SecretStore, type VendorRequest, type VendorResponse } from '../../functions/core/vendor-ports.js';
import type { VerifiedToken } from '../../functions/core/verify-token.js';

const SECRET = 'tvm/vendors/acme/key';
const KEY1 = { keyId: 'k1', key: 'sk-one-0123456789' };
const KEY2 = { keyId: 'k2', key: 'sk-two-9876543210' };

const vendor: VendorConfig = {
  name: 'acme',
  kind: 'http',
  baseUrl: 'https://api.acme.example//',
  rotation: { every: '24h', overlap: '15m' },
  broker: { allow: ['GET /v1/*', 'POST /v1/items', 'HEAD /v1/*'], timeoutSeconds: 7, keyCacheSeconds: 30 },
};

const who = {
  principal: 'dev|agent-1',
  issuer: { name: 'dev' } as IssuerConfig,
  iss: 'https://issuer.example',
  sub: 'agent-1',
  claims: { team: 'data' },
  exp: 0,
  tokenSha256: 'x',
} as VerifiedToken;

interface World {
  sent: VendorRequest[];
  asked: AuthzRequest[];
  answers: Partial<VendorResponse>[];
  secrets: LocalSecretStore;
  decision: Decision;
  clock: { t: number; now(): number };
  call(over?: Partial<BrokerCall>, record?: Record<string, unknown>): Promise<{ status: number; headers: Record<string, string>; body: Buffer }>;
}

async function world(): Promise<World> {
  const secrets = new LocalSecretStore();
  await secrets.putValue(SECRET, 'v1', JSON.stringify(KEY1), [AWSCURRENT]);
  const clock = { t: 0, now: () => clock.t };
  const keys = new KeyCache(secrets, (v) => (v === 'acme' ? SECRET : undefined), clock);
  const w: World = {
    sent: [],
    asked: [],
    answers: [],
    secrets,
    decision: { allow: true, policyIds: ['p1'], errors: [] },
    clock,
    call: (over = {}, record = {}) =>
      brokerRequest(
        {
          vendors: [vendor],
          policy: {
            decide: (req) => {
              w.asked.push(req);
              return w.decision;
            },
          },
          http: {
            send: async (req) => {
              w.sent.push(req);
              const a = w.answers.shift() ?? {};
              return { status: a.status ?? 200, headers: a.headers ?? {}, body: a.body ?? Buffer.from('ok') };
            },
          },
          keys,
          keysFor: () => ({ keyHeaders: (key) => ({ 'x-api-key': key }) }),
        },
        { who, vendor: 'acme', method: 'get', path: '/v1/things', headers: {}, context: {}, ...over },
        record,
      ),
  };
  return w;
}

async function rotate(w: World): Promise<void> {
  await w.secrets.putValue(SECRET, 'v2', JSON.stringify(KEY2), [AWSPENDING]);
  await w.secrets.updateStage(SECRET, AWSCURRENT, 'v2', 'v1');
}

describe('brokerRequest: the checks before the vendor is called', () => {
  it('a path that is not plain is refused (400) before the vendor is looked up, even for an unknown vendor', async () => {
    const w = await world();
    const record: Record<string, unknown> = {};
    await expect(w.call({ vendor: 'nope', path: '/v1/../admin' }, record)).rejects.toMatchObject({ code: 'invalid_request', reason: 'bad_path', message: 'The path is not valid.' });
    expect(record).toEqual({ vendor: 'nope', method: 'GET', path: '/v1/../admin' });
    expect(w.sent).toEqual([]);
  });

  it('an unknown vendor is access denied', async () => {
    const w = await world();
    await expect(w.call({ vendor: 'nope' })).rejects.toMatchObject({ code: 'access_denied', reason: 'unknown_vendor', detail: { vendor: 'nope' } });
    expect(w.asked).toEqual([]);
  });

  it('a method and path outside broker.allow are access denied, judged on the canonical path and the upper-cased method', async () => {
    const w = await world();
    await expect(w.call({ method: 'delete', path: '/v1/things' })).rejects.toMatchObject({
      reason: 'path_not_allowed',
      detail: { vendor: 'acme', method: 'DELETE', path: '/v1/things' },
    });
    await expect(w.call({ method: 'post', path: '/v1/%69tems' })).resolves.toMatchObject({ status: 200 });
    expect(w.sent[0].url).toBe('https://api.acme.example/v1/items');
    expect(w.asked).toHaveLength(1);
  });

  it('asks Cedar about the canonical path with the request context, records the deciding policies', async () => {
    const w = await world();
    const record: Record<string, unknown> = {};
    await w.call({ path: '/v1/%62ills', context: { task: 't-1', environment: undefined }, sourceIp: '10.0.0.9' }, record);
    expect(w.asked).toEqual([
      {
        principal: { issuer: 'dev', iss: 'https://issuer.example', sub: 'agent-1', claims: { team: 'data' } },
        action: 'broker',
        resource: { type: 'Vendor', id: 'acme' },
        context: { task: 't-1', method: 'GET', path: '/v1/bills', sourceIp: '10.0.0.9' },
      },
    ]);
    expect(record).toMatchObject({ vendor: 'acme', method: 'GET', path: '/v1/bills', decision: ['p1'], keyId: 'k1', upstreamStatus: 200 });
  });

  it.each<[string, Decision, string]>([
    ['no permit', { allow: false, policyIds: [], errors: [] }, 'policy_deny'],
    ['a forbid', { allow: false, policyIds: ['f1'], errors: [] }, 'policy_deny'],
    ['a policy error', { allow: false, policyIds: [], errors: ['p2: boom'] }, 'policy_error'],
  ])('Cedar says no (%s): 403 %s, the vendor is not called', async (_label, decision, reason) => {
    const w = await world();
    w.decision = decision;
    const record: Record<string, unknown> = {};
    await expect(w.call({}, record)).rejects.toMatchObject({ code: 'access_denied', reason });
    expect(record.decision).toEqual(decision.policyIds);
    expect(w.sent).toEqual([]);
  });
});

describe('brokerRequest: what reaches the vendor', () => {
  it('only the listed headers, lower-cased, plus the key header; the URL without doubled slashes, with the query', async () => {
    const w = await world();
    await w.call({
      path: '/v1/things',
      rawQuery: 'a=1&b=2',
      headers: {
        Accept: 'application/json',
        'Content-Type': 'application/json',
        'User-Agent': 'agent/1',
        'Idempotency-Key': 'i-1',
        'X-Request-Id': 'r-1',
        'If-None-Match': '"e"',
        Authorization: 'Bearer caller-token',
        Cookie: 'session=abc',
        'X-Api-Key': 'caller-supplied',
        'X-Forwarded-For': '1.2.3.4',
        'accept-language': undefined,
      },
    });
    expect(w.sent).toHaveLength(1);
    expect(w.sent[0]).toEqual({
      url: 'https://api.acme.example/v1/things?a=1&b=2',
      method: 'GET',
      headers: {
        accept: 'application/json',
        'content-type': 'application/json',
        'user-agent': 'agent/1',
        'idempotency-key': 'i-1',
        'x-request-id': 'r-1',
        'if-none-match': '"e"',
        'x-api-key': KEY1.key,
      },
      body: undefined,
      timeoutMs: 7000,
      maxResponseBytes: MAX_BROKER_ANSWER_BYTES,
    });
    expect(Object.keys(w.sent[0].headers)).not.toContain('accept-language');
  });

  it('every listed request header is relayed: content negotiation, conditional requests, the OpenAI beta header', async () => {
    const w = await world();
    const headers = {
      'Accept-Language': 'en',
      'Content-Encoding': 'gzip',
      'If-Match': '"a"',
      'If-Modified-Since': 'Tue, 01 Dec 2026 00:00:00 GMT',
      'OpenAI-Beta': 'assistants=v2',
      'X-Amz-Date': '20261201T000000Z',
    };
    await w.call({ headers });
    expect(w.sent[0].headers).toEqual({
      'accept-language': 'en',
      'content-encoding': 'gzip',
      'if-match': '"a"',
      'if-modified-since': 'Tue, 01 Dec 2026 00:00:00 GMT',
      'openai-beta': 'assistants=v2',
      'x-api-key': KEY1.key,
    });
  });

  it('the answer limit is what fits a 6 MB Lambda answer once base64-encoded', () => {
    expect(MAX_BROKER_BODY_BYTES).toBe(6 * 1024 * 1024);
    expect(MAX_BROKER_ANSWER_BYTES).toBe(4_718_592);
  });

  it('no query: no "?"', async () => {
    const w = await world();
    await w.call({ rawQuery: '' });
    expect(w.sent[0].url).toBe('https://api.acme.example/v1/things');
  });

  it.each<[string, string, Buffer | undefined, boolean]>([
    ['POST with a body', 'POST', Buffer.from('{"a":1}'), true],
    ['POST with an empty body', 'POST', Buffer.alloc(0), false],
    ['POST without a body', 'POST', undefined, false],
    ['GET with a body', 'GET', Buffer.from('x'), false],
    ['HEAD with a body', 'HEAD', Buffer.from('x'), false],
  ])('%s: a body is sent only when there is one and the method takes one', async (_label, method, body, sent) => {
    const w = await world();
    await w.call({ method, path: method === 'POST' ? '/v1/items' : '/v1/x', body });
    expect(w.sent[0].body).toEqual(sent ? body : undefined);
  });
});

describe('brokerRequest: what comes back', () => {
  it('relays the listed answer headers (and x-ratelimit-*), lower-cased; drops the rest and any carrying the key', async () => {
    const w = await world();
    w.answers.push({
      status: 201,
      headers: {
        'Content-Type': 'application/json',
        'Cache-Control': 'no-store',
        ETag: '"1"',
        'Retry-After': '3',
        'X-RateLimit-Remaining': '9',
        'x-ratelimit-reset': '60',
        'Set-Cookie': 'vendor=1',
        'X-Echo-Key': 'none',
        'Request-Id': `req ${KEY1.key}`,
        'X-Request-Id': encodeURIComponent(KEY1.key),
        'Last-Modified': 'Tue, 01 Dec 2026 00:00:00 GMT',
      },
      body: Buffer.from(`{"echo":"${KEY1.key}","b64":"${Buffer.from(KEY1.key).toString('base64')}"}`),
    });
    const out = await w.call();
    expect(out.status).toBe(201);
    expect(out.headers).toEqual({
      'content-type': 'application/json',
      'cache-control': 'no-store',
      etag: '"1"',
      'retry-after': '3',
      'x-ratelimit-remaining': '9',
      'x-ratelimit-reset': '60',
      'last-modified': 'Tue, 01 Dec 2026 00:00:00 GMT',
    });
    // base64 keeps at most two key bytes beside the redaction (see keyForms).
    expect(out.body.toString()).toMatch(/^\{"echo":"\[redacted\]","b64":"\[redacted\][A-Za-z0-9+/=]{0,4}"\}$/);
  });

  it('relays the vendor request ids and timing headers that carry no key', async () => {
    const w = await world();
    w.answers.push({ status: 200, headers: { 'X-Request-Id': 'r-9', 'Request-Id': 'req_9', 'OpenAI-Processing-Ms': '42', Server: 'acme' } });
    const out = await w.call();
    expect(out.headers).toEqual({ 'x-request-id': 'r-9', 'request-id': 'req_9', 'openai-processing-ms': '42' });
  });

  it.each([401, 403])('a %d after a rotation: the key is read again and the call repeated once with the new key', async (status) => {
    const w = await world();
    await w.call(); // k1 cached
    await rotate(w);
    w.answers.push({ status }, { status: 200, body: Buffer.from(`new ${KEY2.key} old ${KEY1.key}`) });
    const record: Record<string, unknown> = {};
    const out = await w.call({}, record);
    expect(w.sent.slice(1).map((s) => s.headers['x-api-key'])).toEqual([KEY1.key, KEY2.key]);
    expect(out.status).toBe(200);
    expect(record).toMatchObject({ keyRefreshed: true, keyId: 'k2', upstreamStatus: 200 });
    // Scrubbed for the key that was used.
    expect(out.body.toString()).toBe(`new [redacted] old ${KEY1.key}`);
  });

  it('a 401 with no newer key: the answer is relayed as is, the call not repeated', async () => {
    const w = await world();
    w.answers.push({ status: 401 });
    const record: Record<string, unknown> = {};
    const out = await w.call({}, record);
    expect(out.status).toBe(401);
    expect(w.sent).toHaveLength(1);
    expect(record.keyRefreshed).toBeUndefined();
    expect(record).toMatchObject({ keyId: 'k1', upstreamStatus: 401 });
  });

  it.each([400, 404, 429, 500])('a %d is not a reason to reload the key', async (status) => {
    const w = await world();
    await w.call();
    await rotate(w);
    w.answers.push({ status });
    const out = await w.call();
    expect(out.status).toBe(status);
    expect(w.sent).toHaveLength(2);
    expect(w.sent[1].headers['x-api-key']).toBe(KEY1.key);
  });
});

describe('KeyCache', () => {
  async function store(): Promise<LocalSecretStore> {
    const s = new LocalSecretStore();
    await s.putValue(SECRET, 'v1', JSON.stringify(KEY1), [AWSCURRENT]);
    return s;
  }

  it('a key is served from the cache for less than the TTL (30 s by default), then read again', async () => {
    const s = await store();
    const clock = { t: 1000, now: () => clock.t };
    const cache = new KeyCache(s, () => SECRET, clock);
    expect(await cache.get('acme')).toEqual(KEY1);
    await s.putValue(SECRET, 'v2', JSON.stringify(KEY2), [AWSCURRENT]);
    clock.t = 1000 + 29_999;
    expect(await cache.get('acme')).toEqual(KEY1);
    clock.t = 1000 + 30_000;
    expect(await cache.get('acme')).toEqual(KEY2);
  });

  it('a TTL of 0 reads the store every time', async () => {
    const s = await store();
    const cache = new KeyCache(s, () => SECRET, { now: () => 5 }, 0);
    expect((await cache.get('acme')).keyId).toBe('k1');
    await s.putValue(SECRET, 'v2', JSON.stringify(KEY2), [AWSCURRENT]);
    expect((await cache.get('acme')).keyId).toBe('k2');
  });

  it('concurrent misses read the store once; the next refresh reads it again', async () => {
    const s = await store();
    let reads = 0;
    const counting: SecretStore = Object.assign(Object.create(s) as SecretStore, {
      getValue: (...a: Parameters<SecretStore['getValue']>) => {
        reads++;
        return s.getValue(...a);
      },
    });
    const cache = new KeyCache(counting, () => SECRET, { now: () => 0 });
    const got = await Promise.all([cache.get('acme'), cache.get('acme'), cache.get('acme', true)]);
    expect(got).toEqual([KEY1, KEY1, KEY1]);
    expect(reads).toBe(1);
    await cache.get('acme', true);
    expect(reads).toBe(2);
  });

  it('each vendor has its own entry', async () => {
    const s = await store();
    await s.putValue('other', 'o1', JSON.stringify(KEY2), [AWSCURRENT]);
    const cache = new KeyCache(s, (v) => (v === 'acme' ? SECRET : 'other'), { now: () => 0 });
    expect(await cache.get('acme')).toEqual(KEY1);
    expect(await cache.get('beta')).toEqual(KEY2);
    expect(await cache.get('acme')).toEqual(KEY1);
  });

  it('a failed read is not cached: the next call reads again', async () => {
    const s = new LocalSecretStore();
    const cache = new KeyCache(s, () => SECRET, { now: () => 0 });
    await expect(cache.get('acme')).rejects.toMatchObject({ reason: 'vendor_key_missing' });
    await s.putValue(SECRET, 'v1', JSON.stringify(KEY1), [AWSCURRENT]);
    expect(await cache.get('acme')).toEqual(KEY1);
  });

  it.each<[string, () => KeyCache, Record<string, unknown>]>([
    ['a vendor with no secret', () => new KeyCache(new LocalSecretStore(), () => undefined, { now: () => 0 }), { code: 'upstream_unavailable', reason: 'vendor_secret_not_configured', detail: { vendor: 'acme' } }],
    [
      'the store failing',
      () =>
        new KeyCache(
          {
            getValue: async () => {
              throw Object.assign(new Error('x'), { name: 'ThrottlingException' });
            },
          } as unknown as SecretStore,
          () => SECRET,
          { now: () => 0 },
        ),
      { code: 'upstream_unavailable', reason: 'secret_store_unavailable', detail: { vendor: 'acme', error: 'ThrottlingException' } },
    ],
    ['no key stored', () => new KeyCache(new LocalSecretStore(), () => SECRET, { now: () => 0 }), { code: 'upstream_unavailable', reason: 'vendor_key_missing', detail: { vendor: 'acme' } }],
  ])('%s: 503', async (_label, make, want) => {
    await expect(make().get('acme')).rejects.toMatchObject(want);
  });
});

describe('isAllowed: more shapes', () => {
  const allow = ['GET /v2/*', 'POST /a/*/b', '* /any/*'];
  it.each<[string, string, boolean]>([
    ['GET', '/v2/a/', true],
    ['GET', '/v2//a', false],
    ['GET', '/v2/a//b', false],
    ['POST', '/a/x/b', true],
    ['POST', '/a//b', false],
    ['POST', '/a/x/b/c', false],
    ['PATCH', '/any/x', true],
    ['PATCH', '/any', false],
    ['PATCH', '/v2/a', false],
  ])('%s %s → %s', (method, path, want) => {
    expect(isAllowed(allow, method, path)).toBe(want);
  });
  it('a longer prefix before /* must match segment by segment', () => {
    expect(isAllowed(['GET /a/b/*'], 'GET', '/a/b/c')).toBe(true);
    expect(isAllowed(['GET /a/b/*'], 'GET', '/a/c/d')).toBe(false);
    expect(isAllowed(['GET /a/b/*'], 'GET', '/x/b/d')).toBe(false);
  });
  it('an empty allow-list allows nothing', () => {
    expect(isAllowed([], 'GET', '/')).toBe(false);
  });
});

describe('canonicalVendorPath: edges', () => {
  it('accepts 2048 characters, refuses 2049', () => {
    const p = `/${'a'.repeat(2047)}`;
    expect(canonicalVendorPath(p)).toBe(p);
    expect(() => canonicalVendorPath(`${p}a`)).toThrow(expect.objectContaining({ reason: 'bad_path', detail: { why: 'not an absolute path' } }));
  });
  it.each([
    ['/a%2fb', 'encoded 2f'],
    ['/a%3Bb', 'encoded 3B'],
    ['/a%1F', 'encoded 1F'],
    ['/a b', 'character not allowed'],
    ['/%zz', 'bad percent-encoding'],
    ['/a/../b', 'dot segment'],
    ['/a//b', 'empty segment'],
    ['/%C0%AF', 'not UTF-8'],
  ])('%s: the log says why (%s)', (p, why) => {
    expect(() => canonicalVendorPath(p)).toThrow(expect.objectContaining({ detail: { why } }));
  });
  it.each([
    ['/a%20', '/a%20'],
    ['/%41%5A%61%7A%30%39', '/AZaz09'],
    ['/%21', '/%21'],
    ['/%40x', '/%40x'],
    ['/', '/'],
  ])('%s → %s (only unreserved characters are decoded)', (p, want) => {
    expect(canonicalVendorPath(p)).toBe(want);
  });
});

describe('keyForms and redact: edges', () => {
  it('no key: no forms, nothing redacted', () => {
    expect(keyForms('')).toEqual([]);
    expect(redact(Buffer.from('abc'), ['', 'zz']).toString()).toBe('abc');
  });
  it('a three-byte key gives its four-character base64 run', () => {
    expect(keyForms('abc')).toContain('YWJj');
  });
  it('a short key gives no base64 fragment shorter than 4 characters', () => {
    const forms = keyForms('ab');
    expect(forms).toContain('ab');
    expect(forms.every((f) => f.length >= 2)).toBe(true);
    expect(forms.filter((f) => f !== 'ab')).toEqual(forms.filter((f) => f.length >= 4));
  });
  it('the longest secret is replaced first, so a shorter one inside it leaves nothing of it', () => {
    expect(redact(Buffer.from('x abcdef y abc'), ['abc', 'abcdef']).toString()).toBe('x [redacted] y [redacted]');
  });
  it('adjacent and overlapping occurrences', () => {
    expect(redact(Buffer.from('kkkk'), 'kk').toString()).toBe('[redacted][redacted]');
    expect(redact(Buffer.from('kk'), 'kk').toString()).toBe('[redacted]');
  });
});
