/**
 * The IAM role revoker against the real protocols of the local stack: dynalite for the deny
 * records, the STS/IAM emulator for the role policy and its effect on sessions. Faults IAM cannot
 * be made to produce on demand are injected with aws-sdk-client-mock.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  GetRolePolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
  type PutRolePolicyCommandInput,
} from '@aws-sdk/client-iam';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IamRoleRevoker } from '../../functions/adapters/iam-role-revoker.js';
import { INLINE_POLICY_BUDGET, issuedBeforeCutoff, policyChars, PRUNE_MARGIN_SECONDS } from '../../functions/core/deny-policy.js';
import type { DenyEntry } from '../../functions/core/ports.js';
import { ensureTable, startDynalite, type EmbeddedDynamo } from '../../local/dynamo.js';
import { startStsIamEmulator, type StsIamEmulator } from '../../local/sts-iam-emulator.js';
import { allowed } from '../helpers/evaluate.js';

const ACCOUNT = '111122223333';
const TVM = { accessKeyId: 'AKIATVMREVOKERTEST01', secretAccessKey: 'tvmRevokerSecret000000000000000000000000' };
const POLICY = 'tvm-revocations';
const TABLE = 'tvm-revoker-test';
const roleArn = (n: string) => `arn:aws:iam::${ACCOUNT}:role/tvm/${n}`;
const ROLES = ['one', 'fifty', 'overflow', 'prune', 'crowded', 'faults', 'source', 'shared', 'after'];
const ALLOW = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

let em: StsIamEmulator;
let dynamo: EmbeddedDynamo;
let ddb: DynamoDBDocumentClient;
/** Time travel: every client signs with the same skew the emulator's clock has. */
let skewMs = 0;
const clock = { now: () => Date.now() + skewMs };
const iamc = () => new IAMClient({ endpoint: em.url, region: 'us-east-1', credentials: TVM, maxAttempts: 1, systemClockOffset: skewMs });
const stsc = (credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) =>
  new STSClient({ endpoint: em.url, region: 'us-east-1', credentials, maxAttempts: 1, systemClockOffset: skewMs });

function revoker(client: IAMClient = iamc()): IamRoleRevoker {
  return new IamRoleRevoker(client, ddb, TABLE, { policyName: POLICY, clock });
}

type Creds = { accessKeyId: string; secretAccessKey: string; sessionToken: string };
let leaseSeq = 0;
async function vend(role: string, sourceIdentity = 'dev.alice'): Promise<{ sessionName: string; creds: Creds; expiresAt: number }> {
  const sessionName = `tvm-L${String(leaseSeq++).padStart(26, 'a').replace(/\d/g, (d) => 'wxyz234567'[Number(d)])}`;
  const out = await stsc(TVM).send(
    new AssumeRoleCommand({ RoleArn: roleArn(role), RoleSessionName: sessionName, SourceIdentity: sourceIdentity, DurationSeconds: 900 }),
  );
  const c = out.Credentials!;
  return {
    sessionName,
    creds: { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! },
    expiresAt: Math.floor(c.Expiration!.getTime() / 1000),
  };
}

const works = (creds: Creds) => allowed(em.url, creds, 's3:GetObject', 'arn:aws:s3:::reports/x');

async function denyDoc(role: string): Promise<{ Statement: { Sid: string }[] } | undefined> {
  try {
    const out = await iamc().send(new GetRolePolicyCommand({ RoleName: role, PolicyName: POLICY }));
    return JSON.parse(decodeURIComponent(out.PolicyDocument!));
  } catch (e) {
    if ((e as Error).name === 'NoSuchEntityException' || (e as Error).name === 'NoSuchEntity') return undefined;
    throw e;
  }
}

const entry = (v: { sessionName: string; expiresAt: number }, sourceIdentity?: string): DenyEntry => ({
  kind: 'session',
  sessionName: v.sessionName,
  expiresAt: v.expiresAt,
  issued: true,
  ...(sourceIdentity ? { sourceIdentity } : {}),
});
const chunks = <T>(items: T[], n: number): T[][] => Array.from({ length: Math.ceil(items.length / n) }, (_, i) => items.slice(i * n, i * n + n));
const synthetic = (prefix: string, i: number, expiresAt: number) => ({
  sessionName: `tvm-L${String(i).padStart(26, prefix).replace(/\d/g, (d) => 'wxyz234567'[Number(d)])}`,
  expiresAt,
});

beforeAll(async () => {
  em = await startStsIamEmulator({ roles: Object.fromEntries(ROLES.map((r) => [roleArn(r), ALLOW])), callerCredentials: TVM, now: clock.now });
  dynamo = await startDynalite({});
  const client = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  await ensureTable(client, TABLE);
  ddb = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
});
afterAll(async () => {
  await em?.close();
  await dynamo?.close();
});

