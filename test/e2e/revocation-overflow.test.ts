/**
 * The hard cases on the local stack, with a controllable clock (the handlers, the emulator and the
 * SDK clients' signing all move together): 320 admin revocations on one role overflow the
 * inline-policy budget (the role-wide TokenIssueTime fallback engages once, every revoked session
 * is denied, every other lease it killed is recorded revoked); sessions vended after the fallback
 * and then revoked are denied — exactly those; a pending lease left by a crash is settled; after
 * expiry the sweep empties the deny policy; a sweep that fails between pages and is rerun ends in
 * the same state. Whether credentials work is asked with an action the grant allows, never
 * sts:GetCallerIdentity (AWS answers it whatever the policies say): a real GetObject at the local S3
 * (AccessDenied or the object) for a sample in each step (about forty calls: a tenth of the revoked
 * sessions, a quarter of the collateral, the first twenty sessions vended after the fallback, the
 * crashed and a bystander session), and the emulator's evaluate route (the same policy engine over
 * the same deny policy, a fraction of the cost) for the bulk counts: all 320 revoked, all 20
 * collateral, all 40 later sessions.
 */
import { GetRolePolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionNameFor, sourceIdentityFor } from '../../functions/core/lease.js';
import type { Lease, LeaseStore } from '../../functions/core/ports.js';
import { sweepLeases } from '../../functions/core/sweep-leases.js';
import { allowed, sdkCredentials } from '../helpers/evaluate.js';
import { s3Get } from '../helpers/s3.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const ROLE = 'arn:aws:iam::123456789012:role/tvm/bulk';
const YAML = `
issuers:
  - { name: dev, issuer: "http://127.0.0.1:1/_dev/issuer", audiences: [tvm], algorithms: [ES256] }
grants:
  - name: bulk
    roleArn: ${ROLE}
    sessionPolicy: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }
policies: ./policies
local:
  devIssuer: dev
  buckets: [{ name: reports, seed: ./local-s3/reports }]
  roles:
    ${ROLE}: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }
`;
const POLICIES = {
  'all.cedar': '@id("vend")\npermit (principal, action == Tvm::Action::"vend", resource);\n@id("revoke")\npermit (principal, action == Tvm::Action::"revoke", resource);\n',
};

let skewMs = 0;
const clock = { now: () => Date.now() + skewMs };
let stack: TestStack;

type Creds = { AccessKeyId: string; SecretAccessKey: string; SessionToken: string };
interface Vended {
  leaseId: string;
  token: string;
  creds: Creds;
}

/** Moves every clock forward: tvm's, the emulator's, and what tvm's SDK clients sign with. */
function advance(seconds: number): void {
  skewMs += seconds * 1000;
  for (const c of [stack.runtime.iam, stack.runtime.sts]) (c.config as { systemClockOffset?: number }).systemClockOffset = skewMs;
}

async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }),
  );
  return out;
}

/** Are these credentials refused an action the grant and the role allow? (The evaluate route, for bulk counts.) */
const denied = async (creds: Creds): Promise<boolean> => !(await allowed(stack.sts, sdkCredentials(creds)));

/** The same question asked of the local S3 with a real GetObject, signed at the stack's time: AccessDenied or the object. */
async function s3Denied(creds: Creds): Promise<boolean> {
  const r = await s3Get(stack.s3, creds, '/reports/analytics/q3.csv', { signingDate: new Date(clock.now()) });
  if (r.status !== 200) expect(r, 'only AccessDenied counts as a refusal').toMatchObject({ status: 403, code: 'AccessDenied' });
  return r.status !== 200;
}
/** Every `step`-th item. */
const sample = <T>(items: T[], step: number): T[] => items.filter((_, i) => i % step === 0);

async function denyPolicy(): Promise<string | undefined> {
  const iam = new IAMClient({ endpoint: stack.sts, region: 'us-east-1', credentials: stack.runtime.settings.credentials, systemClockOffset: skewMs });
  try {
    const out = await iam.send(new GetRolePolicyCommand({ RoleName: 'bulk', PolicyName: stack.runtime.denyPolicyName }));
    return decodeURIComponent(out.PolicyDocument!);
  } catch (e) {
    if ((e as Error).name === 'NoSuchEntityException' || (e as Error).name === 'NoSuchEntity') return undefined;
    throw e;
  } finally {
    iam.destroy();
  }
}

