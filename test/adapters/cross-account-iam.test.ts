/**
 * The revoker role's credentials (functions/adapters/cross-account-iam.ts) through the real STS
 * client, against a loopback endpoint answering AssumeRole's Query-protocol XML exactly as the
 * test sets it: what is asked, reuse until five minutes before expiry, one AssumeRole for callers
 * at once, and every refusal fail-closed with its reason. (The happy path against moto and the
 * emulator is in moto-iam-role-revoker.test.ts and the cross-account e2e.)
 */
import { IAMClient } from '@aws-sdk/client-iam';
import { STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assumedRoleCredentials, crossAccountIam } from '../../functions/adapters/cross-account-iam.js';
import { refusal, startAnsweringServer, type AnsweringServer } from '../helpers/answering-server.js';

const ROLE = 'arn:aws:iam::210987654321:role/tvm/tvm-revoker';
const T0 = Date.UTC(2027, 0, 15, 8, 0, 0);

let server: AnsweringServer;
let sts: STSClient;
let now = T0;
const clock = { now: () => now };

/** AssumeRole's answer with these credential fields (an absent one is left out of the XML). */
function assumed(fields: { AccessKeyId?: string; SecretAccessKey?: string; SessionToken?: string; Expiration?: string }) {
  const xml = Object.entries(fields)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join('');
  return () => ({
    status: 200,
    headers: { 'content-type': 'text/xml' },
    body: `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>${xml}</Credentials><AssumedRoleUser><Arn>arn:aws:sts::210987654321:assumed-role/tvm-revoker/tvm-revoker</Arn><AssumedRoleId>AROA:tvm-revoker</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>`,
  });
}
const FULL = { AccessKeyId: 'ASIAREVOKER', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: new Date(T0 + 3600_000).toISOString() };

beforeAll(async () => {
  server = await startAnsweringServer();
  sts = new STSClient({ region: 'us-east-1', endpoint: server.url, credentials: { accessKeyId: 'AKIDTVM', secretAccessKey: 'x' }, maxAttempts: 1 });
});
afterAll(async () => {
  sts.destroy();
  await server.close();
});
beforeEach(() => {
  server.seen.length = 0;
  now = T0;
  server.answer = assumed(FULL);
});

describe('assumedRoleCredentials', () => {
  it('assumes the role once as tvm-revoker for an hour, and answers its credentials', async () => {
    const creds = await assumedRoleCredentials(sts, ROLE, clock)();
    expect(creds).toEqual({ accessKeyId: 'ASIAREVOKER', secretAccessKey: 'secret', sessionToken: 'token', expiration: new Date(T0 + 3600_000) });
    const asked = new URLSearchParams(server.seen[0].body);
    expect([asked.get('Action'), asked.get('RoleArn'), asked.get('RoleSessionName'), asked.get('DurationSeconds')]).toEqual(['AssumeRole', ROLE, 'tvm-revoker', '3600']);
  });

  it('reuses the credentials until five minutes before they expire, then assumes again', async () => {
    const get = assumedRoleCredentials(sts, ROLE, clock);
    await get();
    now = T0 + 3600_000 - 5 * 60_000 - 1;
    await get();
    expect(server.seen).toHaveLength(1);
    now += 1;
    await get();
    expect(server.seen).toHaveLength(2);
  });

  it('makes one AssumeRole for callers that ask at once', async () => {
    const get = assumedRoleCredentials(sts, ROLE, clock);
    const all = await Promise.all([get(), get(), get()]);
    expect(server.seen).toHaveLength(1);
    expect(new Set(all.map((c) => c.accessKeyId))).toEqual(new Set(['ASIAREVOKER']));
  });

  for (const missing of ['AccessKeyId', 'SecretAccessKey', 'SessionToken', 'Expiration'] as const) {
    it(`refuses an answer without ${missing} (503 revoker_role_unavailable), and asks again next time`, async () => {
      const get = assumedRoleCredentials(sts, ROLE, clock);
      const { [missing]: _gone, ...rest } = FULL;
      server.answer = assumed(rest);
      const e = await refusal(get());
      expect([e.code, e.reason, e.detail]).toEqual(['upstream_unavailable', 'revoker_role_unavailable', { roleArn: ROLE, error: 'Error' }]);
      server.answer = assumed(FULL);
      expect((await get()).accessKeyId).toBe('ASIAREVOKER');
      expect(server.seen).toHaveLength(2);
    });
  }

  it('refuses an answer with no Credentials at all, as its own refusal (not a TypeError)', async () => {
    server.answer = () => ({
      status: 200,
      headers: { 'content-type': 'text/xml' },
      body: '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>',
    });
    const e = await refusal(assumedRoleCredentials(sts, ROLE, clock)());
    expect([e.reason, e.detail]).toEqual(['revoker_role_unavailable', { roleArn: ROLE, error: 'Error' }]);
  });

  it('refuses when STS refuses (AccessDenied), naming the error, and caches nothing', async () => {
    server.answer = () => ({
      status: 403,
      headers: { 'content-type': 'text/xml' },
      body: '<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not trusted</Message></Error><RequestId>r</RequestId></ErrorResponse>',
    });
    const get = assumedRoleCredentials(sts, ROLE, clock);
    const e = await refusal(get());
    expect([e.reason, e.detail]).toEqual(['revoker_role_unavailable', { roleArn: ROLE, error: 'AccessDenied' }]);
    await refusal(get());
    expect(server.seen).toHaveLength(2);
  });
});

describe('crossAccountIam', () => {
  const built: (() => Promise<unknown>)[] = [];
  const iamFor = crossAccountIam({
    accounts: { '210987654321': { revokerRoleArn: ROLE } },
    ownAccount: '123456789012',
    get sts() {
      return sts;
    },
    clock,
    iamClient: (credentials) => (built.push(credentials), new IAMClient({ region: 'us-east-1', credentials })),
  });

  it('uses the function’s own client in its own account, one revoker client per other account, and refuses an unlisted one', async () => {
    expect(iamFor('arn:aws:iam::123456789012:role/reports-read')).toBeUndefined();
    const a = iamFor('arn:aws:iam::210987654321:role/a');
    expect(iamFor('arn:aws:iam::210987654321:role/b')).toBe(a);
    expect(built).toHaveLength(1);
    expect(((await built[0]()) as { accessKeyId: string }).accessKeyId).toBe('ASIAREVOKER');
    let e: { reason?: string; detail?: unknown } = {};
    try {
      iamFor('arn:aws:iam::999999999999:role/x');
    } catch (err) {
      e = err as typeof e;
    }
    expect([e.reason, e.detail]).toEqual(['no_revoker_role', { roleArn: 'arn:aws:iam::999999999999:role/x', account: '999999999999' }]);
    a!.destroy();
  });

  it('without its own account known, takes any unlisted account as its own', () => {
    const loose = crossAccountIam({ accounts: {}, sts, clock, iamClient: () => new IAMClient({}) });
    expect(loose('arn:aws:iam::999999999999:role/x')).toBeUndefined();
  });
});
