/**
 * `tvm agent`: renewal on the controllable clock (the stack's handlers and emulator and the agent
 * share one clock, moved forward by the test), the token re-read and refused, and the agent as a
 * process stopped by SIGTERM. The container-credentials server's own protocol checks too. Whether
 * served credentials work is a GetObject at the local S3 (the grant's prefix allowed, another
 * team's AccessDenied; after a revocation, AccessDenied), never GetCallerIdentity.
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Agent, startAgent } from '../../cli/commands/agent.js';
import { renewAtMs } from '../../cli/credentials-server.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { ALLOWED_KEY, cleanEnv, leasesOf, OTHER_KEY, s3Read, startTvm } from './exec-helpers.js';

let skewMs = 0;
const clock = { now: () => Date.now() + skewMs };
/** Moves every clock forward: tvm's, the emulator's, the agent's, and what tvm's SDK clients sign with. */
function advance(seconds: number): void {
  skewMs += seconds * 1000;
  for (const c of [stack.runtime.iam, stack.runtime.sts]) (c.config as { systemClockOffset?: number }).systemClockOffset = skewMs;
}

let stack: TestStack;
let dir: string;
const AUTH = 'test-auth-token-0123456789abcdef';

beforeEach(() => {
  // Each test starts at real time (tokens are minted at real time); the skew only ever moves forward within a test.
  advance(-skewMs / 1000);
});
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tvm-agent-'));
  stack = await startTestStack({ clock });
});
afterAll(async () => {
  await stack?.close();
});

interface Served {
  AccessKeyId: string;
  SecretAccessKey: string;
  Token: string;
  Expiration: string;
  AccountId: string;
}

async function ask(agent: Agent, auth: string | null = AUTH): Promise<{ status: number; body: Served }> {
  const res = await fetch(agent.server.url, { headers: auth === null ? {} : { authorization: auth } });
  return { status: res.status, body: (await res.json()) as Served };
}

/**
 * What an SDK would do with the answer: it must be unexpired by tvm's clock, and a GetObject the
 * grant allows must succeed at the local S3 (false: AccessDenied; anything else fails the test).
 */
async function usable(c: Served): Promise<boolean> {
  expect(Date.parse(c.Expiration)).toBeGreaterThan(clock.now());
  const creds = { AccessKeyId: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, SessionToken: c.Token };
  const outcome = await s3Read(stack, creds, ALLOWED_KEY, clock.now());
  if (outcome !== 'ok') expect(outcome).toBe('AccessDenied');
  if (outcome === 'ok') expect(await s3Read(stack, creds, OTHER_KEY, clock.now())).toBe('AccessDenied');
  return outcome === 'ok';
}

async function agentFor(sub: string, tokenTtl = 7200): Promise<{ agent: Agent; warnings: string[]; tokenFile: string }> {
  const tokenFile = join(dir, `token-${sub}`);
  writeFileSync(tokenFile, await stack.mintToken({ team: 'analytics' }, { sub, ttlSeconds: tokenTtl }));
  const warnings: string[] = [];
  const agent = await startAgent({ endpoint: stack.api, grant: 'reports-read', port: 0, authToken: AUTH, tokenFile, env: {}, context: {}, clock, warn: (l) => warnings.push(l) });
  return { agent, warnings, tokenFile };
}

describe('renewal rule', () => {
  it.each([
    [900, 600],
    [3600, 2400],
    [1200, 800],
    [43200, 28800],
  ])('a %i s lease is renewed after %i s (a third of its life or 5 minutes left, whichever is more)', (life, after) => {
    expect(renewAtMs({ issuedAtMs: 0, expiresAtMs: life * 1000 })).toBe(after * 1000);
  });
});

