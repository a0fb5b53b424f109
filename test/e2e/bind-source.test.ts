/**
 * `bind: { sourceIp: true }` on the local stack: the session policy STS gets is bound to the
 * address the vend came from, as the API saw it (locally the TCP peer; 127.0.0.2 is loopback too).
 * Whether a bound credential is refused elsewhere is proven against a real IAM policy engine in
 * test/core/render-session-policy.test.ts; the local S3 (aws:SourceIp from the TCP peer) will
 * prove it end to end.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const ROLE = 'arn:aws:iam::123456789012:role/tvm/bound';
const YAML = `
issuers:
  - { name: dev, issuer: "http://127.0.0.1:1/_dev/issuer", audiences: [tvm], algorithms: [ES256] }
grants:
  - name: bound
    roleArn: ${ROLE}
    bind: { sourceIp: true }
    sessionPolicy: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }
policies: ./policies
local:
  devIssuer: dev
  roles:
    ${ROLE}: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }
`;
const POLICIES = { 'vend.cedar': '@id("vend")\npermit (principal, action == Tvm::Action::"vend", resource);\n' };

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack({ yaml: YAML, policies: POLICIES });
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

/** POST /v1/vend from a chosen loopback address. */
async function vendFrom(localAddress: string, token: string): Promise<{ status: number; body: Record<string, any> }> {
  const url = new URL(`${stack.api}/v1/vend`);
  const payload = JSON.stringify({ grant: 'bound' });
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', localAddress, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('bind.sourceIp on the local stack', () => {
  it.each([['127.0.0.1'], ['127.0.0.2']])('a vend from %s gets credentials bound to that address', async (address) => {
    const { status, body } = await vendFrom(address, await stack.mintToken());
    expect(status, JSON.stringify(body)).toBe(200);
    const lease = (await stack.runtime.leases.get(body.leaseId))!;
    const statements = JSON.parse(lease.sessionPolicy!).Statement;
    expect(statements.at(-1)).toEqual({
      Sid: 'TvmBindSourceIp',
      Effect: 'Deny',
      Action: '*',
      Resource: '*',
      Condition: { NotIpAddress: { 'aws:SourceIp': `${address}/32` }, Bool: { 'aws:ViaAWSService': 'false' } },
    });
  });
});
