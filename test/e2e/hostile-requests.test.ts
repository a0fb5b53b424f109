/**
 * Hostile requests with valid tokens, against the running local stack: broker paths that would
 * mean something else at the vendor, answers that would reveal which grants and vendors exist,
 * control characters in `sub`. Each case: the SPEC status and error code, the audit reason, no
 * STS call and no lease.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeAt } from '../../local/vendor-fakes/index.js';
import { VENDOR_POLICIES, vendorYaml } from '../handlers/broker-config.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
let token: string;
/** A valid token that no policy permits anything (no `team` claim). */
let nobody: string;

beforeAll(async () => {
  stack = await startTestStack({
    yaml: vendorYaml(),
    policies: {
      ...VENDOR_POLICIES,
      'billing.cedar': `@id("no-billing") forbid (principal, action == Tvm::Action::"broker", resource == Tvm::Vendor::"acme") when { context.path like "/v1/billing*" };`,
    },
  });
  token = await stack.mintToken({ team: 'analytics' }, { ttlSeconds: 600 });
  nobody = await stack.mintToken({}, { ttlSeconds: 600 });
});
afterAll(() => stack?.close());

const acme = () => fakeAt(stack.runtime.config.vendors.find((v) => v.name === 'acme')!.baseUrl)!;

/** Sends a raw request line (fetch would normalise the path) and answers status, body and audit event. */
async function send(method: string, path: string, bearer: string, body?: string) {
  const sessions = stack.stack.sessionCount();
  const leases = (await stack.runtime.leases.list({ limit: 1000 })).length;
  const logged = stack.logs.length;
  const url = new URL(stack.api);
  const { request } = await import('node:http');
  const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, headers: { authorization: `Bearer ${bearer}`, ...(body ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
  const events = stack.logs.slice(logged).map((l) => JSON.parse(l) as Record<string, any>).filter((e) => e.event === 'vend' || e.event === 'broker');
  expect(stack.stack.sessionCount()).toBe(sessions);
  expect((await stack.runtime.leases.list({ limit: 1000 })).length).toBe(leases);
  let error: string | undefined;
  try {
    error = (JSON.parse(answer.text) as { error?: string }).error;
  } catch {
    error = undefined;
  }
  return { status: answer.status, error, event: events.at(-1) };
}

describe('broker: the allow-list and Cedar see the path the vendor gets', () => {
  it('an encoded unreserved character is decoded before Cedar: /v1/%62illing is /v1/billing, forbidden', async () => {
    const seen = acme().seen.length;
    const r = await send('GET', '/v1/broker/acme/v1/%62illing/invoices', token);
    expect([r.status, r.error, r.event?.reason]).toEqual([403, 'access_denied', 'policy_deny']);
    expect(r.event?.path).toBe('/v1/billing/invoices');
    expect(acme().seen.length).toBe(seen); // never forwarded
  });

  it.each([
    ['/v1/%62illing', 'lower-case letter'],
    ['/v1/%42illing', 'not a case fold: %42 is B, a different path'],
    ['/v1/bi%6C%6Cing/x', 'upper-case hex'],
    ['/v1/bi%6c%6cing/x', 'lower-case hex'],
  ])('%s (%s) is forwarded, if at all, as its canonical path', async (path, _why) => {
    const seen = acme().seen.length;
    const r = await send('GET', `/v1/broker/acme${path}`, token);
    const canonical = decodeURIComponent(path);
    if (canonical.startsWith('/v1/billing')) {
      expect([r.status, r.event?.reason]).toEqual([403, 'policy_deny']);
      expect(acme().seen.length).toBe(seen);
    } else {
      expect(acme().seen.at(-1)?.path).toBe(canonical);
    }
  });

  it('a double encoding stays literal: %2562 reaches the vendor as %2562 (the characters %62), not b', async () => {
    await send('GET', '/v1/broker/acme/v1/%2562illing', token);
    expect(acme().seen.at(-1)?.path).toBe('/v1/%2562illing');
  });

  it.each([
    ['/v1/a%2Fb', 'encoded slash'],
    ['/v1/a%2fb', 'encoded slash, lower-case'],
    ['/v1/a%5Cb', 'encoded backslash'],
    ['/v1/a%00b', 'encoded NUL'],
    ['/v1/a%0d%0ab', 'encoded CR LF'],
    ['/v1//x', 'empty segment'],
    ['/v1/x;jsessionid=1', 'path parameter'],
    ['/v1/x%3Bjsessionid=1', 'encoded path parameter'],
  ])('%s (%s) → 400 bad_path, for a real vendor and an unknown one alike', async (path) => {
    const seen = acme().seen.length;
    const real = await send('GET', `/v1/broker/acme${path}`, token);
    const unknown = await send('GET', `/v1/broker/no-such-vendor${path}`, token);
    expect([real.status, real.error, real.event?.reason]).toEqual([400, 'invalid_request', 'bad_path']);
    expect([unknown.status, unknown.error, unknown.event?.reason]).toEqual([400, 'invalid_request', 'bad_path']);
    expect(acme().seen.length).toBe(seen);
  });

  it.each([
    ['/v1/%2e%2e/admin', 'encoded dot segment'],
    ['/v1/%2E%2e/admin', 'encoded dot segment, mixed case'],
    ['/v1/.%2e/admin', 'half-encoded dot segment'],
    ['/v1/../admin', 'dot segment'],
    ['/v1/%zz', 'bad escape'],
    ['/v1/%C0%AF', 'overlong UTF-8'],
  ])('%s (%s) never reaches the vendor, and a real vendor answers as an unknown one', async (path) => {
    // The local server resolves dot segments as RFC 3986 §5.2.4 says before routing (the core,
    // test/core/broker-request.test.ts, refuses any that reach it); either way nothing is forwarded.
    const seen = acme().seen.length;
    const real = await send('GET', `/v1/broker/acme${path}`, token);
    const unknown = await send('GET', `/v1/broker/no-such-vendor${path}`, token);
    expect(real.status).toBeGreaterThanOrEqual(400);
    expect([real.status, real.error]).toEqual([unknown.status, unknown.error]);
    expect(acme().seen.length).toBe(seen);
  });
});

describe('a single dot segment', () => {
  it.each(['/v1/./x', '/v1/%2e/x'])('%s is resolved before routing and forwarded as the path Cedar saw (/v1/x)', async (path) => {
    const r = await send('GET', `/v1/broker/acme${path}`, token);
    expect(r.event?.path).toBe('/v1/x');
    expect(acme().seen.at(-1)?.path).toBe('/v1/x');
  });
});

describe('answers do not reveal which grants and vendors exist', () => {
  it.each([
    ['a real grant', 'reports-read'],
    ['an unknown grant', 'no-such-grant'],
  ])('vend, a token no policy permits, durationSeconds 1, %s → 400 duration_out_of_bounds', async (_n, grant) => {
    const r = await send('POST', '/v1/vend', nobody, JSON.stringify({ grant, durationSeconds: 1 }));
    expect([r.status, r.error, r.event?.reason]).toEqual([400, 'invalid_request', 'duration_out_of_bounds']);
  });

  it.each([
    ['a real grant', 'reports-read', 'policy_deny'],
    ['an unknown grant', 'no-such-grant', 'unknown_grant'],
  ])('vend, a token no policy permits, a valid body, %s → 403', async (_n, grant, reason) => {
    const r = await send('POST', '/v1/vend', nobody, JSON.stringify({ grant, durationSeconds: 900 }));
    expect([r.status, r.error, r.event?.reason]).toEqual([403, 'access_denied', reason]);
  });

  it.each([
    ['a real grant', 'reports-read'],
    ['an unknown grant', 'no-such-grant'],
  ])('the credentials route, a bad context, %s → 400; a good one → 403', async (_n, grant) => {
    const bad = await send('GET', `/v1/credentials/${grant}?sensitivity=secret`, nobody);
    expect([bad.status, bad.error]).toEqual([400, 'invalid_request']);
    const good = await send('GET', `/v1/credentials/${grant}`, nobody);
    expect([good.status, good.error]).toEqual([403, 'access_denied']);
  });

  it.each([
    ['a real vendor', 'acme', 'path_not_allowed'],
    ['an unknown vendor', 'no-such-vendor', 'unknown_vendor'],
  ])('broker, a token no policy permits, a plain path off the list, %s → 403', async (_n, vendor, reason) => {
    const r = await send('GET', `/v1/broker/${vendor}/v2/other`, nobody);
    expect([r.status, r.error, r.event?.reason]).toEqual([403, 'access_denied', reason]);
  });
});

describe('control characters in sub are refused (they would rewrite what an admin reads)', () => {
  it.each([
    ['ESC (a terminal escape)', 'agent\u001b[2J\u001b[H'],
    ['CR (overwrites a row)', 'agent\rroot'],
    ['OSC 52 (writes the clipboard)', 'a\u001b]52;c;Y3VybCBldmlsLnNo\u0007'],
    ['DEL', 'agent\u007f'],
    ['C1 CSI', 'agent\u009b2J'],
    ['bidi override', 'agent\u202etoor'],
    ['bidi isolate', 'agent\u2066x\u2069'],
    ['left-to-right mark', 'agent\u200e'],
  ])('%s → 401 invalid_token bad_sub', async (_n, sub) => {
    const t = await stack.mintToken({ team: 'analytics' }, { sub });
    const r = await send('POST', '/v1/vend', t, JSON.stringify({ grant: 'reports-read' }));
    expect([r.status, r.error, r.event?.reason]).toEqual([401, 'invalid_token', 'bad_sub']);
  });

  it.each([
    ['a bidi override', 'a\u202eb'],
    ['a bidi isolate', 'a\u2067b'],
    ['a C1 control', 'a\u0085b'],
  ])('a context value with %s → 400', async (_n, task) => {
    const r = await send('POST', '/v1/vend', token, JSON.stringify({ grant: 'reports-read', context: { task } }));
    expect([r.status, r.error, r.event?.reason]).toEqual([400, 'invalid_request', 'bad_field']);
  });
});

describe('a sub that spells another principal\'s digest SourceIdentity', () => {
  it('gets its own SourceIdentity, so revoking one by principal cannot reach the other', async () => {
    const long = 'repo:acme/app:ref:refs/heads/main';
    const a = await stack.vend({ grant: 'reports-read' }, await stack.mintToken({ team: 'analytics' }, { sub: long }));
    expect(a.status).toBe(200);
    const first = (await stack.runtime.leases.get(a.body.leaseId))!;
    const spelled = first.sourceIdentity.slice('dev'.length + 1); // the digest, as a literal sub
    const b = await stack.vend({ grant: 'reports-read' }, await stack.mintToken({ team: 'analytics' }, { sub: spelled }));
    expect(b.status).toBe(200);
    const second = (await stack.runtime.leases.get(b.body.leaseId))!;
    expect(second.principal).not.toBe(first.principal);
    expect(second.sourceIdentity).not.toBe(first.sourceIdentity);
    expect(first.sourceIdentity).toMatch(/^[\w+=,.@-]{2,64}$/);
    expect(second.sourceIdentity).toBe(`dev.${spelled}`);
  });
});
