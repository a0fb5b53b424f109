/**
 * Issue 10, item 1, as an attacker would run it on the local stack: one ordinary workload vends
 * and self-revokes in a loop on a role it shares with a victim, to overflow the role's deny
 * policy and make tvm deny every session of the role. It must not work: the attacker's own
 * revocations fall back only to its own sessions (SourceIdentity + TokenIssueTime), the victim's
 * credentials keep working and its lease stays active, and the attacker runs into its rate (429
 * `throttled`). `maxLiveLeasesPerPrincipal` bounds what it can hold. Whether credentials work is a
 * real GetObject of an object the grant allows at the local S3 (some fifteen calls: few enough that
 * the emulator's evaluate route is not needed here), never GetCallerIdentity.
 * To overflow quickly, another inline policy fills most of the role's 10,240-character budget.
 */
import { PutRolePolicyCommand } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Get } from '../helpers/s3.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const ROLE = 'arn:aws:iam::123456789012:role/tvm/shared';
const RATE = 60;
const MAX_LIVE = 3;
const YAML = `
issuers:
  - { name: dev, issuer: "http://127.0.0.1:1/_dev/issuer", audiences: [tvm], algorithms: [ES256] }
grants:
  - name: shared
    roleArn: ${ROLE}
    maxLiveLeasesPerPrincipal: ${MAX_LIVE}
    sessionPolicy: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }
policies: ./policies
leases:
  ratePerPrincipal: { vends: ${RATE}, windowSeconds: 3600 }
local:
  devIssuer: dev
  buckets: [{ name: reports, seed: ./local-s3/reports }]
  roles:
    ${ROLE}: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }
`;
const POLICIES = {
  'all.cedar': '@id("vend")\npermit (principal, action == Tvm::Action::"vend", resource);\n@id("revoke")\npermit (principal, action == Tvm::Action::"revoke", resource);\n',
};

type Creds = { AccessKeyId: string; SecretAccessKey: string; SessionToken: string };
let stack: TestStack;
let attacker: string;
let victim: { token: string; leaseId: string; creds: Creds };

/** A GetObject the grant allows, at the local S3: true when the object came back, false on AccessDenied. */
async function works(c: Creds): Promise<boolean> {
  const r = await s3Get(stack.s3, c, '/reports/analytics/q3.csv');
  if (r.status !== 200) expect(r, 'only AccessDenied counts as a refusal').toMatchObject({ status: 403, code: 'AccessDenied' });
  return r.status === 200;
}
const revoke = (leaseId: string, token: string) =>
  fetch(`${stack.api}/v1/leases/${leaseId}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> }));

beforeAll(async () => {
  stack = await startTestStack({ yaml: YAML, policies: POLICIES });
  // Another inline policy leaves tvm about 1,000 characters: some 25 session entries.
  const filler = { Version: '2012-10-17', Statement: [{ Sid: 'F', Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${'x'.repeat(9100)}` }] };
  await stack.runtime.iam.send(new PutRolePolicyCommand({ RoleName: 'shared', PolicyName: 'other', PolicyDocument: JSON.stringify(filler) }));
  attacker = await stack.mintToken({}, { sub: 'mallory', ttlSeconds: 3600 });
  const token = await stack.mintToken({}, { sub: 'victim', ttlSeconds: 3600 });
  const v = await stack.vend({ grant: 'shared' }, token);
  expect(v.status, JSON.stringify(v.body)).toBe(200);
  victim = { token, leaseId: v.body.leaseId, creds: v.body.credentials };
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

describe('vend + self-revoke in a loop on a shared role', () => {
  it('kills only the attacker’s own sessions; the victim keeps working; the attacker gets 429', async () => {
    // One lease the attacker keeps: its own fallback may kill it, and must record that.
    const kept = await stack.vend({ grant: 'shared' }, attacker);
    expect(kept.status).toBe(200);
    const statuses: number[] = [];
    let throttled: Record<string, any> | undefined;
    for (let i = 0; i < RATE + 5 && !throttled; i++) {
      const v = await stack.vend({ grant: 'shared' }, attacker);
      if (v.status === 429) {
        throttled = v.body;
        break;
      }
      expect(v.status, JSON.stringify(v.body)).toBe(200);
      const r = await revoke(v.body.leaseId, attacker);
      statuses.push(r.status);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      if (i % 10 === 9) expect(await works(victim.creds)).toBe(true);
    }
    expect(throttled).toMatchObject({ error: 'throttled' });
    expect(statuses.length).toBe(RATE - 1); // the rate is per principal: the kept lease counts, the victim’s does not
    // The attacker overflowed the policy more than once, and every fallback was its own.
    const fallbacks = stack.logs.filter((l) => l.includes('"revocation_fallback"')).map((l) => JSON.parse(l));
    expect(fallbacks.length).toBeGreaterThanOrEqual(2);
    expect(fallbacks.every((f) => f.fallback === 'principal')).toBe(true);
    expect(await works(victim.creds)).toBe(true);
    expect((await stack.runtime.leases.get(victim.leaseId))!.status).toBe('active');
    // The attacker's kept session died with its own fallback, and its lease says so.
    expect(await works(kept.body.credentials)).toBe(false);
    expect((await stack.runtime.leases.get(kept.body.leaseId))!).toMatchObject({ status: 'revoked', revokeReason: 'fallback:principal' });
    // The victim can still revoke its own lease: by name, and only its session dies.
    const again = await stack.vend({ grant: 'shared' }, victim.token);
    expect(again.status).toBe(200);
    expect((await revoke(again.body.leaseId, victim.token)).status).toBe(200);
    expect(await works(again.body.credentials)).toBe(false);
    expect(await works(victim.creds)).toBe(true);
  }, 300_000);

  it(`refuses a principal's vend beyond maxLiveLeasesPerPrincipal (${MAX_LIVE}) with 429, and counts revoked leases out`, async () => {
    const token = await stack.mintToken({}, { sub: 'hoarder', ttlSeconds: 3600 });
    const held = [];
    for (let i = 0; i < MAX_LIVE; i++) {
      const v = await stack.vend({ grant: 'shared' }, token);
      expect(v.status).toBe(200);
      held.push(v.body);
    }
    const over = await stack.vend({ grant: 'shared' }, token);
    expect(over).toMatchObject({ status: 429, body: { error: 'throttled' } });
    expect(stack.logs.some((l) => l.includes('"max_live_leases"'))).toBe(true);
    expect((await revoke(held[0].leaseId, token)).status).toBe(200);
    expect((await stack.vend({ grant: 'shared' }, token)).status).toBe(200);
  }, 120_000);
});
