/** The broker's pure parts: the allow-list, path checks, key scrubbing, the key cache. */
import { describe, expect, it } from 'vitest';
import { canonicalVendorPath, isAllowed, KeyCache, keyForms, redact } from '../../functions/core/broker-request.js';
import { LocalSecretStore } from '../../functions/adapters/local-secret-store.js';
import { AWSCURRENT, AWSPENDING } from '../../functions/core/vendor-ports.js';

describe('isAllowed', () => {
  const allow = ['GET /api/v1/validate', 'POST /api/v2/series', 'GET /v1/items/*/detail', 'GET /v2/*', '* /any'];
  it.each([
    ['GET', '/api/v1/validate', true],
    ['POST', '/api/v1/validate', false],
    ['GET', '/api/v1/validate/', false],
    ['GET', '/api/v1/validatex', false],
    ['POST', '/api/v2/series', true],
    ['GET', '/v1/items/42/detail', true],
    ['GET', '/v1/items//detail', false],
    ['GET', '/v1/items/42/43/detail', false],
    ['GET', '/v2/a', true],
    ['GET', '/v2/a/b/c', true],
    ['GET', '/v2', false],
    ['GET', '/v2/', false],
    ['DELETE', '/any', true],
    ['GET', '/', false],
  ])('%s %s → %s', (method, path, want) => {
    expect(isAllowed(allow, method, path)).toBe(want);
  });
});

describe('canonicalVendorPath', () => {
  it.each([
    ['/a/../b', 'dot segment'],
    ['/a/./b', 'dot segment'],
    ['/a/..', 'dot segment'],
    ['/a/%2e%2e/b', 'dot segment, encoded'],
    ['/a/%2E%2e/b', 'dot segment, mixed case'],
    ['/a/.%2E/b', 'dot segment, half encoded'],
    ['/a/%2e/b', 'single dot, encoded'],
    ['/a//b', 'empty segment'],
    ['//a', 'leading empty segment'],
    ['/a%2fb', 'encoded slash'],
    ['/a%2Fb', 'encoded slash, upper'],
    ['/a%5cb', 'encoded backslash'],
    ['/a%5Cb', 'encoded backslash, upper'],
    ['/a%00', 'encoded NUL'],
    ['/a%0d%0aHost:x', 'encoded CR LF'],
    ['/a%1b', 'encoded ESC'],
    ['/a%7f', 'encoded DEL'],
    ['/a;jsessionid=1/b', 'path parameter'],
    ['/a%3bx/b', 'encoded path parameter'],
    ['/a\\b', 'raw backslash'],
    ['/a b', 'raw space'],
    ['/a\u0000', 'raw NUL'],
    ['/a\u202eb', 'raw bidi control'],
    ['/caf\u00e9', 'raw non-ASCII'],
    ['/a?b', 'raw ?'],
    ['/a#b', 'raw #'],
    ['a/b', 'relative'],
    ['/%zz', 'bad escape'],
    ['/%4', 'short escape'],
    ['/a%', 'trailing %'],
    ['/%E0%A4%A', 'truncated UTF-8'],
    ['/%C0%AF', 'overlong UTF-8'],
    [`/${'a'.repeat(2048)}`, 'over 2048 characters'],
  ])('refuses %s (%s) with 400 bad_path', (p) => {
    expect(() => canonicalVendorPath(p)).toThrow(expect.objectContaining({ code: 'invalid_request', reason: 'bad_path' }));
  });
  it.each([
    ['/api/v1/validate', '/api/v1/validate'],
    ['/v1/%62illing/invoices', '/v1/billing/invoices'],
    ['/v1/%62%69%6C%6c%69%6E%67', '/v1/billing'],
    ['/v1/%7e%2D%5F%2e', '/v1/~-_.'],
    ['/v1/a%20b', '/v1/a%20b'],
    ['/v1/a%3fb', '/v1/a%3Fb'],
    ['/v1/%c3%a9', '/v1/%C3%A9'],
    ['/v1/%2562illing', '/v1/%2562illing'],
    ['/v1/x/', '/v1/x/'],
    ['/v1/a:b@c!$&\'()*+,=', "/v1/a:b@c!$&'()*+,="],
  ])('%s → %s', (p, want) => {
    expect(canonicalVendorPath(p)).toBe(want);
  });
  it('is idempotent: the canonical path is its own canonical form', () => {
    for (const p of ['/v1/%62illing/%3f', '/v1/%c3%a9/%2562']) expect(canonicalVendorPath(canonicalVendorPath(p))).toBe(canonicalVendorPath(p));
  });
});

describe('redact', () => {
  it('replaces every occurrence and leaves other bytes alone', () => {
    expect(redact(Buffer.from('k1 abc k1 k1'), 'k1').toString()).toBe('[redacted] abc [redacted] [redacted]');
    expect(redact(Buffer.from('nothing'), 'k1').toString()).toBe('nothing');
  });

  const key = 'dd-key/with+odd=chars&more_0123456789';
  const leaks: [string, string][] = [
    ['verbatim', key],
    ['percent-encoded', encodeURIComponent(key)],
    ['percent-encoded, lower-case hex', encodeURIComponent(key).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())],
    ['base64', Buffer.from(key).toString('base64')],
    ['base64url', Buffer.from(key).toString('base64url')],
    ['base64 inside Basic auth (offset 1)', Buffer.from(`u:${key}`).toString('base64')],
    ['base64 at offset 2', Buffer.from(`ab:${key}`).toString('base64')],
    ['base64url at offset 1', Buffer.from(`:${key}`).toString('base64url')],
  ];
  it.each(leaks)('redacts the key %s, leaving at most two key bytes of it', (_name, leaked) => {
    const out = redact(Buffer.from(`{"echo":"${leaked}"}`), keyForms(key)).toString();
    expect(out).toContain('[redacted]');
    // What is left of the leaked spelling is its edges: decodes to no more than 2+2 bytes of key.
    const rest = out.replace('{"echo":"', '').replace('"}', '').split('[redacted]').join('');
    expect(rest.length).toBeLessThanOrEqual(8);
    expect(out).not.toContain(key);
  });
});

describe('KeyCache', () => {
  it('serves the cached key until the TTL or a refresh, then reads AWSCURRENT again', async () => {
    const store = new LocalSecretStore();
    await store.putValue('s', 'v1', JSON.stringify({ keyId: 'a', key: 'ka' }), [AWSCURRENT]);
    const clock = { t: 0, now: () => clock.t };
    const cache = new KeyCache(store, () => 's', clock, 1000);
    expect((await cache.get('datadog')).keyId).toBe('a');
    await store.putValue('s', 'v2', JSON.stringify({ keyId: 'b', key: 'kb' }), [AWSPENDING]);
    await store.updateStage('s', AWSCURRENT, 'v2', 'v1');
    expect((await cache.get('datadog')).keyId).toBe('a');
    expect((await cache.get('datadog', true)).keyId).toBe('b');
    clock.t = 5000;
    expect((await cache.get('datadog')).keyId).toBe('b');
  });

  it('no key stored → 503 upstream_unavailable (vendor_key_missing)', async () => {
    const cache = new KeyCache(new LocalSecretStore(), () => 's', { now: () => 0 });
    await expect(cache.get('datadog')).rejects.toMatchObject({ code: 'upstream_unavailable', reason: 'vendor_key_missing' });
  });
});