describe('IamRoleRevoker', () => {
  it('denies exactly the revoked session; the other session of the role keeps working', async () => {
    const [a, b] = [await vend('one'), await vend('one')];
    const out = await revoker().deny(roleArn('one'), [entry(a)]);
    expect(out.fallback).toBe(false);
    expect(await works(a.creds)).toBe(false);
    expect(await works(b.creds)).toBe(true);
    // Idempotent: the same entry again changes nothing.
    await revoker().deny(roleArn('one'), [entry(a)]);
    expect((await denyDoc('one'))!.Statement).toHaveLength(1);
  });

  it('denies every session of a principal issued before the revocation, not later ones', async () => {
    const old = await vend('source', 'dev.carol');
    const other = await vend('source', 'dev.dave');
    const now = Math.floor(clock.now() / 1000);
    await revoker().deny(roleArn('source'), [{ kind: 'source', sourceIdentity: 'dev.carol', issuedBefore: issuedBeforeCutoff(now), expiresAt: old.expiresAt }]);
    expect(await works(old.creds)).toBe(false);
    expect(await works(other.creds)).toBe(true);
    skewMs += 2000;
    const fresh = await vend('source', 'dev.carol');
    expect(await works(fresh.creds)).toBe(true);
  });

  it('loses no entry when 50 revocations on one role run in parallel', async () => {
    const sessions = await Promise.all(Array.from({ length: 50 }, () => vend('fifty')));
    await Promise.all(sessions.map((s) => revoker().deny(roleArn('fifty'), [entry(s)])));
    const doc = await denyDoc('fifty');
    expect(JSON.stringify(doc).match(/\*:tvm-/g)).toHaveLength(50);
    const results = await Promise.all(sessions.map((s) => works(s.creds)));
    expect(results.every((w) => !w)).toBe(true);
    expect(Object.keys((await revoker().stateOf(roleArn('fifty'))).sessions)).toHaveLength(50);
  });

  it('falls back to TokenIssueTime when the entries would not fit, and the sweep prunes it after expiry', async () => {
    // Real sessions at both ends, synthetic session names in between (the same entry size).
    const first = await Promise.all(Array.from({ length: 5 }, () => vend('overflow')));
    const middle = Array.from({ length: 310 }, (_, i) => synthetic('q', i, first[0].expiresAt));
    const last = await Promise.all(Array.from({ length: 5 }, () => vend('overflow')));
    // One call per real session, the synthetic ones ten at a time (the machine is shared).
    const batches = [...first.map((s) => [s]), ...chunks(middle, 10), ...last.map((s) => [s])];
    let fallbacks = 0;
    const rv = revoker();
    for (const b of batches) if ((await rv.deny(roleArn('overflow'), b.map((s) => entry(s)))).fallback) fallbacks++;
    expect(fallbacks).toBe(1);
    const texts = JSON.stringify(await denyDoc('overflow'));
    expect(texts).toContain('TvmRevokedBefore');
    expect(policyChars(texts)).toBeLessThanOrEqual(INLINE_POLICY_BUDGET);
    for (const s of [...first, ...last]) expect(await works(s.creds)).toBe(false);

    const { roleArns } = await revoker().listPrunable(Math.floor(clock.now() / 1000) + 900 + PRUNE_MARGIN_SECONDS);
    expect(roleArns).toContain(roleArn('overflow'));
    const saved = skewMs;
    skewMs += (900 + PRUNE_MARGIN_SECONDS + 1) * 1000;
    try {
      const pruned = await revoker().prune(roleArn('overflow'), Math.floor(clock.now() / 1000));
      expect(pruned).toMatchObject({ fallbackDropped: true, empty: true });
      expect(await denyDoc('overflow')).toBeUndefined();
      expect((await revoker().listPrunable(Math.floor(clock.now() / 1000))).roleArns).not.toContain(roleArn('overflow'));
      // A rerun changes nothing.
      expect(await revoker().prune(roleArn('overflow'), Math.floor(clock.now() / 1000))).toEqual({ entriesRemoved: 0, fallbackDropped: false, empty: true });
    } finally {
      skewMs = saved;
    }
  });

  it('prunes expired entries and keeps the live ones', async () => {
    const early = await vend('prune');
    skewMs += 300_000;
    const late = await vend('prune');
    await revoker().deny(roleArn('prune'), [entry(early), entry(late)]);
    skewMs += (600 + PRUNE_MARGIN_SECONDS) * 1000;
    const out = await revoker().prune(roleArn('prune'), Math.floor(clock.now() / 1000));
    expect(out).toEqual({ entriesRemoved: 1, fallbackDropped: false, empty: false });
    expect(JSON.stringify(await denyDoc('prune'))).toContain(late.sessionName);
    expect(JSON.stringify(await denyDoc('prune'))).not.toContain(early.sessionName);
    expect(await works(late.creds)).toBe(false);
  });

  it("counts the role's other inline policies against the budget", async () => {
    const filler = { Version: '2012-10-17', Statement: [{ Sid: 'F', Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${'x'.repeat(9500)}` }] };
    await iamc().send(new PutRolePolicyCommand({ RoleName: 'crowded', PolicyName: 'other', PolicyDocument: JSON.stringify(filler) }));
    const sessions = await Promise.all(Array.from({ length: 30 }, () => vend('crowded')));
    const outs = [];
    for (const s of sessions) outs.push(await revoker().deny(roleArn('crowded'), [entry(s)]));
    expect(outs.filter((o) => o.fallback).length).toBeGreaterThanOrEqual(1);
    for (const s of sessions) expect(await works(s.creds)).toBe(false);
  });

  it("a workload's own revocations that overflow deny only its own sessions: another principal's session on the role keeps working", async () => {
    const victim = await vend('shared', 'dev.victim');
    const attackerOld = await vend('shared', 'dev.mallory');
    const scope = { kind: 'principal' as const, sourceIdentity: 'dev.mallory' };
    const rv = revoker();
    const outs = [];
    const startedAt = Math.floor(clock.now() / 1000);
    // The attacker's revoked sessions (synthetic names, the same entry size), ten a call, until the room overflows.
    const names = Array.from({ length: 320 }, (_, i) => synthetic('m', i, victim.expiresAt));
    for (const b of chunks(names, 10)) outs.push(await rv.deny(roleArn('shared'), b.map((n) => entry(n, 'dev.mallory')), scope));
    const fallbacks = outs.filter((o) => o.fallback);
    expect(fallbacks).toHaveLength(1);
    expect(fallbacks[0].fallbackKind).toBe('principal');
    expect(fallbacks[0].fallbackIssuedBefore).toBeGreaterThanOrEqual(issuedBeforeCutoff(startedAt));
    const doc = JSON.stringify(await denyDoc('shared'));
    expect(doc).not.toContain('TvmRevokedBefore');
    expect(await works(victim.creds)).toBe(true);
    expect(await works(attackerOld.creds)).toBe(false);
    // A second later the attacker can vend again; its new session works until revoked by name.
    skewMs += 2000;
    const fresh = await vend('shared', 'dev.mallory');
    expect(await works(fresh.creds)).toBe(true);
    await rv.deny(roleArn('shared'), [entry(fresh, 'dev.mallory')], scope);
    expect(await works(fresh.creds)).toBe(false);
    expect(await works(victim.creds)).toBe(true);
  });

  it.each([
    ['role', undefined],
    ['principal', { kind: 'principal' as const, sourceIdentity: 'dev.alice' }],
  ])('after a %s fallback, sessions vended later and revoked are denied — exactly those', async (kind, scope) => {
    const rv = revoker();
    const expiresAt = Math.floor(clock.now() / 1000) + 900;
    let engaged = false;
    const names = Array.from({ length: 320 }, (_, i) => synthetic(kind[0], i, expiresAt));
    for (const b of chunks(names, 10)) if (!engaged) engaged = (await rv.deny(roleArn('after'), b.map((n) => entry(n, 'dev.alice')), scope)).fallback;
    expect(engaged).toBe(true);
    skewMs += 2000;
    const later = await Promise.all(Array.from({ length: 6 }, () => vend('after', 'dev.alice')));
    expect(await Promise.all(later.map((s) => works(s.creds)))).toEqual(later.map(() => true));
    const revoked = later.filter((_, i) => i % 2 === 0);
    for (const s of revoked) await rv.deny(roleArn('after'), [entry(s, 'dev.alice')], scope);
    expect(await Promise.all(later.map((s) => works(s.creds)))).toEqual(later.map((_, i) => i % 2 !== 0));
  });

  describe('faults (aws-sdk-client-mock)', () => {
    function faulty() {
      const client = iamc();
      const mock = mockClient(client);
      mock.on(ListRolePoliciesCommand).callsFake((input) => iamc().send(new ListRolePoliciesCommand(input)));
      return { client, mock };
    }

    it('re-measures and falls back when IAM answers LimitExceeded (another policy grew meanwhile)', async () => {
      const { client, mock } = faulty();
      let calls = 0;
      mock.on(PutRolePolicyCommand).callsFake((input: PutRolePolicyCommandInput) => {
        if (calls++ === 0) throw Object.assign(new Error('Maximum policy size exceeded'), { name: 'LimitExceededException' });
        return iamc().send(new PutRolePolicyCommand(input));
      });
      const s = await vend('faults');
      const out = await revoker(client).deny(roleArn('faults'), [entry(s)]);
      expect(calls).toBe(2);
      expect(out).toMatchObject({ fallback: false });
      expect(await works(s.creds)).toBe(false);
    });

    it('fails with a mapped error on throttling, and a retry applies what was recorded', async () => {
      const { client, mock } = faulty();
      mock.on(PutRolePolicyCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
      const s = await vend('faults');
      await expect(revoker(client).deny(roleArn('faults'), [entry(s)])).rejects.toMatchObject({ code: 'throttled' });
      expect(await works(s.creds)).toBe(true);
      // The entry is recorded; the next writer on the role (here: a retry) renders it.
      await revoker().deny(roleArn('faults'), [entry(s)]);
      expect(await works(s.creds)).toBe(false);
    });
  });
});
