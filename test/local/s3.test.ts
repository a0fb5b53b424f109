/**
 * The local S3, driven by clients nobody here wrote — the AWS CLI and boto3 — with credentials
 * vended by the running local stack: the session policy scopes them (their team's prefix works,
 * another team's is AccessDenied), a revocation stops them while `sts get-caller-identity` still
 * answers (as in AWS), expiry ends them (the stack's controllable clock), and `aws:SourceIp` is the
 * TCP peer (127.0.0.1 and 127.0.0.2 are both loopback).
 */
import { credentialEnv } from '../helpers/s3.js';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalS3 } from '../../local/s3.js';
import { startStsIamEmulator } from '../../local/sts-iam-emulator.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { needTool } from '../helpers/tools.js';

const run = promisify(execFile);
const ROLE = (n: string) => `arn:aws:iam::123456789012:role/tvm/${n}`;

const YAML = `
issuers:
  - { name: dev, issuer: "http://127.0.0.1:1/_dev/issuer", audiences: [tvm], algorithms: [ES256] }
grants:
  - name: reports-read
    roleArn: ${ROLE('reports-read')}
    sessionPolicy:
      Version: "2012-10-17"
      Statement:
        - { Effect: Allow, Action: [s3:GetObject], Resource: ["arn:aws:s3:::reports/\${claims.team}/*"] }
        - { Effect: Allow, Action: [s3:ListBucket], Resource: ["arn:aws:s3:::reports"], Condition: { StringLike: { "s3:prefix": ["\${claims.team}/*"] } } }
  - name: team-write
    roleArn: ${ROLE('team-write')}
    sessionPolicy:
      Version: "2012-10-17"
      Statement:
        - { Effect: Allow, Action: [s3:GetObject, s3:PutObject, s3:DeleteObject], Resource: ["arn:aws:s3:::artifacts/\${claims.team}/*"] }
        - { Effect: Allow, Action: [s3:ListBucket], Resource: ["arn:aws:s3:::artifacts"] }
  - name: from-two
    roleArn: ${ROLE('from-two')}
    sessionPolicy:
      Version: "2012-10-17"
      Statement:
        - { Effect: Allow, Action: [s3:GetObject], Resource: ["arn:aws:s3:::reports/*"], Condition: { IpAddress: { "aws:SourceIp": "127.0.0.2/32" } } }
policies: ./policies
local:
  devIssuer: dev
  buckets: [{ name: reports, seed: ./seed }, artifacts]
  roles:
    ${ROLE('reports-read')}: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: [s3:GetObject, s3:ListBucket], Resource: ["arn:aws:s3:::reports", "arn:aws:s3:::reports/*"] }] }
    ${ROLE('team-write')}: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:*"], Resource: ["*"] }] }
    ${ROLE('from-two')}: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: ["s3:GetObject"], Resource: ["*"] }] }
`;
const POLICIES = { 'all.cedar': '@id("vend")\npermit (principal, action == Tvm::Action::"vend", resource);\n@id("revoke")\npermit (principal, action == Tvm::Action::"revoke", resource);\n' };

type Creds = { AccessKeyId: string; SecretAccessKey: string; SessionToken: string; Expiration: string };
interface Vended {
  leaseId: string;
  token: string;
  creds: Creds;
}

let skewMs = 0;
const clock = { now: () => Date.now() + skewMs };
let stack: TestStack;
let s3: string;
let home: string;

async function vend(grant: string, team = 'analytics', sub = `agent-${team}`): Promise<Vended> {
  const token = await stack.mintToken({ team }, { sub, ttlSeconds: 3600 });
  const { status, body } = await stack.vend({ grant, durationSeconds: 900 }, token);
  expect(status, JSON.stringify(body)).toBe(200);
  return { leaseId: body.leaseId, token, creds: body.credentials };
}

function awsEnv(c: Creds): Record<string, string> {
  return credentialEnv(home, c);
}

/** The AWS CLI against the local S3 (or, for `sts`, the local STS). */
async function aws(v: Vended, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const endpoint = args[0] === 'sts' ? stack.sts : s3;
  const out = await run('aws', [...args, '--endpoint-url', endpoint], { env: awsEnv(v.creds) }).catch((e) => e);
  return { code: typeof out.code === 'number' ? out.code : 0, stdout: String(out.stdout ?? ''), stderr: String(out.stderr ?? '') };
}

