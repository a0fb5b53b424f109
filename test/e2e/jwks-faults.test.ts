/**
 * The issuer's JWKS misbehaving: 5xx and slow answers are 503 (the issuer, not the token, is at
 * fault) with no STS call and no lease; a signing key rotated mid-run verifies after one refetch.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestIssuer, type TestIssuer } from '../helpers/issuer.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
let iss: TestIssuer;

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
    jwks: { cooldownSeconds: 1, timeoutMs: 1500 },
  });
});
afterAll(async () => {
  await stack?.close();
  await iss?.close();
});

const vend = async (token: string) => {
  const sessions = stack.stack.sessionCount();
  const leases = (await stack.runtime.leases.list({ limit: 1000 })).length;
  const answer = await stack.vend({ grant: 'reports-read' }, token);
  const wrote = stack.stack.sessionCount() - sessions + (await stack.runtime.leases.list({ limit: 1000 })).length - leases;
  return { ...answer, wrote };
};

it('JWKS answering 5xx → 503 upstream_unavailable, nothing written', async () => {
  iss.mode = 'error';
  const answer = await vend(await iss.mint());
  expect(answer.status).toBe(503);
  expect(answer.body.error).toBe('upstream_unavailable');
  expect(answer.wrote).toBe(0);
});

it('JWKS too slow → 503, nothing written', async () => {
  iss.mode = 'slow';
  await new Promise((r) => setTimeout(r, 1100)); // past the cooldown
  const answer = await vend(await iss.mint());
  expect(answer.status).toBe(503);
  expect(answer.wrote).toBe(0);
});

it('recovers when the JWKS does, and a rotated signing key verifies after exactly one refetch', async () => {
  iss.mode = 'ok';
  await new Promise((r) => setTimeout(r, 1100));
  expect((await vend(await iss.mint())).status).toBe(200);
  const hits = iss.jwksHits;
  expect((await vend(await iss.mint())).status).toBe(200);
  expect(iss.jwksHits).toBe(hits); // cached

  await iss.rotateKey();
  await new Promise((r) => setTimeout(r, 1100)); // past the cooldown since the last fetch
  expect((await vend(await iss.mint())).status).toBe(200);
  expect(iss.jwksHits).toBe(hits + 1);
  expect((await vend(await iss.mint())).status).toBe(200);
  expect(iss.jwksHits).toBe(hits + 1);
});
