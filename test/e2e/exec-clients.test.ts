/**
 * `tvm exec` with other real clients: the AWS CLI (several invocations under one exec share one
 * lease), the JS SDK's default chain in a child node process; what CMD's environment holds and
 * lacks; signals forwarded; a crash of CMD (SIGKILL) still revokes.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needTool } from '../helpers/tools.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { cleanEnv, leasesOf, mayRead, runTvm, startTvm } from './exec-helpers.js';

let stack: TestStack;
let dir: string;

async function tokenFile(sub: string): Promise<string> {
  const file = join(dir, `token-${sub}`);
  writeFileSync(file, await stack.mintToken({ team: 'analytics' }, { sub, ttlSeconds: 3600 }));
  return file;
}
const execArgs = (file: string) => ['exec', '--grant', 'reports-read', '--endpoint', stack.api, '--token-file', file, '--'];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tvm-exec-clients-'));
  stack = await startTestStack();
});
afterAll(async () => {
  await stack?.close();
});

describe.skipIf(!needTool('aws', 'tvm exec with the AWS CLI'))('tvm exec -- aws', () => {
  it('three AWS CLI processes under one exec share one lease, revoked at the end', async () => {
    const sub = 'cli-agent';
    const aws = `aws sts get-caller-identity --endpoint-url ${stack.sts} --region us-east-1 --query Arn --output text`;
    const ran = await runTvm([...execArgs(await tokenFile(sub)), 'sh', '-c', `${aws} && ${aws} && ${aws}`], cleanEnv(dir));
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    const leases = await leasesOf(stack, sub);
    expect(leases).toHaveLength(1);
    expect(ran.stdout.trim().split('\n')).toEqual(Array(3).fill(`arn:aws:sts::123456789012:assumed-role/reports-read/tvm-${leases[0].leaseId}`));
    expect(leases[0].status).toBe('revoked');
  });
});

describe('tvm exec -- node (the JS SDK default chain)', () => {
  it('fromNodeProviderChain finds the loopback endpoint; ten calls, one lease, revoked after', async () => {
    const sub = 'js-agent';
    const script = `
      import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
      import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
      const sts = new STSClient({ region: 'us-east-1', endpoint: process.env.TEST_STS, credentials: fromNodeProviderChain() });
      const arns = new Set();
      for (let i = 0; i < 10; i++) arns.add((await sts.send(new GetCallerIdentityCommand({}))).Arn);
      const c = await sts.config.credentials();
      console.log(JSON.stringify({ arns: [...arns], AccessKeyId: c.accessKeyId, SecretAccessKey: c.secretAccessKey, SessionToken: c.sessionToken }));`;
    const ran = await runTvm([...execArgs(await tokenFile(sub)), 'node', '--input-type=module', '-e', script], cleanEnv(dir, { TEST_STS: stack.sts }));
    expect(ran.code).toBe(0);
    const used = JSON.parse(ran.stdout) as { arns: string[]; AccessKeyId: string; SecretAccessKey: string; SessionToken: string };
    const leases = await leasesOf(stack, sub);
    expect(leases).toHaveLength(1);
    expect(used.arns).toEqual([`arn:aws:sts::123456789012:assumed-role/reports-read/tvm-${leases[0].leaseId}`]);
    expect(leases[0].status).toBe('revoked');
    expect((await mayRead(stack, used, 'arn:aws:s3:::reports/analytics/q3.csv')).allowed).toBe(false);
  });
});

describe('tvm exec: environment, signals, crashes', () => {
  const printEnv = ['node', '-e', 'console.log(JSON.stringify(process.env))'];

  it("gives CMD the loopback endpoint and a fresh auth token, and none of the caller's AWS credentials or the OIDC token", async () => {
    const token = await stack.mintToken({ team: 'analytics' }, { sub: 'env-agent', ttlSeconds: 3600 });
    const caller = cleanEnv(dir, {
      TVM_TOKEN: token,
      AWS_ACCESS_KEY_ID: 'AKIACALLERSOWNKEY000',
      AWS_SECRET_ACCESS_KEY: 'caller-secret',
      AWS_SESSION_TOKEN: 'caller-session',
      AWS_PROFILE: 'prod-admin',
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/x',
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: '/var/run/secrets/x',
      AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token',
      AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/other',
      KEPT: 'yes',
    });
    const args = ['exec', '--grant', 'reports-read', '--endpoint', stack.api, '--', ...printEnv];
    const [a, b] = await Promise.all([runTvm(args, caller), runTvm(args, caller)]);
    expect(a.code).toBe(0);
    const envA = JSON.parse(a.stdout) as Record<string, string>;
    const envB = JSON.parse(b.stdout) as Record<string, string>;
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'TVM_TOKEN', 'TVM_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN']) {
      expect(envA[k], k).toBeUndefined();
    }
    expect(Object.values(envA).join('\n')).not.toContain(token);
    expect(envA.KEPT).toBe('yes');
    expect(envA.AWS_SHARED_CREDENTIALS_FILE).toBe('/dev/null');
    expect(envA.AWS_CONTAINER_CREDENTIALS_FULL_URI).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/credentials$/);
    expect(envA.AWS_CONTAINER_AUTHORIZATION_TOKEN).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(envB.AWS_CONTAINER_AUTHORIZATION_TOKEN).not.toBe(envA.AWS_CONTAINER_AUTHORIZATION_TOKEN);
    expect((await leasesOf(stack, 'env-agent')).map((l) => l.status)).toEqual(['revoked', 'revoked']);
  });

  it('SIGKILL to CMD (a crash) still revokes; exit 128 + 9', async () => {
    const sub = 'crashing-agent';
    const running = startTvm([...execArgs(await tokenFile(sub)), 'sh', '-c', 'echo pid=$$; exec sleep 60'], cleanEnv(dir));
    const pid = Number(/pid=(\d+)/.exec(await running.waitFor(/pid=\d+\n/))![1]);
    expect((await leasesOf(stack, sub)).map((l) => l.status)).toEqual(['active']);
    process.kill(pid, 'SIGKILL');
    const ran = await running.done;
    expect(ran.code).toBe(137);
    expect((await leasesOf(stack, sub)).map((l) => l.status)).toEqual(['revoked']);
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
    ['SIGHUP', 129],
  ] as const)('forwards %s to CMD and exits %i when it kills CMD', async (signal, code) => {
    const sub = `signalled-${signal.toLowerCase()}`;
    const running = startTvm([...execArgs(await tokenFile(sub)), 'node', '-e', 'console.log("ready"); setInterval(() => {}, 1000)'], cleanEnv(dir));
    await running.waitFor('ready\n');
    running.child.kill(signal);
    const ran = await running.done;
    expect(ran.code).toBe(code);
    expect((await leasesOf(stack, sub)).map((l) => l.status)).toEqual(['revoked']);
  });

  it('SIGTERM while the first lease is being vended: CMD never runs, the lease is revoked, exit 143', async () => {
    const sub = 'early-signal';
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const vendArrived = new Promise<void>((r) => (arrived = r));
    // A loopback proxy in front of the stack that holds the vend until the signal has been sent.
    const proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c as Buffer));
      req.on('end', async () => {
        if (req.url === '/v1/vend') {
          arrived();
          await held;
        }
        const body = Buffer.concat(chunks);
        try {
          const upstream = await fetch(`${stack.api}${req.url}`, {
            method: req.method,
            headers: { authorization: String(req.headers.authorization), 'content-type': 'application/json' },
            body: body.length ? body : undefined,
          });
          res.writeHead(upstream.status, { 'content-type': 'application/json' });
          res.end(await upstream.text());
        } catch {
          res.destroy();
        }
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const running = startTvm(['exec', '--grant', 'reports-read', '--endpoint', url, '--token-file', await tokenFile(sub), '--', 'node', '-e', 'console.log("ran")'], cleanEnv(dir));
      await vendArrived;
      running.child.kill('SIGTERM');
      release();
      const ran = await running.done;
      expect(ran.stdout).not.toContain('ran');
      expect(ran.code).toBe(143);
      expect((await leasesOf(stack, sub)).map((l) => l.status)).toEqual(['revoked']);
    } finally {
      proxy.closeAllConnections();
      proxy.close();
    }
  });

  it("passes CMD's own handling of a forwarded signal through (its exit code)", async () => {
    const sub = 'trapping-agent';
    const script = 'process.on("SIGTERM", () => { console.log("cleaning up"); process.exit(5); }); console.log("ready"); setInterval(() => {}, 1000)';
    const running = startTvm([...execArgs(await tokenFile(sub)), 'node', '-e', script], cleanEnv(dir));
    await running.waitFor('ready\n');
    running.child.kill('SIGTERM');
    const ran = await running.done;
    expect(ran.stdout).toContain('cleaning up');
    expect(ran.code).toBe(5);
  });

  it('a refused token: exit 1 with one line, CMD never runs; a missing CMD: 127 and the lease revoked', async () => {
    const refused = await runTvm(['exec', '--grant', 'reports-read', '--endpoint', stack.api, '--', 'node', '-e', 'console.log("ran")'], cleanEnv(dir, { TVM_TOKEN: await stack.mintToken({}) }));
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/access_denied/);
    const missing = await runTvm([...execArgs(await tokenFile('missing-cmd')), 'no-such-command-tvm'], cleanEnv(dir));
    expect(missing.code).toBe(127);
    expect((await leasesOf(stack, 'missing-cmd')).map((l) => l.status)).toEqual(['revoked']);
    const usage = await runTvm(['exec', '--grant', 'reports-read'], cleanEnv(dir));
    expect(usage.code).toBe(2);
  });

  it('a token no longer accepted at exit: the lease is reported on stderr, not silently left', async () => {
    const sub = 'token-gone';
    const file = await tokenFile(sub);
    const ran = await runTvm([...execArgs(file), 'sh', '-c', `printf x > ${file}`], cleanEnv(dir));
    expect(ran.code).toBe(0);
    expect(ran.stderr).toMatch(/could not revoke lease L[a-z2-7]+ \(invalid_token: .*\); it expires at \d{4}-/);
    expect((await leasesOf(stack, sub)).map((l) => l.status)).toEqual(['active']);
  });
});
