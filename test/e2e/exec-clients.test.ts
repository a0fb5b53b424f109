/**
 * `tvm exec` with other real clients: the AWS CLI (several invocations under one exec share one
 * lease), the JS SDK's default chain in a child node process; what CMD's environment holds and
 * lacks; signals forwarded; a crash of CMD (SIGKILL, an uncaught error) still revokes.
 * Revocation is proven at the local S3: CMD reads the object its grant allows (and is refused
 * another team's), keeps its own copy of the credentials it used, and after it exits that copy is
 * AccessDenied. `sts get-caller-identity` appears only where identity is what is tested (AWS
 * answers it for revoked credentials too).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needTool } from '../helpers/tools.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { awsS3Cp } from '../helpers/s3.js';
import { ALLOWED_KEY, ALLOWED_TEXT, captured, cleanEnv, JS_AGENT, jsAgentEnv, jsAgentReads, leasesOf, OTHER_KEY, type Running, runTvm, s3Read, startTvm } from './exec-helpers.js';

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

describe.skipIf(!needTool('aws', 'tvm exec with the AWS CLI') || !needTool('curl', 'the CLI agent captures its credentials with curl'))('tvm exec -- aws', () => {
  it("AWS CLI processes under one exec share one lease: they read the team's prefix and are refused another's; after exit the same credentials are AccessDenied", async () => {
    const sub = 'cli-agent';
    const capture = join(dir, `creds-${sub}`);
    const otherErr = join(dir, `other-${sub}`);
    const cp = `aws s3 cp s3://${ALLOWED_KEY} - --endpoint-url ${stack.s3}`;
    const [bucket, ...rest] = OTHER_KEY.split('/');
    const other = `aws s3api get-object --bucket ${bucket} --key ${rest.join('/')} --endpoint-url ${stack.s3} /dev/null`;
    // The agent's own copy of its credentials, from the endpoint its CLI uses (as a leak would take them).
    const copy = `curl -sf -H "Authorization: $AWS_CONTAINER_AUTHORIZATION_TOKEN" "$AWS_CONTAINER_CREDENTIALS_FULL_URI" > ${capture}`;
    const ran = await runTvm([...execArgs(await tokenFile(sub)), 'sh', '-c', `${cp} && ${cp} && ${copy} && if ${other} > /dev/null 2> ${otherErr}; then echo other-allowed; fi`], cleanEnv(dir));
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    expect(ran.stdout).toBe(ALLOWED_TEXT.repeat(2));
    expect(readFileSync(otherErr, 'utf8')).toMatch(/An error occurred \(AccessDenied\) when calling the GetObject operation/);
    const leases = await leasesOf(stack, sub);
    expect(leases).toHaveLength(1);
    expect(leases[0].status).toBe('revoked');
    const creds = captured(capture);
    expect(creds.AccessKeyId).toBe(leases[0].accessKeyId);
    expect(await s3Read(stack, creds, ALLOWED_KEY)).toBe('AccessDenied');
    const again = await awsS3Cp(stack.s3, creds, `s3://${ALLOWED_KEY}`, dir);
    expect(again).toMatchObject({ ok: false, stdout: '' });
    expect(again.stderr).toMatch(/\(403\)/);
  });
});

describe('tvm exec -- node (the JS SDK default chain)', () => {
  it("fromNodeProviderChain finds the loopback endpoint: reads the team's prefix, refused another's; after exit the same credentials are AccessDenied", async () => {
    const sub = 'js-reader';
    const capture = join(dir, `creds-${sub}`);
    const ran = await runTvm([...execArgs(await tokenFile(sub)), 'node', ...JS_AGENT], cleanEnv(dir, jsAgentEnv(stack, capture)));
    expect(ran.code, ran.stderr).toBe(0);
    const reads = jsAgentReads(ran.stdout);
    expect(reads.allowed).toMatchObject({ status: 200, body: ALLOWED_TEXT });
    expect(reads.other).toMatchObject({ status: 403, code: 'AccessDenied' });
    const leases = await leasesOf(stack, sub);
    expect(leases.map((l) => l.status)).toEqual(['revoked']);
    const creds = captured(capture);
    expect(creds.AccessKeyId).toBe(leases[0].accessKeyId);
    expect(await s3Read(stack, creds, ALLOWED_KEY)).toBe('AccessDenied');
    expect(await s3Read(stack, creds, OTHER_KEY)).toBe('AccessDenied');
  });

  it('ten STS calls through one client make one lease, and the identity is that lease’s session', async () => {
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
    // GetCallerIdentity answered for these credentials; it proves who, never whether they work.
    expect(await s3Read(stack, used, ALLOWED_KEY)).toBe('AccessDenied');
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

  /** JS_AGENT under exec until it has read and printed `ready`; answers its pid and where it put its credentials. */
  async function readingAgent(sub: string): Promise<{ running: Running; pid: number; capture: string }> {
    const capture = join(dir, `creds-${sub}`);
    const running = startTvm([...execArgs(await tokenFile(sub)), 'node', ...JS_AGENT], cleanEnv(dir, jsAgentEnv(stack, capture, 'wait')));
    const out = await running.waitFor(/ready\n/);
    const reads = jsAgentReads(out);
    expect(reads.allowed).toMatchObject({ status: 200, body: ALLOWED_TEXT });
    expect(reads.other).toMatchObject({ status: 403, code: 'AccessDenied' });
    return { running, pid: Number(/pid=(\d+)/.exec(out)![1]), capture };
  }

  it('SIGKILL to CMD (a crash) still revokes: the credentials it used work until then and are AccessDenied after; exit 128 + 9', async () => {
    const sub = 'crashing-agent';
    const { running, pid, capture } = await readingAgent(sub);
    expect((await leasesOf(stack, sub)).map((l) => l.status)).toEqual(['active']);
    const creds = captured(capture);
    expect(await s3Read(stack, creds, ALLOWED_KEY)).toBe('ok');
    process.kill(pid, 'SIGKILL');
    const ran = await running.done;
    expect(ran.code).toBe(137);
    expect((await leasesOf(stack, sub)).map((l) => l.status)).toEqual(['revoked']);
    expect(await s3Read(stack, creds, ALLOWED_KEY)).toBe('AccessDenied');
  });

  it('CMD crashing with an uncaught error (exit 1) still revokes: its credentials are AccessDenied after', async () => {
    const sub = 'throwing-agent';
    const capture = join(dir, `creds-${sub}`);
    const ran = await runTvm([...execArgs(await tokenFile(sub)), 'node', ...JS_AGENT], cleanEnv(dir, jsAgentEnv(stack, capture, 'throw')));
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain('the agent crashed');
    expect(jsAgentReads(ran.stdout).allowed).toMatchObject({ status: 200, body: ALLOWED_TEXT });
    expect((await leasesOf(stack, sub)).map((l) => l.status)).toEqual(['revoked']);
    expect(await s3Read(stack, captured(capture), ALLOWED_KEY)).toBe('AccessDenied');
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
    ['SIGHUP', 129],
  ] as const)('forwards %s to CMD and exits %i when it kills CMD; the credentials CMD used are AccessDenied after', async (signal, code) => {
    const sub = `signalled-${signal.toLowerCase()}`;
    const { running, capture } = await readingAgent(sub);
    running.child.kill(signal);
    const ran = await running.done;
    expect(ran.code).toBe(code);
    expect((await leasesOf(stack, sub)).map((l) => l.status)).toEqual(['revoked']);
    expect(await s3Read(stack, captured(capture), ALLOWED_KEY)).toBe('AccessDenied');
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