const BOTO = `
import json, sys, boto3
from botocore.exceptions import ClientError
args = json.loads(sys.argv[1])
s3 = boto3.client("s3", endpoint_url=args["endpoint"], region_name="us-east-1",
    aws_access_key_id=args["AccessKeyId"], aws_secret_access_key=args["SecretAccessKey"], aws_session_token=args["SessionToken"])
out = []
for op, kw in args["calls"]:
    try:
        r = getattr(s3, op)(**kw)
        if "Body" in r: r = {"Body": r["Body"].read().decode()}
        elif op == "list_objects_v2": r = {"Keys": [o["Key"] for o in r.get("Contents", [])], "Prefixes": [p["Prefix"] for p in r.get("CommonPrefixes", [])]}
        else: r = {"ok": True}
        out.append(r)
    except ClientError as e:
        out.append({"Error": e.response["Error"]["Code"], "Status": e.response["ResponseMetadata"]["HTTPStatusCode"]})
print(json.dumps(out))
`;

/** boto3 against the local S3: one result per call, `{Error, Status}` for a refusal. */
async function boto(v: Vended, calls: [string, Record<string, unknown>][]): Promise<Record<string, any>[]> {
  const arg = JSON.stringify({ endpoint: s3, ...v.creds, calls });
  const out = await run('python3', ['-c', BOTO, arg], { env: awsEnv(v.creds) });
  return JSON.parse(out.stdout) as Record<string, any>[];
}

/** A GetObject signed with SignatureV4, sent from `localAddress` (the request's aws:SourceIp). */
async function signedGet(c: Omit<Creds, 'Expiration'>, path: string, localAddress: string): Promise<{ status: number; body: string }> {
  const url = new URL(s3);
  const signer = new SignatureV4({
    credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken },
    region: 'us-east-1',
    service: 's3',
    sha256: Sha256,
    uriEscapePath: false,
    applyChecksum: true,
  });
  const signed = await signer.sign({
    method: 'GET',
    protocol: 'http:',
    hostname: url.hostname,
    port: Number(url.port),
    path,
    headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
  });
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method: 'GET', headers: signed.headers, localAddress }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const hasAws = needTool('aws', 'the local S3 driven by the AWS CLI');
const hasPython = needTool('python3', 'the local S3 driven by boto3');

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'tvm-s3-'));
  stack = await startTestStack({ yaml: YAML, policies: POLICIES, clock, files: { 'seed/analytics/q3.csv': 'quarter,revenue\nQ3,1200\n', 'seed/finance/q3.csv': 'quarter,margin\nQ3,0.31\n' } });
  s3 = stack.stack.endpoints.s3;
});
afterAll(async () => {
  await stack?.close();
});

describe.skipIf(!hasAws)('the local S3 with the AWS CLI', () => {
  it('the team’s prefix works (cp, s3api, ls); another team’s is AccessDenied', { timeout: 120_000 }, async () => {
    const v = await vend('reports-read');
    const mine = await aws(v, 's3', 'cp', 's3://reports/analytics/q3.csv', '-');
    expect(mine.stderr).toBe('');
    expect(mine.stdout).toBe('quarter,revenue\nQ3,1200\n');
    const theirs = await aws(v, 's3api', 'get-object', '--bucket', 'reports', '--key', 'finance/q3.csv', join(home, 'stolen.csv'));
    expect(theirs.code).not.toBe(0);
    expect(theirs.stderr).toContain('(AccessDenied) when calling the GetObject operation');
    const ls = await aws(v, 's3', 'ls', 's3://reports/analytics/');
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/ 24 q3\.csv\n$/);
    const lsOther = await aws(v, 's3', 'ls', 's3://reports/finance/');
    expect(lsOther.stderr).toContain('(AccessDenied) when calling the ListObjectsV2 operation');
    // The role may list the bucket and the session may list its prefix: a missing key is NoSuchKey …
    const missing = await aws(v, 's3api', 'get-object', '--bucket', 'reports', '--key', 'analytics/none.csv', join(home, 'x'));
    expect(missing.stderr).toContain('(NoSuchKey)');
    // … but to a caller who may not list there, S3 does not say whether a key exists.
    const hidden = await aws(v, 's3api', 'get-object', '--bucket', 'reports', '--key', 'finance/none.csv', join(home, 'x'));
    expect(hidden.stderr).toContain('(AccessDenied)');
    const noBucket = await aws(v, 's3api', 'get-object', '--bucket', 'nobucket', '--key', 'a', join(home, 'x'));
    expect(noBucket.stderr).toContain('(NoSuchBucket)');
  });

  it('put, head, list, get and delete within the prefix; a put outside it is AccessDenied', { timeout: 120_000 }, async () => {
    const v = await vend('team-write', 'ml');
    const file = join(home, 'model.bin');
    writeFileSync(file, Buffer.from('weights\u0000\u0001 and more'));
    const up = await aws(v, 's3', 'cp', file, 's3://artifacts/ml/run 1/model.bin');
    expect(up.code, up.stderr).toBe(0);
    const head = JSON.parse((await aws(v, 's3api', 'head-object', '--bucket', 'artifacts', '--key', 'ml/run 1/model.bin')).stdout);
    expect(head.ContentLength).toBe(readFileSync(file).length);
    const list = JSON.parse((await aws(v, 's3api', 'list-objects-v2', '--bucket', 'artifacts', '--prefix', 'ml/', '--delimiter', '/')).stdout);
    expect(list.CommonPrefixes).toEqual([{ Prefix: 'ml/run 1/' }]);
    const down = join(home, 'model.out');
    expect((await aws(v, 's3', 'cp', 's3://artifacts/ml/run 1/model.bin', down)).code).toBe(0);
    expect(readFileSync(down)).toEqual(readFileSync(file));
    const outside = await aws(v, 's3', 'cp', file, 's3://artifacts/web/model.bin');
    expect(outside.stderr).toContain('(AccessDenied) when calling the PutObject operation');
    expect((await aws(v, 's3', 'rm', 's3://artifacts/ml/run 1/model.bin')).code).toBe(0);
    const gone = await aws(v, 's3api', 'head-object', '--bucket', 'artifacts', '--key', 'ml/run 1/model.bin');
    expect(gone.stderr).toContain('(404)');
  });

  it('a revocation stops the credentials at S3 while get-caller-identity still answers (as in AWS)', { timeout: 120_000 }, async () => {
    const v = await vend('reports-read', 'analytics', 'agent-revoked');
    const other = await vend('reports-read', 'analytics', 'agent-bystander');
    expect((await aws(v, 's3', 'cp', 's3://reports/analytics/q3.csv', '-')).code).toBe(0);
    const res = await fetch(`${stack.api}/v1/leases/${v.leaseId}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${v.token}` } });
    expect(res.status).toBe(200);
    const denied = await aws(v, 's3api', 'get-object', '--bucket', 'reports', '--key', 'analytics/q3.csv', join(home, 'y'));
    expect(denied.stderr).toMatch(/\(AccessDenied\).*explicit deny/);
    const who = await aws(v, 'sts', 'get-caller-identity');
    expect(who.code, who.stderr).toBe(0);
    expect(JSON.parse(who.stdout).Arn).toContain(`tvm-${v.leaseId}`);
    expect((await aws(other, 's3', 'cp', 's3://reports/analytics/q3.csv', '-')).code).toBe(0);
  });
});

