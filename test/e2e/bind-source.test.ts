/**
 * `bind: { sourceIp: true }` on the local stack: the session policy STS gets is bound to the
 * address the vend came from, as the API saw it (locally the TCP peer; 127.0.0.2 is loopback too),
 * and end to end at the local S3, whose `aws:SourceIp` is the TCP peer of the S3 request: a
 * credential vended from one address reads the object from that address and is AccessDenied from
 * the other (the client socket's local address chosen per request). A grant without `bind` works
 * from both.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Get } from '../helpers/s3.js';
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
  - name: unbound
    roleArn: ${ROLE}
    sessionPolicy: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }
policies: ./policies
local:
  devIssuer: dev
  buckets: [{ name: reports, seed: ./local-s3/reports }]
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
async function vendFrom(localAddress: string, token: string, grant = 'bound'): Promise<{ status: number; body: Record<string, any> }> {
  const url = new URL(`${stack.api}/v1/vend`);
  const payload = JSON.stringify({ grant });
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

describe('bind.sourceIp at the local S3 (aws:SourceIp is the S3 request\'s TCP source)', () => {
  const OBJECT = '/reports/analytics/q3.csv';
  /** GetObject of a seeded object from `localAddress`: 'ok' with its text, else S3's error code. */
  async function readFrom(localAddress: string, creds: { AccessKeyId: string; SecretAccessKey: string; SessionToken: string }): Promise<string> {
    const r = await s3Get(stack.s3, creds, OBJECT, { localAddress });
    if (r.status === 200) return r.body.startsWith('quarter,revenue') ? 'ok' : `wrong body: ${r.body}`;
    return r.code ?? `HTTP ${r.status}`;
  }

  it.each([
    ['127.0.0.1', '127.0.0.2'],
    ['127.0.0.2', '127.0.0.1'],
  ])('a bound credential vended from %s reads from there and is AccessDenied from %s', async (home, elsewhere) => {
    const { status, body } = await vendFrom(home, await stack.mintToken());
    expect(status, JSON.stringify(body)).toBe(200);
    expect(await readFrom(home, body.credentials)).toBe('ok');
    expect(await readFrom(elsewhere, body.credentials)).toBe('AccessDenied');
    // Still its own address's after a refusal elsewhere (nothing was revoked, only the request refused).
    expect(await readFrom(home, body.credentials)).toBe('ok');
  });

  it('a credential of a grant without bind reads from both addresses', async () => {
    const { status, body } = await vendFrom('127.0.0.1', await stack.mintToken(), 'unbound');
    expect(status, JSON.stringify(body)).toBe(200);
    expect(await readFrom('127.0.0.1', body.credentials)).toBe('ok');
    expect(await readFrom('127.0.0.2', body.credentials)).toBe('ok');
  });
});
