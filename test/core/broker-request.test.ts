/** The broker's pure parts: the allow-list, path checks, key scrubbing, the key cache. */
import { describe, expect, it } from 'vitest';
import { checkVendorPath, isAllowed, KeyCache, redact } from '../../functions/core/broker-request.js';
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

describe('checkVendorPath', () => {
  it.each(['/a/../b', '/a/./b', '/a//b', '/a%2fb', '/a%2E%2E/b', '/a\\b', '/a%00', 'a/b', '/a b', '/%zz'])('refuses %s', (p) => {
    expect(() => checkVendorPath(p)).toThrow(expect.objectContaining({ code: 'invalid_request', reason: 'bad_path' }));
  });
  it.each(['/api/v1/validate', '/v1/items/a%20b', '/v1/x/'])('accepts %s', (p) => {
    expect(checkVendorPath(p)).toBe(p);
  });
});

describe('redact', () => {
  it('replaces every occurrence and leaves other bytes alone', () => {
    expect(redact(Buffer.from('k1 abc k1 k1'), 'k1').toString()).toBe('[redacted] abc [redacted] [redacted]');
    expect(redact(Buffer.from('nothing'), 'k1').toString()).toBe('nothing');
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