describe('tvm agent (controllable clock)', () => {
  it('answers 401 without the auth token or with another, 404 elsewhere; the container shape with it', async () => {
    const { agent } = await agentFor('agent-protocol');
    try {
      expect((await ask(agent, null)).status).toBe(401);
      expect((await ask(agent, '')).status).toBe(401);
      expect((await ask(agent, `${AUTH}x`)).status).toBe(401);
      expect((await ask(agent, `Bearer ${AUTH}`)).status).toBe(401);
      expect((await fetch(agent.server.url.replace('/credentials', '/other'), { headers: { authorization: AUTH } })).status).toBe(404);
      expect(new URL(agent.server.url).hostname).toBe('127.0.0.1');
      const ok = await ask(agent);
      expect(ok.status).toBe(200);
      expect(Object.keys(ok.body).sort()).toEqual(['AccessKeyId', 'AccountId', 'Expiration', 'SecretAccessKey', 'Token']);
      expect(ok.body.AccountId).toBe('123456789012');
    } finally {
      await agent.stop();
    }
  });

  it('reuses one lease, renews before expiry, leaves the old one to expire, and revokes only what is live at exit', async () => {
    const sub = 'agent-renews';
    const { agent } = await agentFor(sub);
    const first = await ask(agent);
    expect(await usable(first.body)).toBe(true);
    advance(590); // 310 s left of 900: not yet due
    const same = await ask(agent);
    expect(same.body.AccessKeyId).toBe(first.body.AccessKeyId);
    expect(await leasesOf(stack, sub)).toHaveLength(1);

    advance(20); // 290 s left: due
    const renewed = await ask(agent);
    expect(renewed.body.AccessKeyId).not.toBe(first.body.AccessKeyId);
    expect(await usable(renewed.body)).toBe(true);
    // The old lease is not revoked at renewal: an SDK may still hold it until its own refresh.
    expect(await usable(first.body)).toBe(true);
    const leases = await leasesOf(stack, sub);
    expect(leases.map((l) => l.status)).toEqual(['active', 'active']);

    advance(300); // the first lease has expired; the second has 590 s left
    const later = await ask(agent);
    expect(later.body.AccessKeyId).toBe(renewed.body.AccessKeyId);
    expect(await usable(later.body)).toBe(true);

    const { revoked } = await agent.stop();
    const byKey = new Map((await leasesOf(stack, sub)).map((l) => [l.accessKeyId, l]));
    expect(revoked).toEqual([byKey.get(renewed.body.AccessKeyId)!.leaseId]);
    expect(byKey.get(renewed.body.AccessKeyId)!.status).toBe('revoked');
    expect(byKey.get(first.body.AccessKeyId)!.status).not.toBe('revoked');
    expect(await usable(renewed.body)).toBe(false);
  });

  it('concurrent SDK requests at start share one vend', async () => {
    const sub = 'agent-concurrent';
    const { agent } = await agentFor(sub);
    const answers = await Promise.all(Array.from({ length: 10 }, () => ask(agent)));
    expect(new Set(answers.map((a) => a.body.AccessKeyId)).size).toBe(1);
    expect(await leasesOf(stack, sub)).toHaveLength(1);
    await agent.stop();
  });

  it('revokes the old lease at exit when it is still live', async () => {
    const sub = 'agent-renews-then-stops';
    const { agent } = await agentFor(sub);
    const first = await ask(agent);
    advance(610);
    const second = await ask(agent);
    expect(await usable(first.body)).toBe(true);
    const { revoked } = await agent.stop();
    expect(revoked).toHaveLength(2);
    expect((await leasesOf(stack, sub)).map((l) => l.status)).toEqual(['revoked', 'revoked']);
    expect(await usable(first.body)).toBe(false);
    expect(await usable(second.body)).toBe(false);
  });

  it('re-reads the token file at every vend; an expired token is one line on stderr and a 503, never expired credentials', async () => {
    const sub = 'agent-token-expires';
    const { agent, warnings, tokenFile } = await agentFor(sub, 500);
    try {
      const first = await ask(agent);
      expect(first.status).toBe(200);
      advance(610); // due for renewal, and the token (500 s) expired beyond the 60 s skew allowance
      const stillValid = await ask(agent);
      // Renewal failed, the first lease still has 290 s: served, and said so in one line.
      expect(stillValid.status).toBe(200);
      expect(stillValid.body.AccessKeyId).toBe(first.body.AccessKeyId);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^cannot renew credentials: invalid_token: .*serving lease L[a-z2-7]+ until/);
      expect(warnings[0]).not.toContain(readFileSync(tokenFile, 'utf8'));

      advance(265); // 25 s left: inside the margin, so never served
      const refused = await ask(agent);
      expect(refused.status).toBe(503);
      expect(JSON.stringify(refused.body)).not.toMatch(/ASIA|AKIA/);
      expect(warnings).toHaveLength(2);
      expect(warnings[1]).toMatch(/^cannot renew credentials: invalid_token: [^\n]*$/);

      // A rotated token in the file is picked up at the next vend.
      writeFileSync(tokenFile, await stack.mintToken({ team: 'analytics' }, { sub, ttlSeconds: 7200 }));
      const fresh = await ask(agent);
      expect(fresh.status).toBe(200);
      expect(fresh.body.AccessKeyId).not.toBe(first.body.AccessKeyId);
      expect(await usable(fresh.body)).toBe(true);
    } finally {
      await agent.stop();
    }
  });
});

