/**
 * tvm against a real OpenID Provider (oidc-provider: client_credentials with JWT access tokens),
 * keys found through OIDC discovery, besides the dev issuer.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
let op: Server;
let issuer: string;
const SECRET = 's'.repeat(43);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

beforeAll(async () => {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{ client_id: 'agent-7', client_secret: SECRET, grant_types: ['client_credentials'], redirect_uris: [], response_types: [] }],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'op-1', alg: 'RS256', use: 'sig' } as never] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'https://tvm.example/',
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: 'vend', audience: 'tvm', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
      },
    },
    ttl: { ClientCredentials: 300 },
  });
  op = provider.listen(port, '127.0.0.1');
  stack = await startTestStack({
    yaml: `
issuers:
  - { name: op, issuer: "${issuer}", audiences: [tvm], algorithms: [RS256] }
grants:
  - name: agent-reports
    roleArn: arn:aws:iam::123456789012:role/tvm/agent-reports
    sessionPolicy:
      Version: "2012-10-17"
      Statement: [{ Effect: Allow, Action: [s3:GetObject], Resource: ["arn:aws:s3:::reports/\${claims.client_id}/*"] }]
`,
    policies: {
      'agents.cedar': `@id("op-agent-7") permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"agent-reports")
        when { principal.issuer == "op" && principal.claims has client_id && principal.claims.client_id == "agent-7" };`,
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await new Promise((r) => op?.close(r));
});

it('vends for a JWT access token from a real OP, found through discovery', async () => {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`agent-7:${SECRET}`).toString('base64')}` },
    body: 'grant_type=client_credentials&scope=vend&resource=https%3A%2F%2Ftvm.example%2F',
  });
  expect(res.status).toBe(200);
  const { access_token: token } = (await res.json()) as { access_token: string };
  const answer = await stack.vend({ grant: 'agent-reports' }, token);
  expect(answer.status).toBe(200);
  const lease = await stack.runtime.leases.get(answer.body.leaseId);
  expect(lease?.principal).toBe('op|agent-7');
  expect(lease?.decision).toEqual(['op-agent-7']);
});
