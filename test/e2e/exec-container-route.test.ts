/**
 * `GET /v1/credentials/{grant}?durationSeconds=N`, for SDKs that call tvm directly: the duration
 * is bounded by the grant exactly as in the vend body, and a malformed one is a 400.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const ROLE = 'arn:aws:iam::123456789012:role/tvm/short';
const YAML = `
issuers:
  - { name: dev, issuer: "http://127.0.0.1:1/_dev/issuer", audiences: [tvm], algorithms: [ES256] }
grants:
  - name: short
    roleArn: ${ROLE}
    durationSeconds: { default: 900, max: 1200 }
    sessionPolicy: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }
policies: ./policies
local:
  devIssuer: dev
  roles:
    ${ROLE}: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }
`;
const POLICIES = { 'all.cedar': '@id("vend")\npermit (principal, action == Tvm::Action::"vend", resource);\n' };

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ yaml: YAML, policies: POLICIES });
});
afterAll(async () => {
  await stack?.close();
});

async function get(query: string): Promise<{ status: number; body: Record<string, string> }> {
  const res = await fetch(`${stack.api}/v1/credentials/short${query}`, { headers: { authorization: await stack.mintToken() } });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}

const lifeSeconds = (body: Record<string, string>, before: number) => Math.round((Date.parse(body.Expiration) - before) / 1000);

describe('GET /v1/credentials/{grant}?durationSeconds', () => {
  it.each([
    ['', 900],
    ['?durationSeconds=1000', 1000],
    ['?durationSeconds=1200', 1200],
    ['?durationSeconds=3600', 1200], // above the grant's max: the max, as in the vend body
    ['?durationSeconds=1000&task=nightly', 1000],
  ])('%s gives credentials for %i s', async (query, seconds) => {
    const before = Date.now();
    const { status, body } = await get(query);
    expect(status).toBe(200);
    expect(Math.abs(lifeSeconds(body, before) - seconds)).toBeLessThanOrEqual(5);
  });

  it.each(['?durationSeconds=abc', '?durationSeconds=', '?durationSeconds=1e3', '?durationSeconds=-900', '?durationSeconds=60', '?durationSeconds=7200'])('%s is refused with 400', async (query) => {
    const { status, body } = await get(query);
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_request');
    expect(body).not.toHaveProperty('AccessKeyId');
  });
});
