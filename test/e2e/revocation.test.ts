/**
 * Revocation on the running local stack, proven with an action the grant allows: `aws s3 cp`
 * (the AWS CLI) and signed GetObject requests at the local S3, which authorizes as AWS does
 * (role policy ∩ session policy − the role's deny policy), and the emulator's evaluate route.
 * Revoked credentials stop working there and the others keep working; `sts get-caller-identity`
 * keeps answering for revoked credentials, as AWS does, so it proves nothing either way.
 * Time moves by the stack's controllable clock, never by sleeping.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetRolePolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as adminRevoke } from '../../cli/commands/admin-revoke.js';
import { run as selfRevoke } from '../../cli/commands/revoke.js';
import type { Io } from '../../cli/lib.js';
import { startTestIssuer, type TestIssuer } from '../helpers/issuer.js';
import { allowed, sdkCredentials } from '../helpers/evaluate.js';
import { awsS3Cp, s3Get } from '../helpers/s3.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const ROLE = (n: string) => `arn:aws:iam::123456789012:role/tvm/${n}`;
const ALLOW = `{ Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }`;

function yaml(partner: string): string {
  return `
issuers:
  - { name: dev, issuer: "http://127.0.0.1:1/_dev/issuer", audiences: [tvm], algorithms: [ES256] }
  - { name: partner, issuer: "${partner}", jwksUri: "${partner}/jwks", audiences: [tvm], algorithms: [RS256] }
grants:
${['reports', 'ops', 'fifty']
  .map(
    (g) => `  - name: ${g}
    roleArn: ${ROLE(g)}
    sessionPolicy: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }`,
  )
  .join('\n')}
policies: ./policies
local:
  devIssuer: dev
  buckets: [{ name: reports, seed: ./seed }]
  roles:
${['reports', 'ops', 'fifty'].map((g) => `    ${ROLE(g)}: ${ALLOW}`).join('\n')}
`;
}

const POLICIES = {
  'vend.cedar': '@id("anyone-vends")\npermit (principal, action == Tvm::Action::"vend", resource);\n',
  'revoke.cedar': '@id("self-revoke")\npermit (principal, action == Tvm::Action::"revoke", resource);\n',
};

let stack: TestStack;
let partner: TestIssuer;
let home: string;
let skewMs = 0;
const clock = { now: () => Date.now() + skewMs };

/** Moves every clock forward: tvm's, the emulator's and S3's, and what tvm's SDK clients sign with. */
function advance(seconds: number): void {
  skewMs += seconds * 1000;
  for (const c of [stack.runtime.iam, stack.runtime.sts]) (c.config as { systemClockOffset?: number }).systemClockOffset = skewMs;
}
const OBJECT = '/reports/team/q3.csv';

interface Vended {
  leaseId: string;
  token: string;
  creds: { AccessKeyId: string; SecretAccessKey: string; SessionToken: string };
}

async function vendAs(sub: string, grant: string, issuer: 'dev' | 'partner' = 'dev'): Promise<Vended> {
  const token = issuer === 'dev' ? await stack.mintToken({ team: 'x' }, { sub }) : await partner.mint({ sub });
  const { status, body } = await stack.vend({ grant }, token);
  expect(status, JSON.stringify(body)).toBe(200);
  return { leaseId: body.leaseId, token, creds: body.credentials };
}

/** `aws s3 cp` of an object the grant allows: true when it succeeds, false on AccessDenied. */
async function cliWorks(v: Vended): Promise<boolean> {
  const out = await awsS3Cp(stack.s3, v.creds, `s3:/${OBJECT}`, home);
  if (out.ok) {
    expect(out.stdout).toBe('q3\n');
    return true;
  }
  expect(out.stderr).toContain('403');
  return false;
}

/** The same check as a signed GetObject (for many credentials at once), cross-checked with the evaluate route. */
async function sdkWorks(v: Vended): Promise<boolean> {
  const got = await s3Get(stack.s3, v.creds, OBJECT, { signingDate: new Date(clock.now()) });
  const verdict = await allowed(stack.sts, sdkCredentials(v.creds), 's3:GetObject', `arn:aws:s3:::${OBJECT.slice(1)}`);
  if (got.status !== 200) expect(got).toMatchObject({ status: 403, code: 'AccessDenied' });
  expect(verdict).toBe(got.status === 200);
  return verdict;
}

/** AWS answers GetCallerIdentity for any valid credentials, revoked or not. */
async function callerIdentity(v: Vended): Promise<string | undefined> {
  const sts = new STSClient({
    endpoint: stack.sts,
    region: 'us-east-1',
    maxAttempts: 1,
    systemClockOffset: skewMs,
    credentials: { accessKeyId: v.creds.AccessKeyId, secretAccessKey: v.creds.SecretAccessKey, sessionToken: v.creds.SessionToken },
  });
  try {
    return (await sts.send(new GetCallerIdentityCommand({}))).Arn;
  } finally {
    sts.destroy();
  }
}