describe('tvm agent (a process)', () => {
  it('writes a fresh auth token (0600), prints its URL, serves credentials, and revokes on SIGTERM', async () => {
    const sub = 'agent-sigterm';
    const tokenFile = join(dir, `token-${sub}`);
    writeFileSync(tokenFile, await stack.mintToken({ team: 'analytics' }, { sub, ttlSeconds: 3600 }));
    const authFile = join(dir, 'agent-auth');
    const running = startTvm(['agent', '--grant', 'reports-read', '--endpoint', stack.api, '--token-file', tokenFile, '--listen', '127.0.0.1:0', '--auth-token-file', authFile], cleanEnv(dir));
    const out = await running.waitFor(/AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=.*\n/);
    expect(statSync(authFile).mode & 0o777).toBe(0o600);
    const auth = readFileSync(authFile, 'utf8');
    expect(auth).not.toMatch(/\n/);
    expect(out).not.toContain(auth);
    const url = /AWS_CONTAINER_CREDENTIALS_FULL_URI=(\S+)/.exec(out)![1];
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/credentials$/);
    const res = await fetch(url, { headers: { authorization: auth } });
    const c = (await res.json()) as Served;
    expect(res.status).toBe(200);
    expect(await usable(c)).toBe(true);
    running.child.kill('SIGTERM');
    const ran = await running.done;
    expect(ran.code).toBe(0);
    expect(ran.stderr).toMatch(/revoked 1 lease/);
    const leases = await leasesOf(stack, sub);
    expect(leases.map((l) => l.status)).toEqual(['revoked']);
    expect(await usable(c)).toBe(false);
  });

  it('reuses the auth token in an existing file', async () => {
    const authFile = join(dir, 'agent-auth-existing');
    writeFileSync(authFile, AUTH, { mode: 0o600 });
    const tokenFile = join(dir, 'token-agent-existing');
    writeFileSync(tokenFile, await stack.mintToken({ team: 'analytics' }, { sub: 'agent-existing', ttlSeconds: 3600 }));
    const running = startTvm(['agent', '--grant', 'reports-read', '--endpoint', stack.api, '--token-file', tokenFile, '--listen', '127.0.0.1:0', '--auth-token-file', authFile], cleanEnv(dir));
    const out = await running.waitFor(/AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=.*\n/);
    const url = /AWS_CONTAINER_CREDENTIALS_FULL_URI=(\S+)/.exec(out)![1];
    const res = await fetch(url, { headers: { authorization: AUTH } });
    expect(res.status).toBe(200);
    const c = (await res.json()) as Served;
    expect(await usable(c)).toBe(true);
    running.child.kill('SIGINT');
    expect((await running.done).code).toBe(0);
    expect((await leasesOf(stack, 'agent-existing')).map((l) => l.status)).toEqual(['revoked']);
    expect(await usable(c)).toBe(false);
  });

  it('refuses to listen beyond loopback and needs an auth token file (exit 2)', async () => {
    const a = await startTvm(['agent', '--grant', 'reports-read', '--endpoint', stack.api, '--listen', '0.0.0.0:9000', '--auth-token-file', join(dir, 'x')], cleanEnv(dir)).done;
    expect(a.code).toBe(2);
    const b = await startTvm(['agent', '--grant', 'reports-read', '--endpoint', stack.api, '--listen', '127.0.0.1:0'], cleanEnv(dir)).done;
    expect(b.code).toBe(2);
  });
});

describe('examples/eks/report-agent-sidecar.yaml', () => {
  it('runs `tvm agent` with flags it accepts, and the app container points at its port and auth file', async () => {
    const { parseAllDocuments } = await import('yaml');
    const docs = parseAllDocuments(readFileSync('examples/eks/report-agent-sidecar.yaml', 'utf8')).map((d) => d.toJS());
    const pod = docs.find((d) => d.kind === 'Deployment').spec.template.spec;
    const sidecar = pod.initContainers.find((c: { name: string }) => c.name === 'tvm-agent');
    expect(sidecar.restartPolicy).toBe('Always');
    const args = sidecar.args as string[];
    expect(args[0]).toBe('agent');
    const { parseArgs } = await import('node:util');
    const { EXEC_OPTIONS } = await import('../../cli/commands/exec.js');
    const { listenPort } = await import('../../cli/commands/agent.js');
    const { values } = parseArgs({ args: args.slice(1), options: { ...EXEC_OPTIONS, listen: { type: 'string' }, 'auth-token-file': { type: 'string' } }, strict: true });
    const port = listenPort(values.listen as string);
    const app = pod.containers[0];
    const env = Object.fromEntries(app.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    expect(env.AWS_CONTAINER_CREDENTIALS_FULL_URI).toBe(`http://127.0.0.1:${port}/credentials`);
    expect(env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE).toBe(values['auth-token-file']);
    // The OIDC token is mounted into the sidecar only.
    const tokenVolume = pod.volumes.find((v: { projected?: unknown }) => v.projected).name;
    expect(app.volumeMounts.map((m: { name: string }) => m.name)).not.toContain(tokenVolume);
    expect(sidecar.volumeMounts.map((m: { name: string }) => m.name)).toContain(tokenVolume);
    expect(values['token-file']).toMatch(new RegExp(`^${sidecar.volumeMounts.find((m: { name: string }) => m.name === tokenVolume).mountPath}/`));
  });
});