describe.skipIf(!hasPython)('the local S3 with boto3', () => {
  it('scoped by the session policy, stopped by a revocation', { timeout: 120_000 }, async () => {
    const v = await vend('reports-read', 'finance', 'agent-boto');
    const before = await boto(v, [
      ['get_object', { Bucket: 'reports', Key: 'finance/q3.csv' }],
      ['get_object', { Bucket: 'reports', Key: 'analytics/q3.csv' }],
      ['list_objects_v2', { Bucket: 'reports', Prefix: 'finance/' }],
      ['list_objects_v2', { Bucket: 'reports' }],
      ['head_object', { Bucket: 'reports', Key: 'analytics/q3.csv' }],
    ]);
    expect(before).toEqual([
      { Body: 'quarter,margin\nQ3,0.31\n' },
      { Error: 'AccessDenied', Status: 403 },
      { Keys: ['finance/q3.csv'], Prefixes: [] },
      { Error: 'AccessDenied', Status: 403 },
      { Error: '403', Status: 403 },
    ]);
    const res = await fetch(`${stack.api}/v1/admin/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ leaseId: v.leaseId, reason: 'boto3 test' }),
    });
    expect(await res.json()).toMatchObject({ revoked: 1 });
    expect(await boto(v, [['get_object', { Bucket: 'reports', Key: 'finance/q3.csv' }]])).toEqual([{ Error: 'AccessDenied', Status: 403 }]);
  });

  it('put and get round-trip bytes exactly; a wrong secret is SignatureDoesNotMatch', { timeout: 120_000 }, async () => {
    const v = await vend('team-write', 'ops', 'agent-boto-w');
    const out = await boto(v, [
      ['put_object', { Bucket: 'artifacts', Key: 'ops/ünï/€.txt', Body: 'grüße' }],
      ['get_object', { Bucket: 'artifacts', Key: 'ops/ünï/€.txt' }],
      ['list_objects_v2', { Bucket: 'artifacts', Prefix: 'ops/' }],
    ]);
    expect(out).toEqual([{ ok: true }, { Body: 'grüße' }, { Keys: ['ops/ünï/€.txt'], Prefixes: [] }]);
    const bad = { ...v, creds: { ...v.creds, SecretAccessKey: v.creds.SecretAccessKey.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) } };
    expect(await boto(bad, [['get_object', { Bucket: 'artifacts', Key: 'ops/ünï/€.txt' }]])).toEqual([{ Error: 'SignatureDoesNotMatch', Status: 403 }]);
    const unknown = { ...v, creds: { ...v.creds, AccessKeyId: 'ASIAUNKNOWNUNKNOWN00' } };
    expect(await boto(unknown, [['get_object', { Bucket: 'artifacts', Key: 'x' }]])).toEqual([{ Error: 'InvalidAccessKeyId', Status: 403 }]);
    const badToken = { ...v, creds: { ...v.creds, SessionToken: `${v.creds.SessionToken}x` } };
    expect(await boto(badToken, [['get_object', { Bucket: 'artifacts', Key: 'x' }]])).toEqual([{ Error: 'InvalidToken', Status: 400 }]);
  });
});

describe('aws:SourceIp is the TCP peer', () => {
  it('a session policy bound to 127.0.0.2 allows requests from there and refuses them from 127.0.0.1', { timeout: 120_000 }, async () => {
    const v = await vend('from-two');
    const fromTwo = await signedGet(v.creds, '/reports/analytics/q3.csv', '127.0.0.2');
    expect(fromTwo).toEqual({ status: 200, body: 'quarter,revenue\nQ3,1200\n' });
    const fromOne = await signedGet(v.creds, '/reports/analytics/q3.csv', '127.0.0.1');
    expect(fromOne.status).toBe(403);
    expect(fromOne.body).toContain('<Code>AccessDenied</Code>');
  });

  it('an unsigned request is AccessDenied in S3’s XML', { timeout: 120_000 }, async () => {
    const res = await fetch(`${s3}/reports/analytics/q3.csv`);
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<Error><Code>AccessDenied<\/Code><Message>Access Denied<\/Message>/);
  });
});

// Last: it moves the clock an hour forward for everything after it.
describe.skipIf(!hasAws)('expiry (the stack’s controllable clock)', () => {
  it('credentials past their expiry are ExpiredToken at S3 and at STS', { timeout: 120_000 }, async () => {
    const v = await vend('reports-read');
    expect((await aws(v, 's3', 'cp', 's3://reports/analytics/q3.csv', '-')).code).toBe(0);
    // The session expires at its Expiration, on the stack's clock (a minute before: still good).
    const expiresAt = Date.parse(v.creds.Expiration);
    skewMs = expiresAt - Date.now() - 60_000;
    expect((await aws(v, 's3', 'cp', 's3://reports/analytics/q3.csv', '-')).code).toBe(0);
    skewMs = expiresAt - Date.now() + 1_000;
    const expired = await aws(v, 's3api', 'get-object', '--bucket', 'reports', '--key', 'analytics/q3.csv', join(home, 'z'));
    expect(expired.stderr).toContain('(ExpiredToken)');
    const who = await aws(v, 'sts', 'get-caller-identity');
    expect(who.stderr).toContain('ExpiredToken');
  });
});

describe('startLocalS3 on a data folder', () => {
  it('keeps objects across a restart', { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tvm-s3-data-'));
    const TVM = { accessKeyId: 'AKIATVMLOCALTEST0002', secretAccessKey: 'tvmLocalSecretKey0000000000000000000000B' };
    const em = await startStsIamEmulator({ roles: { [ROLE('w')]: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] } }, callerCredentials: TVM });
    try {
      const { AssumeRoleCommand, STSClient } = await import('@aws-sdk/client-sts');
      const sts = new STSClient({ endpoint: em.url, region: 'us-east-1', credentials: TVM });
      const c = (await sts.send(new AssumeRoleCommand({ RoleArn: ROLE('w'), RoleSessionName: 'persist' }))).Credentials!;
      sts.destroy();
      const creds = { AccessKeyId: c.AccessKeyId!, SecretAccessKey: c.SecretAccessKey!, SessionToken: c.SessionToken! };
      const put = async (url: string, path: string, body: string) => {
        const u = new URL(url);
        const signer = new SignatureV4({ credentials: { accessKeyId: creds.AccessKeyId, secretAccessKey: creds.SecretAccessKey, sessionToken: creds.SessionToken }, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false });
        const signed = await signer.sign({ method: 'PUT', protocol: 'http:', hostname: u.hostname, port: Number(u.port), path, headers: { host: u.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }, body });
        return fetch(`${url}${path}`, { method: 'PUT', headers: signed.headers as Record<string, string>, body });
      };
      const first = await startLocalS3({ buckets: [{ name: 'kept' }], authority: em.authority, dataDir: dir });
      expect((await put(first.url, '/kept/a/b.txt', 'hello')).status).toBe(200);
      await first.close();
      const second = await startLocalS3({ buckets: [{ name: 'kept' }], authority: em.authority, dataDir: dir });
      try {
        s3 = second.url;
        expect(await signedGet(creds, '/kept/a/b.txt', '127.0.0.1')).toEqual({ status: 200, body: 'hello' });
      } finally {
        s3 = stack.stack.endpoints.s3;
        await second.close();
      }
    } finally {
      await em.close();
    }
  });
});
