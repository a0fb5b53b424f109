/**
 * The vend action's script against stub endpoints on 127.0.0.1: GitHub's token service and a tvm
 * that records what it was sent. The run against the real local stack is test/e2e/github-action.test.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACTION_SCRIPT, parseCommandFile } from './action-helpers.js';


interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

const CREDS = {
  AccessKeyId: 'ASIAEXAMPLEKEY000001',
  SecretAccessKey: 'secret/Key+example0000000000000000000000',
  SessionToken: 'session-token-example-0000',
  Expiration: '2030-01-01T00:15:00Z',
};

let server: Server;
let base: string;
let seen: Seen[];
let vendStatus = 200;
let dir: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      res.setHeader('content-type', 'application/json');
      if (req.url!.startsWith('/token')) {
        const aud = new URL(req.url!, base).searchParams.get('audience');
        res.end(JSON.stringify({ value: `oidc-token-for-${aud}` }));
      } else if (req.url === '/api/v1/vend') {
        res.statusCode = vendStatus;
        res.end(
          vendStatus === 200
            ? JSON.stringify({ leaseId: 'lease-123', grant: 'reports-read', roleArn: 'arn:aws:iam::123456789012:role/tvm/reports-read', issuedAt: '2030-01-01T00:00:00Z', expiresAt: CREDS.Expiration, credentials: CREDS })
            : JSON.stringify({ error: 'access_denied', message: 'Access is denied.', requestId: 'r-1' }),
        );
      } else if (req.url === '/api/v1/leases/lease-123/revoke') {
        res.end(JSON.stringify({ leaseId: 'lease-123', status: 'revoked', revokedAt: '2030-01-01T00:01:00Z' }));
      } else {
        res.statusCode = 404;
        res.end('{}');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());
beforeEach(() => {
  seen = [];
  vendStatus = 200;
  dir = mkdtempSync(join(tmpdir(), 'tvm-action-'));
  for (const f of ['env', 'state', 'output']) writeFileSync(join(dir, f), '');
  return () => rmSync(dir, { recursive: true, force: true });
});

function run(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [ACTION_SCRIPT], {
      env: {
        PATH: process.env.PATH,
        GITHUB_ENV: join(dir, 'env'),
        GITHUB_STATE: join(dir, 'state'),
        GITHUB_OUTPUT: join(dir, 'output'),
        ACTIONS_ID_TOKEN_REQUEST_URL: `${base}/token?api-version=2.0`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runtime-bearer',
        INPUT_ENDPOINT: `${base}/api/`,
        INPUT_GRANT: 'reports-read',
        INPUT_AUDIENCE: 'tvm',
        INPUT_REVOKE: 'true',
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

describe('vend action script', () => {
  it('gets a token for the configured audience, vends, masks the secrets first, exports credentials and saves the lease', async () => {
    const r = await run({ INPUT_AUDIENCE: 'sts.example', 'INPUT_DURATION-SECONDS': '1200', INPUT_TASK: 'deploy', INPUT_ENVIRONMENT: 'prod', 'INPUT_AWS-REGION': 'eu-west-1' });
    expect(r.code).toBe(0);
    const token = seen.find((s) => s.url.startsWith('/token'))!;
    expect(new URL(token.url, base).searchParams.get('audience')).toBe('sts.example');
    expect(token.headers.authorization).toBe('Bearer runtime-bearer');

    const vend = seen.find((s) => s.url === '/api/v1/vend')!;
    expect(vend.method).toBe('POST');
    expect(vend.headers.authorization).toBe('Bearer oidc-token-for-sts.example');
    expect(JSON.parse(vend.body)).toEqual({ grant: 'reports-read', durationSeconds: 1200, context: { task: 'deploy', environment: 'prod' } });

    const lines = r.stdout.split('\n');
    expect(lines).toContain(`::add-mask::${CREDS.AccessKeyId}`);
    expect(lines).toContain(`::add-mask::${CREDS.SecretAccessKey}`);
    expect(lines).toContain(`::add-mask::${CREDS.SessionToken}`);
    expect(lines).toContain('::add-mask::oidc-token-for-sts.example');
    // Nothing secret printed except inside the mask commands.
    const unmasked = lines.filter((l) => !l.startsWith('::add-mask::')).join('\n');
    expect(unmasked).not.toContain(CREDS.AccessKeyId);
    expect(unmasked).not.toContain(CREDS.SecretAccessKey);
    expect(unmasked).not.toContain(CREDS.SessionToken);
    expect(unmasked).not.toContain('oidc-token-for');

    expect(parseCommandFile(readFileSync(join(dir, 'env'), 'utf8'))).toEqual({
      AWS_ACCESS_KEY_ID: CREDS.AccessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDS.SecretAccessKey,
      AWS_SESSION_TOKEN: CREDS.SessionToken,
      AWS_CREDENTIAL_EXPIRATION: CREDS.Expiration,
      AWS_REGION: 'eu-west-1',
      AWS_DEFAULT_REGION: 'eu-west-1',
    });
    expect(parseCommandFile(readFileSync(join(dir, 'state'), 'utf8'))).toEqual({ isPost: 'true', leaseId: 'lease-123', endpoint: `${base}/api` });
    expect(parseCommandFile(readFileSync(join(dir, 'output'), 'utf8'))).toMatchObject({ 'lease-id': 'lease-123', 'expires-at': CREDS.Expiration });
  });

  it('the post step revokes the lease with a fresh token', async () => {
    const r = await run({ STATE_isPost: 'true', STATE_leaseId: 'lease-123', STATE_endpoint: `${base}/api` });
    expect(r.code).toBe(0);
    const revoke = seen.find((s) => s.url === '/api/v1/leases/lease-123/revoke')!;
    expect(revoke.method).toBe('POST');
    expect(revoke.headers.authorization).toBe('Bearer oidc-token-for-tvm');
    expect(r.stdout).toContain('lease-123 revoked');
  });

  it('the post step does nothing when the main step never got a lease', async () => {
    const r = await run({ STATE_isPost: 'true' });
    expect(r.code).toBe(0);
    expect(seen).toEqual([]);
  });

  it('a refusal fails the step with tvm’s code and phrase, and exports nothing', async () => {
    vendStatus = 403;
    const r = await run({});
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('::error::tvm: tvm vend: HTTP 403 access_denied: Access is denied. (request r-1)');
    expect(readFileSync(join(dir, 'env'), 'utf8')).toBe('');
    expect(seen.filter((s) => s.url === '/api/v1/vend')).toHaveLength(1); // a refusal is not retried
  });

  it('without id-token permission it says what to add', async () => {
    const r = await run({ ACTIONS_ID_TOKEN_REQUEST_URL: '', ACTIONS_ID_TOKEN_REQUEST_TOKEN: '' });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('id-token: write');
  });

  it('refuses a plain-http endpoint that is not loopback', async () => {
    const r = await run({ INPUT_ENDPOINT: 'http://tvm.example.com' });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('endpoint must be https');
    expect(seen).toEqual([]);
  });

  it('masks every credential before it writes anything', async () => {
    const r = await run({});
    const lines = r.stdout.split('\n');
    const firstOther = lines.findIndex((l) => !l.startsWith('::add-mask::'));
    for (const v of [CREDS.AccessKeyId, CREDS.SecretAccessKey, CREDS.SessionToken]) expect(lines.indexOf(`::add-mask::${v}`)).toBeLessThan(firstOther);
  });

  it('with export-env false, exports nothing to later steps and gives the credentials as outputs only', async () => {
    const r = await run({ 'INPUT_EXPORT-ENV': 'false', 'INPUT_AWS-REGION': 'eu-west-1' });
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, 'env'), 'utf8')).toBe('');
    expect(parseCommandFile(readFileSync(join(dir, 'output'), 'utf8'))).toEqual({
      'lease-id': 'lease-123',
      'expires-at': CREDS.Expiration,
      'role-arn': 'arn:aws:iam::123456789012:role/tvm/reports-read',
      'aws-access-key-id': CREDS.AccessKeyId,
      'aws-secret-access-key': CREDS.SecretAccessKey,
      'aws-session-token': CREDS.SessionToken,
    });
    expect(parseCommandFile(readFileSync(join(dir, 'state'), 'utf8')).leaseId).toBe('lease-123');
    expect(r.stdout.split('\n')).toContain(`::add-mask::${CREDS.AccessKeyId}`);
  });

  it('with export-env false and no output file, fails rather than put the credentials anywhere else', async () => {
    const r = await run({ 'INPUT_EXPORT-ENV': 'false', GITHUB_OUTPUT: '' });
    expect(r.code).toBe(1);
    expect(readFileSync(join(dir, 'env'), 'utf8')).toBe('');
  });
});

describe('vend action metadata (action.yml)', () => {
  const action = parseYaml(readFileSync(join(dirname(ACTION_SCRIPT), 'action.yml'), 'utf8')) as {
    branding?: { icon?: string; color?: string };
    inputs: Record<string, { default?: string }>;
    outputs: Record<string, unknown>;
    runs: { main: string; post: string };
  };
  it('has branding, an export-env input defaulting to true, and the outputs the script writes', () => {
    expect(action.branding).toEqual({ icon: expect.any(String), color: expect.any(String) });
    expect(action.inputs['export-env'].default).toBe('true');
    const script = readFileSync(ACTION_SCRIPT, 'utf8');
    const written = [...script.matchAll(/appendCommandFile\('GITHUB_OUTPUT', '([a-z-]+)'/g)].map((m) => m[1]).sort();
    expect(Object.keys(action.outputs).sort()).toEqual(written);
    const read = [...script.matchAll(/input\('([a-z-]+)'/g)].map((m) => m[1]);
    for (const name of read) expect(Object.keys(action.inputs), name).toContain(name);
  });
});
