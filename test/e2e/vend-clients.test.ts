/**
 * The vend path driven by real clients on the running local stack: fetch to /v1/vend, the AWS CLI
 * with vended credentials, a credential_process profile (AWS CLI and the JS SDK's fromIni), and
 * container credentials (AWS CLI and the JS SDK's default chain). Ends with the secret scan.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { fromIni, fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Get } from '../helpers/s3.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const run = promisify(execFile);
let stack: TestStack;
let dir: string;
/** Every secret handed out during this file, for the scan at the end. */
const secrets = new Set<string>();
/** Everything the CLIs printed on stderr (their logs), scanned too. */
const cliOutput: string[] = [];

const BIN = resolve('cli/bin.mjs');
const baseEnv = () => ({
  PATH: process.env.PATH ?? '',
  HOME: dir,
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
});

async function aws(args: string[], env: Record<string, string>) {
  const endpoint = args[0] === 's3' || args[0] === 's3api' ? stack.s3 : stack.sts;
  const out = await run('aws', [...args, '--endpoint-url', endpoint, '--region', 'us-east-1', '--output', 'json'], { env: { ...baseEnv(), ...env } }).catch((e) => e);
  cliOutput.push(String(out.stderr ?? ''));
  return { code: out.code ?? 0, stdout: String(out.stdout ?? ''), stderr: String(out.stderr ?? '') };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tvm-e2e-'));
  stack = await startTestStack();
});
afterAll(async () => {
  await stack?.close();
});

function remember(c: Record<string, string>) {
  for (const k of ['SecretAccessKey', 'SessionToken', 'Token']) if (c[k]) secrets.add(c[k]);
}