async function adminPost(path: string, body?: unknown): Promise<{ status: number; body: Record<string, any> }> {
  const res = await fetch(`${stack.api}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

const statuses = async (ids: string[]) => Promise.all(ids.map(async (id) => (await stack.runtime.leases.get(id))!.status));

let revoked: Vended[] = [];
/** Vended before the fallback and not revoked by name: the fallback kills them too. */
let collateral: Vended[] = [];
/** Live when the sweep runs: vended after the fallback, not revoked. */
let bystanders: Vended[] = [];
let crashed: { leaseId: string; creds: Creds };

async function vendMany(n: number, tokens: string[]): Promise<Vended[]> {
  return pool(Array.from({ length: n }, (_, i) => i), 25, async (i): Promise<Vended> => {
    const token = tokens[i % tokens.length];
    const { status, body } = await stack.vend({ grant: 'bulk' }, token);
    expect(status, JSON.stringify(body)).toBe(200);
    return { leaseId: body.leaseId, token, creds: body.credentials };
  });
}

let tokens: string[];
beforeAll(async () => {
  stack = await startTestStack({ yaml: YAML, policies: POLICIES, clock });
  tokens = await Promise.all(Array.from({ length: 5 }, (_, i) => stack.mintToken({}, { sub: `agent-${i}`, ttlSeconds: 3600 })));
  const vended = await vendMany(340, tokens);
  revoked = vended.slice(0, 320);
  collateral = vended.slice(320);
}, 120_000);
afterAll(async () => {
  await stack?.close();
});

describe('overflow, settlement, sweep (controllable clock)', () => {
  it('320 admin revocations on one role: none fails, the role fallback engages once, every revoked session is denied, every lease it killed is recorded', async () => {
    const answers = await pool(revoked, 20, (v) => adminPost('/v1/admin/revoke', { leaseId: v.leaseId, reason: 'incident' }).then((r) => r.status));
    expect(answers.filter((s) => s !== 200)).toEqual([]);
    expect(stack.stack.metrics.counts.RevocationFallback).toBe(1);
    expect(stack.logs.filter((l) => l.includes('"revocation_fallback"'))).toHaveLength(1);
    const deniedNow = await pool(revoked, 25, (v) => denied(v.creds));
    expect(deniedNow.filter((d) => !d)).toHaveLength(0);
    const revokedSample = sample(revoked, 32);
    expect(await pool(revokedSample, 5, (v) => s3Denied(v.creds))).toEqual(revokedSample.map(() => true));
    expect(await denyPolicy()).toContain('aws:TokenIssueTime');
    expect((await statuses(revoked.map((v) => v.leaseId))).every((s) => s === 'revoked')).toBe(true);
    // The fallback's collateral (older sessions of the role) is dead and recorded so, naming it.
    expect(await pool(collateral, 10, (v) => denied(v.creds))).toEqual(collateral.map(() => true));
    const collateralSample = sample(collateral, 4);
    expect(await pool(collateralSample, 5, (v) => s3Denied(v.creds))).toEqual(collateralSample.map(() => true));
    for (const v of collateral) {
      const lease = (await stack.runtime.leases.get(v.leaseId))!;
      expect(lease).toMatchObject({ status: 'revoked', revokeReason: 'fallback:role' });
      expect(lease.events.at(-1)).toMatchObject({ type: 'revoked', detail: { fallback: 'role' } });
    }
  }, 300_000);

  it('sessions vended after the fallback: revoke half, exactly those are denied', async () => {
    advance(2);
    const later = await vendMany(40, tokens);
    expect(await pool(later, 10, (v) => denied(v.creds))).toEqual(later.map(() => false));
    expect(await s3Denied(later[0].creds)).toBe(false);
    const half = later.filter((_, i) => i % 2 === 0);
    const answers = await pool(half, 10, (v) =>
      fetch(`${stack.api}/v1/leases/${v.leaseId}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${v.token}` } }).then((r) => r.status),
    );
    expect(answers).toEqual(half.map(() => 200));
    expect(await pool(later, 10, (v) => denied(v.creds))).toEqual(later.map((_, i) => i % 2 === 0));
    const first20 = later.slice(0, 20);
    expect(await pool(first20, 5, (v) => s3Denied(v.creds))).toEqual(first20.map((_, i) => i % 2 === 0));
    bystanders = later.filter((_, i) => i % 2 !== 0);
    revoked.push(...half);
  }, 120_000);

  it('settles a pending lease left by a crash between STS and the lease update: its session is denied, the lease failed', async () => {
    const leaseId = stack.runtime.ids.leaseId();
    const now = clock.now();
    const lease: Lease = {
      leaseId,
      status: 'pending',
      principal: 'dev|crashy',
      issuer: 'dev',
      sub: 'crashy',
      grant: 'bulk',
      roleArn: ROLE,
      sessionName: sessionNameFor(leaseId),
      sourceIdentity: sourceIdentityFor('dev', 'crashy'),
      context: {},
      decision: ['vend'],
      tokenSha256: '0'.repeat(64),
      durationSeconds: 900,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 900_000).toISOString(),
      ttl: Math.floor(now / 1000) + 90 * 86400,
      events: [{ at: new Date(now).toISOString(), type: 'requested' }],
    };
    await stack.runtime.leases.createPending(lease);
    const c = await stack.runtime.credentials.assumeRole({ roleArn: ROLE, sessionName: lease.sessionName, sourceIdentity: lease.sourceIdentity, durationSeconds: 900, policy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}', tags: {} });
    crashed = { leaseId, creds: { AccessKeyId: c.accessKeyId, SecretAccessKey: c.secretAccessKey, SessionToken: c.sessionToken } };
    expect(await denied(crashed.creds)).toBe(false);
    expect(await s3Denied(crashed.creds)).toBe(false);

    advance(stack.runtime.config.leases.pendingTimeoutSeconds + 10);
    const { status, body } = await adminPost('/v1/admin/sweep');
    expect(status).toBe(200);
    expect(body).toMatchObject({ settled: 1, expired: 0, errors: 0, complete: true });
    expect(await denied(crashed.creds)).toBe(true);
    expect(await s3Denied(crashed.creds)).toBe(true);
    const settled = (await stack.runtime.leases.get(leaseId))!;
    expect(settled.status).toBe('failed');
    expect(settled.events.at(-1)).toMatchObject({ type: 'settled', by: 'tvm:sweep', reason: 'pending_timeout' });
    // The session vended after the fallback is untouched by the settlement.
    expect(await denied(bystanders.at(-1)!.creds)).toBe(false);
    expect(await s3Denied(bystanders.at(-1)!.creds)).toBe(false);
  });

  it('after expiry, a sweep interrupted between pages and rerun ends where an uninterrupted one would: all expired, deny policy empty', async () => {
    advance(3600);
    const failing: LeaseStore = Object.create(stack.runtime.leases);
    let calls = 0;
    failing.listDue = (dueBy, cursor, limit) => {
      if (++calls === 2) return Promise.reject(new Error('injected: sweep killed between pages'));
      return stack.runtime.leases.listDue(dueBy, cursor, limit);
    };
    const deps = { leases: failing, revoker: stack.runtime.revoker, clock, audit: stack.runtime.audit, metrics: stack.runtime.metrics };
    const broken = await sweepLeases(deps, { pageSize: 10 });
    expect(broken).toMatchObject({ complete: false, errors: 1 });
    expect(broken.expired).toBeGreaterThan(0);
    expect(broken.expired).toBeLessThan(bystanders.length);
    expect(await denyPolicy()).toBeDefined(); // pruning had not started

    const rerun = await adminPost('/v1/admin/sweep');
    expect(rerun.body).toMatchObject({ complete: true, errors: 0, fallbacksDropped: 1 });
    expect(broken.expired + rerun.body.expired).toBe(bystanders.length);
    expect(await statuses(bystanders.map((v) => v.leaseId))).toEqual(bystanders.map(() => 'expired'));
    expect((await statuses([...revoked, ...collateral].map((v) => v.leaseId))).every((s) => s === 'revoked')).toBe(true);
    expect(await statuses([crashed.leaseId])).toEqual(['failed']);
    expect(await denyPolicy()).toBeUndefined();
    expect(stack.logs.filter((l) => l.includes('"lease_expired"'))).toHaveLength(bystanders.length);

    // Idempotent: a third run changes nothing.
    const again = await adminPost('/v1/admin/sweep');
    expect(again.body).toMatchObject({ expired: 0, settled: 0, entriesPruned: 0, rolesPruned: 0, errors: 0 });
  });
});
