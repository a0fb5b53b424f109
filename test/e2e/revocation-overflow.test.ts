/**
 * The hard cases on the local stack, with a controllable clock (the handlers, the emulator and the
 * SDK clients' signing all move together): 500 revocations on one role overflow the inline-policy
 * budget (the TokenIssueTime fallback engages once, every revoked session is denied); a pending
 * lease left by a crash is settled; after expiry the sweep empties the deny policy; a sweep that
 * fails between pages and is rerun ends in the same state.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { GetRolePolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionNameFor, sourceIdentityFor } from '../../functions/core/lease.js';
import type { Lease, LeaseStore } from '../../functions/core/ports.js';
import { sweepLeases } from '../../functions/core/sweep-leases.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const exec = promisify(execFile);
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

async function denied(creds: Creds): Promise<boolean> {
  const sts = new STSClient({
    endpoint: stack.sts,
    region: 'us-east-1',
    maxAttempts: 1,
    systemClockOffset: skewMs,
    credentials: { accessKeyId: creds.AccessKeyId, secretAccessKey: creds.SecretAccessKey, sessionToken: creds.SessionToken },
  });
  try {
    await sts.send(new GetCallerIdentityCommand({}));
    return false;
  } catch (e) {
    if ((e as Error).name === 'AccessDenied') return true;
    throw e;
  } finally {
    sts.destroy();
  }
}

async function cliDenied(creds: Creds): Promise<boolean> {
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: '/tmp',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ACCESS_KEY_ID: creds.AccessKeyId,
    AWS_SECRET_ACCESS_KEY: creds.SecretAccessKey,
    AWS_SESSION_TOKEN: creds.SessionToken,
  };
  const out = await exec('aws', ['sts', 'get-caller-identity', '--endpoint-url', stack.sts, '--region', 'us-east-1'], { env }).catch((e) => e);
  return !!out.code && String(out.stderr).includes('AccessDenied');
}

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
let bystanders: Vended[] = [];
let crashed: { leaseId: string; creds: Creds };

beforeAll(async () => {
  stack = await startTestStack({ yaml: YAML, policies: POLICIES, clock });
  const tokens = await Promise.all(Array.from({ length: 5 }, (_, i) => stack.mintToken({}, { sub: `agent-${i}`, ttlSeconds: 3600 })));
  const vended = await pool(Array.from({ length: 530 }, (_, i) => i), 25, async (i): Promise<Vended> => {
    const token = tokens[i % tokens.length];
    const { status, body } = await stack.vend({ grant: 'bulk' }, token);
    expect(status, JSON.stringify(body)).toBe(200);
    return { leaseId: body.leaseId, token, creds: body.credentials };
  });
  revoked = vended.slice(0, 500);
  bystanders = vended.slice(500);
}, 120_000);
afterAll(async () => {
  await stack?.close();
});

describe('overflow, settlement, sweep (controllable clock)', () => {
  it('500 revocations on one role: none fails, the fallback engages once, every revoked session is denied', async () => {
    const started = performance.now();
    const answers = await pool(revoked, 20, (v) =>
      fetch(`${stack.api}/v1/leases/${v.leaseId}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${v.token}` } }).then((r) => r.status),
    );
    const ms = performance.now() - started;
    console.log(`[measure] 500 self-revocations on one role, 20 in parallel: ${Math.round(ms)} ms (${(ms / 500).toFixed(1)} ms each)`);
    expect(answers.filter((s) => s !== 200)).toEqual([]);
    expect(stack.stack.metrics.counts.RevocationFallback).toBe(1);
    expect(stack.logs.filter((l) => l.includes('"revocation_fallback"'))).toHaveLength(1);
    const deniedNow = await pool(revoked, 25, (v) => denied(v.creds));
    expect(deniedNow.filter((d) => !d)).toHaveLength(0);
    expect(await cliDenied(revoked[0].creds)).toBe(true);
    expect(await cliDenied(revoked[499].creds)).toBe(true);
    expect(await denyPolicy()).toContain('aws:TokenIssueTime');
    expect((await statuses(revoked.map((v) => v.leaseId))).every((s) => s === 'revoked')).toBe(true);
    // Collateral of the fallback, by design: older sessions of the role die; a fresh vend works.
    advance(2);
    const fresh = await stack.vend({ grant: 'bulk' }, await stack.mintToken({}, { sub: 'agent-new' }));
    expect(fresh.status).toBe(200);
    expect(await denied(fresh.body.credentials)).toBe(false);
    bystanders.push({ leaseId: fresh.body.leaseId, token: '', creds: fresh.body.credentials });
  });

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

    advance(stack.runtime.config.leases.pendingTimeoutSeconds + 10);
    const { status, body } = await adminPost('/v1/admin/sweep');
    expect(status).toBe(200);
    expect(body).toMatchObject({ settled: 1, expired: 0, errors: 0, complete: true });
    expect(await denied(crashed.creds)).toBe(true);
    const settled = (await stack.runtime.leases.get(leaseId))!;
    expect(settled.status).toBe('failed');
    expect(settled.events.at(-1)).toMatchObject({ type: 'settled', by: 'tvm:sweep', reason: 'pending_timeout' });
    // The session vended after the fallback is untouched by the settlement.
    expect(await denied(bystanders.at(-1)!.creds)).toBe(false);
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
    expect((await statuses(revoked.map((v) => v.leaseId))).every((s) => s === 'revoked')).toBe(true);
    expect(await statuses([crashed.leaseId])).toEqual(['failed']);
    expect(await denyPolicy()).toBeUndefined();
    expect(stack.logs.filter((l) => l.includes('"lease_expired"'))).toHaveLength(bystanders.length);

    // Idempotent: a third run changes nothing.
    const again = await adminPost('/v1/admin/sweep');
    expect(again.body).toMatchObject({ expired: 0, settled: 0, entriesPruned: 0, rolesPruned: 0, errors: 0 });
  });
});