describe('vend with real clients', { timeout: 120_000 }, () => {
  it('vends over HTTP; the AWS CLI reads the team’s reports with the credentials (not another team’s) and gets their identity', { timeout: 120_000 }, async () => {
    const token = await stack.mintToken({ team: 'analytics' }, { sub: 'agent-cli' });
    secrets.add(token);
    const { status, body } = await stack.vend({ grant: 'reports-read', context: { task: 'T-1', environment: 'dev' } }, token);
    expect(status).toBe(200);
    remember(body.credentials);
    const creds = {
      AWS_ACCESS_KEY_ID: body.credentials.AccessKeyId,
      AWS_SECRET_ACCESS_KEY: body.credentials.SecretAccessKey,
      AWS_SESSION_TOKEN: body.credentials.SessionToken,
    };
    const mine = await aws(['s3', 'cp', 's3://reports/analytics/q3.csv', '-'], creds);
    expect(mine.code, mine.stderr).toBe(0);
    expect(mine.stdout).toBe(readFileSync('config/local-s3/reports/analytics/q3.csv', 'utf8'));
    const theirs = await aws(['s3', 'cp', 's3://reports/finance/q3.csv', '-'], creds);
    expect(theirs.code).not.toBe(0);
    expect(theirs.stderr).toContain('403');
    const who = await aws(['sts', 'get-caller-identity'], creds);
    expect(who.code).toBe(0);
    const identity = JSON.parse(who.stdout) as { Arn: string; UserId: string };
    expect(identity.Arn).toBe(`arn:aws:sts::123456789012:assumed-role/reports-read/tvm-${body.leaseId}`);
    expect(identity.UserId).toMatch(new RegExp(`^AROA[A-Z0-9]+:tvm-${body.leaseId}$`));

    const lease = await stack.runtime.leases.get(body.leaseId);
    expect(lease?.status).toBe('active');
    expect(lease?.accessKeyId).toBe(body.credentials.AccessKeyId);
    expect(lease?.decision).toEqual(['dev-agents-read-reports']);
    expect(lease?.context).toEqual({ task: 'T-1', environment: 'dev' });

    // Revoked: S3 refuses the same read, while GetCallerIdentity still answers (as AWS does).
    const revoked = await fetch(`${stack.api}/v1/leases/${body.leaseId}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(revoked.status).toBe(200);
    const after = await aws(['s3api', 'get-object', '--bucket', 'reports', '--key', 'analytics/q3.csv', join(dir, 'after.csv')], creds);
    expect(after.stderr).toMatch(/\(AccessDenied\).*explicit deny/);
    expect((await aws(['sts', 'get-caller-identity'], creds)).code).toBe(0);
  });

  it('scopes the credentials to the rendered session policy (emulator evaluation)', async () => {
    const { body } = await stack.vend({ grant: 'reports-read' }, await stack.mintToken({ team: 'analytics' }));
    remember(body.credentials);
    const may = async (resource: string) => {
      const res = await fetch(`${stack.sts}/_tvm/evaluate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          accessKeyId: body.credentials.AccessKeyId,
          secretAccessKey: body.credentials.SecretAccessKey,
          sessionToken: body.credentials.SessionToken,
          action: 's3:GetObject',
          resource,
        }),
      });
      return ((await res.json()) as { allowed: boolean }).allowed;
    };
    expect(await may('arn:aws:s3:::reports/analytics/q3.csv')).toBe(true);
    expect(await may('arn:aws:s3:::reports/finance/q3.csv')).toBe(false);
    // The local S3 decides the same way.
    expect((await s3Get(stack.s3, body.credentials, '/reports/analytics/q3.csv')).status).toBe(200);
    expect(await s3Get(stack.s3, body.credentials, '/reports/finance/q3.csv')).toMatchObject({ status: 403, code: 'AccessDenied' });
  });

  it('serves a credential_process profile to the AWS CLI and to the JS SDK (fromIni)', async () => {
    const tokenFile = join(dir, 'token');
    const token = await stack.mintToken({ team: 'analytics' }, { sub: 'agent-profile' });
    secrets.add(token);
    writeFileSync(tokenFile, token);
    const config = join(dir, 'config');
    writeFileSync(
      config,
      `[profile tvm]\ncredential_process = node ${BIN} credential-process --grant reports-read --endpoint ${stack.api} --token-file ${tokenFile}\nregion = us-east-1\n`,
    );
    const who = await aws(['sts', 'get-caller-identity', '--profile', 'tvm'], { AWS_CONFIG_FILE: config });
    expect(who.stderr).toBe('');
    expect(who.code).toBe(0);
    expect(JSON.parse(who.stdout).Arn).toMatch(/assumed-role\/reports-read\/tvm-L[a-z2-7]{26}$/);

    const credentials = fromIni({ profile: 'tvm', configFilepath: config, filepath: '/dev/null' });
    const resolved = await credentials();
    remember({ SecretAccessKey: resolved.secretAccessKey, SessionToken: resolved.sessionToken ?? '' });
    const sts = new STSClient({ region: 'us-east-1', endpoint: stack.sts, credentials });
    const id = await sts.send(new GetCallerIdentityCommand({}));
    expect(id.Arn).toMatch(/assumed-role\/reports-read\/tvm-L/);
    sts.destroy();
  });

  it('serves container credentials to the AWS CLI and to the JS SDK default chain (token file without newline)', async () => {
    const tokenFile = join(dir, 'container-token');
    const token = await stack.mintToken({ team: 'analytics' }, { sub: 'agent-pod' });
    secrets.add(token);
    writeFileSync(tokenFile, token);
    const env = {
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${stack.api}/v1/credentials/reports-read?task=nightly`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
    };
    const who = await aws(['sts', 'get-caller-identity'], env);
    expect(who.code).toBe(0);
    expect(JSON.parse(who.stdout).Arn).toMatch(/assumed-role\/reports-read\/tvm-L/);

    const saved = { ...process.env };
    Object.assign(process.env, env);
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) delete process.env[k];
    try {
      const credentials = fromNodeProviderChain();
      const resolved = await credentials();
      remember({ SecretAccessKey: resolved.secretAccessKey, SessionToken: resolved.sessionToken ?? '' });
      const sts = new STSClient({ region: 'us-east-1', endpoint: stack.sts, credentials });
      const id = await sts.send(new GetCallerIdentityCommand({}));
      expect(id.Arn).toMatch(/assumed-role\/reports-read\/tvm-L/);
      sts.destroy();
    } finally {
      process.env = saved;
    }
  });

  it('answers the container route in the exact container-credentials shape', async () => {
    const token = await stack.mintToken();
    secrets.add(token);
    const res = await fetch(`${stack.api}/v1/credentials/reports-read`, { headers: { authorization: token } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, string>;
    remember(body);
    expect(Object.keys(body).sort()).toEqual(['AccessKeyId', 'AccountId', 'Expiration', 'SecretAccessKey', 'Token']);
    expect(body.AccountId).toBe('123456789012');
  });

  it('prints env and credential-process formats from `tvm vend`', async () => {
    const tokenFile = join(dir, 'vend-token');
    const token = await stack.mintToken();
    secrets.add(token);
    writeFileSync(tokenFile, token);
    const env = { ...baseEnv(), TVM_TOKEN_FILE: tokenFile, TVM_ENDPOINT: stack.api };
    const asEnv = await run('node', [BIN, 'vend', '--grant', 'reports-read', '--format', 'env'], { env });
    cliOutput.push(asEnv.stderr);
    const vars = Object.fromEntries([...asEnv.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
    expect(Object.keys(vars)).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CREDENTIAL_EXPIRATION', 'TVM_LEASE_ID']);
    remember({ SecretAccessKey: vars.AWS_SECRET_ACCESS_KEY, SessionToken: vars.AWS_SESSION_TOKEN });
    const cp = await run('node', [BIN, 'credential-process', '--grant', 'reports-read'], { env });
    const parsed = JSON.parse(cp.stdout) as Record<string, unknown>;
    remember(parsed as Record<string, string>);
    expect(parsed.Version).toBe(1);
  });

  it('refuses with exit 1 and one line on stderr, exit 2 on bad usage', async () => {
    const env = { ...baseEnv(), TVM_TOKEN: await stack.mintToken({}), TVM_ENDPOINT: stack.api };
    const denied = await run('node', [BIN, 'vend', '--grant', 'reports-read'], { env }).catch((e) => e);
    expect(denied.code).toBe(1);
    expect(denied.stderr.trim().split('\n')).toHaveLength(1);
    expect(denied.stderr).toMatch(/access_denied/);
    const usage = await run('node', [BIN, 'vend'], { env }).catch((e) => e);
    expect(usage.code).toBe(2);
  });

  it('never logs a token, secret key or session token it handed out', () => {
    expect(secrets.size).toBeGreaterThan(10);
    const everything = [...stack.logs, ...cliOutput].join('\n');
    expect(stack.logs.length).toBeGreaterThan(5);
    for (const s of secrets) expect(everything.includes(s), 'a secret appears in the logs').toBe(false);
    // A token's signature alone must not appear either.
    for (const s of secrets) if (s.split('.').length === 3) expect(everything.includes(s.split('.')[2])).toBe(false);
  });
});