async function post(path: string, body: unknown, auth?: string): Promise<{ status: number; body: Record<string, any> }> {
  const res = await fetch(`${stack.api}${path}`, {
    method: 'POST',
    headers: { ...(auth ? { authorization: `Bearer ${auth}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function adminLease(id: string): Promise<Record<string, any>> {
  const res = await fetch(`${stack.api}/v1/admin/leases/${id}`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
  return (await res.json()) as Record<string, any>;
}

function io(env: Record<string, string>): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (s) => void stdout.push(s), err: (s) => void stderr.push(s), env: { TVM_ENDPOINT: stack.api, TVM_DATA: home, ...env } };
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'tvm-revocation-'));
  partner = await startTestIssuer();
  stack = await startTestStack({ yaml: yaml(partner.url), policies: POLICIES, clock, files: { 'seed/team/q3.csv': 'q3\n' } });
});
afterAll(async () => {
  await stack?.close();
  await partner?.close();
});

describe('revocation on the local stack', { timeout: 180_000 }, () => {
  it('self-revoke: one of two leases stops working, the other and another principal’s keep working; twice answers the same', async () => {
    const [a1, a2, b1] = [await vendAs('alice', 'reports'), await vendAs('alice', 'reports'), await vendAs('bob', 'reports')];
    expect(await cliWorks(a1)).toBe(true);
    const first = await post(`/v1/leases/${a1.leaseId}/revoke`, undefined, a1.token);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ leaseId: a1.leaseId, status: 'revoked', revokedAt: expect.any(String) });
    expect(await cliWorks(a1)).toBe(false);
    expect(await cliWorks(a2)).toBe(true);
    expect(await sdkWorks(b1)).toBe(true);
    // As in AWS, a revoked session still learns who it is: GetCallerIdentity is no test of revocation.
    expect(await callerIdentity(a1)).toContain(`/tvm-${a1.leaseId}`);
    const again = await post(`/v1/leases/${a1.leaseId}/revoke`, undefined, a1.token);
    expect(again).toEqual(first);

    const lease = await adminLease(a1.leaseId);
    expect(lease).toMatchObject({ status: 'revoked', revokedBy: 'dev|alice', revokeReason: 'self-revoke' });
    expect(lease.events.at(-1)).toMatchObject({ type: 'revoked', by: 'dev|alice', reason: 'self-revoke' });
    expect(stack.logs.some((l) => l.includes('"lease_revoked"') && l.includes(a1.leaseId))).toBe(true);
  });

  it('`tvm revoke ID` revokes with the workload token', async () => {
    const v = await vendAs('carol', 'reports');
    const out = io({ TVM_TOKEN: v.token });
    expect(await selfRevoke([v.leaseId, '--reason', 'task finished'], out)).toBe(0);
    expect(out.stdout.join('')).toContain(`${v.leaseId} revoked`);
    expect(await sdkWorks(v)).toBe(false);
    expect((await adminLease(v.leaseId)).revokeReason).toBe('task finished');
  });

  it('admin revoke by principal: all of that principal’s leases fail, the other principal’s works', async () => {
    const [d1, d2, e1] = [await vendAs('dave', 'reports'), await vendAs('dave', 'ops'), await vendAs('erin', 'reports')];
    const out = io({ TVM_ADMIN_TOKEN: stack.adminToken });
    expect(await adminRevoke(['revoke', '--principal', 'dev|dave', '--reason', 'compromised runner'], out)).toBe(0);
    expect(out.stdout.join('')).toMatch(/^revoked 2 leases\n/);
    for (const v of [d1, d2]) expect(out.stdout.join('')).toContain(v.leaseId);
    expect(await cliWorks(d1)).toBe(false);
    expect(await sdkWorks(d2)).toBe(false);
    expect(await sdkWorks(e1)).toBe(true);
    expect(await adminLease(d2.leaseId)).toMatchObject({ status: 'revoked', revokeReason: 'compromised runner', revokedBy: expect.stringContaining('admin') });
    // A fresh lease of the same principal works again (the deny is for sessions issued before the revocation).
    advance(2);
    expect(await sdkWorks(await vendAs('dave', 'reports'))).toBe(true);
  });

  it('admin revoke by grant: the grant’s leases fail, other grants’ leases work', async () => {
    const [o1, o2, r1] = [await vendAs('frank', 'ops'), await vendAs('grace', 'ops'), await vendAs('frank', 'reports')];
    const res = await post('/v1/admin/revoke', { grant: 'ops', reason: 'rotate ops role' }, stack.adminToken);
    expect(res).toMatchObject({ status: 200, body: { revoked: 2, fallbacks: 0 } });
    expect(await cliWorks(o1)).toBe(false);
    expect(await sdkWorks(o2)).toBe(false);
    expect(await sdkWorks(r1)).toBe(true);
  });

  it('admin revoke by issuer: the issuer’s leases fail, other issuers’ leases work', async () => {
    const [p1, p2, d1] = [await vendAs('repo:acme/app', 'reports', 'partner'), await vendAs('repo:acme/lib', 'ops', 'partner'), await vendAs('heidi', 'reports')];
    const res = await post('/v1/admin/revoke', { issuer: 'partner', reason: 'partner key leaked' }, stack.adminToken);
    expect(res).toMatchObject({ status: 200, body: { revoked: 2, fallbacks: 0 } });
    expect(await cliWorks(p1)).toBe(false);
    expect(await sdkWorks(p2)).toBe(false);
    expect(await sdkWorks(d1)).toBe(true);
  });

  it('admin revoke by lease id, then the same again revokes nothing', async () => {
    const v = await vendAs('ivan', 'reports');
    expect(await post('/v1/admin/revoke', { leaseId: v.leaseId, reason: 'r' }, stack.adminToken)).toMatchObject({ status: 200, body: { revoked: 1, leaseIds: [v.leaseId] } });
    expect(await post('/v1/admin/revoke', { leaseId: v.leaseId, reason: 'r' }, stack.adminToken)).toMatchObject({ status: 200, body: { revoked: 0, leaseIds: [] } });
    expect(await sdkWorks(v)).toBe(false);
  });

  it('50 revocations in parallel on one role: every one of them is denied afterwards', async () => {
    const leases = await Promise.all(Array.from({ length: 50 }, (_, i) => vendAs(`worker-${i % 7}`, 'fifty')));
    const keep = await vendAs('keeper', 'fifty');
    const answers = await Promise.all(leases.map((v) => post(`/v1/leases/${v.leaseId}/revoke`, undefined, v.token)));
    expect(answers.map((a) => a.status)).toEqual(leases.map(() => 200));
    const works = await Promise.all(leases.map(sdkWorks));
    expect(works.filter(Boolean)).toHaveLength(0);
    expect(await cliWorks(keep)).toBe(true);
    const iam = new IAMClient({ endpoint: stack.sts, region: 'us-east-1', credentials: stack.runtime.settings.credentials });
    const doc = decodeURIComponent((await iam.send(new GetRolePolicyCommand({ RoleName: 'fifty', PolicyName: stack.runtime.denyPolicyName }))).PolicyDocument!);
    for (const v of leases) expect(doc).toContain(`*:tvm-${v.leaseId}`);
    iam.destroy();
  });

  describe('bad input', () => {
    it('an unknown lease answers 404 with the fixed phrase', async () => {
      const v = await vendAs('judy', 'reports');
      const res = await post('/v1/leases/Laaaaaaaaaaaaaaaaaaaaaaaaaa/revoke', undefined, v.token);
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ error: 'not_found', message: 'Not found.' });
      expect((await post('/v1/leases/not-a-lease/revoke', undefined, v.token)).status).toBe(404);
    });

    it('another principal’s lease answers 404 (not 403), and stays untouched', async () => {
      const victim = await vendAs('kim', 'reports');
      const mallory = await vendAs('mallory', 'reports');
      const res = await post(`/v1/leases/${victim.leaseId}/revoke`, undefined, mallory.token);
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ error: 'not_found', message: 'Not found.' });
      expect(await sdkWorks(victim)).toBe(true);
      expect((await adminLease(victim.leaseId)).status).toBe('active');
    });

    it.each([
      ['a missing reason', { principal: 'dev|x' }],
      ['an empty reason', { principal: 'dev|x', reason: ' ' }],
      ['two selectors', { principal: 'dev|x', grant: 'ops', reason: 'r' }],
      ['no selector', { reason: 'r' }],
      ['all: false', { all: false, reason: 'r' }],
    ])('admin revoke with %s answers 400', async (_label, body) => {
      const res = await post('/v1/admin/revoke', body, stack.adminToken);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
    });

    it('admin routes without the admin credential answer 401', async () => {
      expect((await post('/v1/admin/revoke', { all: true, reason: 'r' })).status).toBe(401);
      const v = await vendAs('leo', 'reports');
      expect((await post('/v1/admin/revoke', { all: true, reason: 'r' }, v.token)).status).toBe(401);
      expect(await sdkWorks(v)).toBe(true);
    });

    it('self-revoke without a valid token answers 401', async () => {
      const v = await vendAs('mia', 'reports');
      expect((await post(`/v1/leases/${v.leaseId}/revoke`, undefined)).status).toBe(401);
      expect((await post(`/v1/leases/${v.leaseId}/revoke`, undefined, 'not.a.jwt')).status).toBe(401);
    });

    it('the CLI exits 2 on bad usage and 1 on a refusal', async () => {
      const out = io({ TVM_ADMIN_TOKEN: stack.adminToken });
      await expect(adminRevoke(['revoke', '--principal', 'dev|x'], out)).rejects.toThrow('--reason is required');
      const bad = io({ TVM_ADMIN_TOKEN: 'wrong' });
      await expect(adminRevoke(['revoke', '--all', '--yes', '--reason', 'r'], bad)).rejects.toThrow(/invalid_token/);
    });
  });
});
