/**
 * STS AssumeRole as the credential issuer: against the local STS/IAM emulator over the real wire
 * protocol for what a real endpoint answers; aws-sdk-client-mock on STSClient only for faults an
 * endpoint cannot be made to produce on demand (throttling, an answer without credentials).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mapStsError, StsCredentialIssuer } from '../../functions/adapters/sts-credential-issuer.js';
import { STATUS_BY_CODE, TvmError } from '../../functions/core/errors.js';
import type { AssumeRoleInput } from '../../functions/core/ports.js';
import { startStsIamEmulator, type StsIamEmulator } from '../../local/sts-iam-emulator.js';

const ACCOUNT = '123456789012';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/tvm/reports-read`;
const TVM = { accessKeyId: 'AKIATVMSTSISSUERTEST', secretAccessKey: 'tvmStsIssuerSecret000000000000000000000A' };
const LEASE = 'Labcdefghijklmnopqrstuvwxyz';

const input = (over: Partial<AssumeRoleInput> = {}): AssumeRoleInput => ({
  roleArn: ROLE,
  sessionName: `tvm-${LEASE}`,
  sourceIdentity: 'dev.agent-1',
  durationSeconds: 900,
  policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::reports/blue/*'] }] }),
  tags: { team: 'blue', 'tvm:lease': LEASE, 'tvm:grant': 'reports-read', 'tvm:issuer': 'dev' },
  ...over,
});

async function refusal(p: Promise<unknown>): Promise<{ code: string; reason: string; status: number }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TvmError);
    const t = e as TvmError;
    return { code: t.code, reason: t.reason, status: STATUS_BY_CODE[t.code] };
  }
  throw new Error('expected a refusal');
}

describe('against the STS emulator', () => {
  let em: StsIamEmulator;
  let sts: STSClient;

  beforeAll(async () => {
    em = await startStsIamEmulator({
      roles: { [ROLE]: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject', 's3:ListBucket'], Resource: '*' }] } },
      callerCredentials: TVM,
    });
    sts = new STSClient({ endpoint: em.url, region: 'us-east-1', credentials: TVM, maxAttempts: 1 });
  });
  afterAll(async () => {
    sts?.destroy();
    await em?.close();
  });

  it('issues working credentials for the session tvm asked for', async () => {
    const c = await new StsCredentialIssuer(sts).assumeRole(input());
    expect(c.accessKeyId).toMatch(/^ASIA/);
    expect(c.secretAccessKey.length).toBeGreaterThan(20);
    expect(c.sessionToken.length).toBeGreaterThan(20);
    expect(c.expiration).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    expect(c.assumedRoleArn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/reports-read/tvm-${LEASE}`);
    expect(c.assumedRoleId).toMatch(new RegExp(`^AROA[A-Z2-7]+:tvm-${LEASE}$`));

    const { accessKeyId, secretAccessKey, sessionToken } = c;
    const me = new STSClient({ endpoint: em.url, region: 'us-east-1', credentials: { accessKeyId, secretAccessKey, sessionToken }, maxAttempts: 1 });
    const id = await me.send(new GetCallerIdentityCommand({}));
    me.destroy();
    expect(id.Arn).toBe(c.assumedRoleArn);
  });

  it('the session has the requested duration', async () => {
    const before = Date.now();
    const c = await new StsCredentialIssuer(sts).assumeRole(input({ durationSeconds: 1800, sessionName: 'tvm-Lduration' }));
    const lifetimeS = (Date.parse(c.expiration) - before) / 1000;
    // Whole seconds, issued within this test: bounded on both sides without timing the call.
    expect(lifetimeS).toBeGreaterThan(1800 - 60);
    expect(lifetimeS).toBeLessThanOrEqual(1800 + 1);
  });

  it('the session policy and tags are honoured by the emulator', async () => {
    const c = await new StsCredentialIssuer(sts).assumeRole(input({ sessionName: 'tvm-Lpolicy' }));
    const evaluate = async (resource: string) => {
      const res = await fetch(`${em.url}/_tvm/evaluate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...c, action: 's3:GetObject', resource }),
      });
      return ((await res.json()) as { allowed: boolean }).allowed;
    };
    expect(await evaluate('arn:aws:s3:::reports/blue/q1.csv')).toBe(true);
    expect(await evaluate('arn:aws:s3:::reports/red/q1.csv')).toBe(false);
  });

  it.each([
    [
      'a packed policy over the limit',
      () => input({ policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${'x'.repeat(2100)}`] }] }) }),
      { code: 'invalid_request', reason: 'packed_policy_too_large', status: 400 },
    ],
    ['a role the emulator does not know', () => input({ roleArn: `arn:aws:iam::${ACCOUNT}:role/tvm/unknown` }), { code: 'access_denied', reason: 'sts_access_denied', status: 403 }],
  ])('%s', async (_name, make, want) => {
    expect(await refusal(new StsCredentialIssuer(sts).assumeRole(make()))).toEqual(want);
  });

  it('credentials STS does not know → upstream_unavailable (a tvm fault, not the caller)', async () => {
    const wrong = new STSClient({ endpoint: em.url, region: 'us-east-1', credentials: { ...TVM, secretAccessKey: 'wrong'.padEnd(40, '0') }, maxAttempts: 1 });
    expect(await refusal(new StsCredentialIssuer(wrong).assumeRole(input()))).toEqual({ code: 'upstream_unavailable', reason: 'sts_failed', status: 503 });
    wrong.destroy();
  });
});

describe('against a loopback listener', () => {
  let server: Server;
  let port: number;
  const sockets = new Set<Socket>();
  let mode: 'hang' | 'drop' = 'hang';

  beforeAll(async () => {
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      if (mode === 'drop') socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const client = () =>
    new STSClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      credentials: TVM,
      maxAttempts: 1,
      // Without throwOnRequestTimeout this SDK version only warns when requestTimeout passes.
      requestHandler: { requestTimeout: 250, throwOnRequestTimeout: true },
    });

  it('an STS that never answers → upstream_timeout (the SDK’s real timeout error)', async () => {
    mode = 'hang';
    const c = client();
    expect(await refusal(new StsCredentialIssuer(c).assumeRole(input()))).toEqual({ code: 'upstream_timeout', reason: 'sts_timeout', status: 504 });
    c.destroy();
  });

  it('an STS that drops the connection → upstream_timeout (the SDK names ECONNRESET a TimeoutError)', async () => {
    mode = 'drop';
    const c = client();
    expect(await refusal(new StsCredentialIssuer(c).assumeRole(input()))).toEqual({ code: 'upstream_timeout', reason: 'sts_timeout', status: 504 });
    c.destroy();
  });
});

describe('faults through aws-sdk-client-mock', () => {
  const sts = new STSClient({ region: 'us-east-1', credentials: TVM });
  const mock = mockClient(sts);
  afterAll(() => mock.restore());

  const named = (name: string) => Object.assign(new Error('fault'), { name });

  it.each([
    ['Throttling', 'throttled', 'sts_throttled', 429],
    ['ThrottlingException', 'throttled', 'sts_throttled', 429],
    ['TooManyRequestsException', 'throttled', 'sts_throttled', 429],
    ['RequestLimitExceeded', 'throttled', 'sts_throttled', 429],
    ['TimeoutError', 'upstream_timeout', 'sts_timeout', 504],
    ['RequestTimeout', 'upstream_timeout', 'sts_timeout', 504],
    ['AbortError', 'upstream_timeout', 'sts_timeout', 504],
    ['AccessDenied', 'access_denied', 'sts_access_denied', 403],
    ['AccessDeniedException', 'access_denied', 'sts_access_denied', 403],
    ['PackedPolicyTooLarge', 'invalid_request', 'packed_policy_too_large', 400],
    ['PackedPolicyTooLargeException', 'invalid_request', 'packed_policy_too_large', 400],
    ['ExpiredTokenException', 'upstream_unavailable', 'sts_failed', 503],
    ['InternalFailure', 'upstream_unavailable', 'sts_failed', 503],
  ])('STS error %s → %s %s', async (name, code, reason, status) => {
    mock.reset();
    mock.on(AssumeRoleCommand).rejects(named(name));
    expect(await refusal(new StsCredentialIssuer(sts).assumeRole(input()))).toEqual({ code, reason, status });
  });

  const creds = { AccessKeyId: 'ASIAX', SecretAccessKey: 's', SessionToken: 't', Expiration: new Date(Date.UTC(2027, 0, 15, 8, 15)) };
  it.each([
    ['no Credentials', {}],
    ['Credentials without a session token', { Credentials: { ...creds, SessionToken: undefined } }],
    ['Credentials without a secret', { Credentials: { ...creds, SecretAccessKey: '' } }],
    ['Credentials without an expiration', { Credentials: { ...creds, Expiration: undefined } }],
  ])('an answer with %s → upstream_unavailable', async (_name, answer) => {
    mock.reset();
    mock.on(AssumeRoleCommand).resolves(answer as never);
    const refused = new StsCredentialIssuer(sts).assumeRole(input());
    expect(await refusal(refused)).toEqual({ code: 'upstream_unavailable', reason: 'sts_no_credentials', status: 503 });
    // the log names the role whose answer was empty
    expect(((await refused.catch((e: unknown) => e)) as TvmError).detail).toEqual({ roleArn: ROLE });
  });

  it('sends the role, session name, source identity, duration, policy and tags as given', async () => {
    mock.reset();
    mock.on(AssumeRoleCommand).resolves({ Credentials: creds });
    const c = await new StsCredentialIssuer(sts).assumeRole(input());
    expect(c).toEqual({ accessKeyId: 'ASIAX', secretAccessKey: 's', sessionToken: 't', expiration: '2027-01-15T08:15:00.000Z', assumedRoleArn: undefined, assumedRoleId: undefined });
    const sent = mock.commandCalls(AssumeRoleCommand)[0].args[0].input;
    expect(sent).toEqual({
      RoleArn: ROLE,
      RoleSessionName: `tvm-${LEASE}`,
      SourceIdentity: 'dev.agent-1',
      DurationSeconds: 900,
      Policy: input().policy,
      Tags: Object.entries(input().tags).map(([Key, Value]) => ({ Key, Value })),
    });
  });

  it('mapStsError keeps the role and STS error name for the log', () => {
    const e = mapStsError(named('Throttling'), ROLE) as TvmError;
    expect(e.detail).toEqual({ roleArn: ROLE, stsError: 'Throttling' });
    expect(mapStsError(undefined, ROLE)).toMatchObject({ code: 'upstream_unavailable', reason: 'sts_failed' });
    // an error STS did not name: no invented name; its message is kept for the log
    expect((mapStsError(new Error('socket hang up'), ROLE) as TvmError).detail).toEqual({ roleArn: ROLE, stsError: 'Error', message: 'socket hang up' });
    expect((mapStsError({ message: 'no name' }, ROLE) as TvmError).detail).toEqual({ roleArn: ROLE, stsError: '', message: 'no name' });
  });
});
