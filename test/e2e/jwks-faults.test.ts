/**
 * The issuer's JWKS misbehaving: 5xx and slow answers are 503 (the issuer, not the token, is at
 * fault) with no STS call and no lease; while it fails the issuer is in backoff (one fetch, then
 * refusals without fetching until the backoff passes on the controllable clock); concurrent
 * requests share one fetch; a signing key rotated mid-run verifies after exactly one refetch.
 * No sleeps: time moves by the stack's clock (jose's own kid cooldown is set to 0).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestIssuer, type TestIssuer } from '../helpers/issuer.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
let iss: TestIssuer;
const clock = { t: Date.now(), now: () => clock.t };

beforeAll(async () => {
  iss = await startTestIssuer();
  stack = await startTestStack({
    yaml: `
issuers:
  - { name: ci, issuer: "${iss.url}", audiences: [tvm], algorithms: [RS256] }
grants:
  - name: reports-read
    roleArn: arn:aws:iam::123456789012:role/tvm/reports-read
    sessionPolicy: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: [s3:GetObject], Resource: ["arn:aws:s3:::reports/*"] }] }
`,
    policies: { 'p.cedar': '@id("ci") permit (principal, action == Tvm::Action::"vend", resource) when { principal.issuer == "ci" };' },
    jwks: { cooldownSeconds: 0, timeoutMs: 1500, backoffMs: 1000, maxBackoffMs: 8000 },
    clock,
  });
});
afterAll(async () => {
  await stack?.close();
  await iss?.close();
});

async function written(): Promise<number> {
  return stack.stack.sessionCount() + (await stack.runtime.leases.list({ limit: 1000 })).length;
}

/** One vend; answers status, error code and the audit reason of its event. */
async function vend(token: string) {
  const logged = stack.logs.length;
  const answer = await stack.vend({ grant: 'reports-read' }, token);
  const event = stack.logs.slice(logged).map((l) => JSON.parse(l) as Record<string, any>).find((e) => e.event === 'vend');
  return { status: answer.status, error: answer.body.error as string | undefined, reason: event?.reason as string | undefined };
}

const randomKid = () => iss.mint({}, { kid: `kid-${randomUUID()}` });

describe('JWKS answering 5xx', () => {
  it('→ 503 upstream_unavailable, nothing written', async () => {
    iss.mode = 'error';
    const before = await written();
    const hits = iss.jwksHits;
    expect(await vend(await iss.mint())).toEqual({ status: 503, error: 'upstream_unavailable', reason: 'jwks_unreachable' });
    expect(iss.jwksHits).toBe(hits + 1);
    expect(await written()).toBe(before);
  });

  it('100 more requests with random kids in the backoff fetch nothing and are refused at once', async () => {
    const hits = iss.jwksHits;
    const before = await written();
    for (let i = 0; i < 100; i++) expect(await vend(await randomKid())).toEqual({ status: 503, error: 'upstream_unavailable', reason: 'jwks_backoff' });
    expect(iss.jwksHits).toBe(hits);
    expect(await written()).toBe(before);
  });

  it('after the backoff, 100 concurrent requests with random kids share one fetch', async () => {
    clock.t += 1001;
    const hits = iss.jwksHits;
    const tokens = await Promise.all(Array.from({ length: 100 }, randomKid));
    const answers = await Promise.all(tokens.map(vend));
    expect(answers.every((a) => a.status === 503 && a.error === 'upstream_unavailable')).toBe(true);
    expect(iss.jwksHits).toBe(hits + 1);
  });
});

describe('a hanging JWKS', () => {
  it('20 concurrent requests share one fetch that times out (503); the next 20 do not wait on one', async () => {
    iss.mode = 'slow';
    clock.t += 8001; // past any backoff so far
    const hits = iss.jwksHits;
    const first = await Promise.all(Array.from({ length: 20 }, async () => vend(await iss.mint())));
    expect(first.map((a) => [a.status, a.reason])).toEqual(Array(20).fill([503, 'jwks_timeout']));
    expect(iss.jwksHits).toBe(hits + 1);
    // In the backoff: refused without a fetch, so without waiting for a timeout.
    const next = await Promise.all(Array.from({ length: 20 }, async () => vend(await iss.mint())));
    expect(next.map((a) => [a.status, a.reason])).toEqual(Array(20).fill([503, 'jwks_backoff']));
    expect(iss.jwksHits).toBe(hits + 1);
  });
});

describe('recovery', () => {
  it('recovers when the JWKS does, and a rotated signing key verifies after exactly one refetch', async () => {
    iss.mode = 'ok';
    clock.t += 8001;
    expect((await vend(await iss.mint())).status).toBe(200);
    const hits = iss.jwksHits;
    expect((await vend(await iss.mint())).status).toBe(200);
    expect(iss.jwksHits).toBe(hits); // cached

    await iss.rotateKey();
    expect((await vend(await iss.mint())).status).toBe(200);
    expect(iss.jwksHits).toBe(hits + 1);
    expect((await vend(await iss.mint())).status).toBe(200);
    expect(iss.jwksHits).toBe(hits + 1);
  });

  it('one success ends the backoff: a later failure starts again at the first step', async () => {
    iss.mode = 'error';
    const hits = iss.jwksHits;
    // A kid it has not seen makes jose refetch (cooldown 0): that fetch fails.
    expect((await vend(await randomKid())).reason).toBe('jwks_unreachable');
    expect((await vend(await randomKid())).reason).toBe('jwks_backoff');
    clock.t += 1001; // the first step (1 s), not the 8 s reached before the recovery
    expect((await vend(await randomKid())).reason).toBe('jwks_unreachable');
    expect(iss.jwksHits).toBe(hits + 2);
    iss.mode = 'ok';
  });
});
