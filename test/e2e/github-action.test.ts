/**
 * The GitHub vend action's script, run as the runner runs it, against the real local stack: a
 * stub of GitHub's token service on 127.0.0.1 hands out tokens shaped like GitHub's (claims and
 * `sub` format) minted by the stack's dev issuer; the script vends, exports the credentials, and
 * its post step revokes the lease.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION_SCRIPT, parseCommandFile } from '../infra/action-helpers.js';
import { EXAMPLE_CONFIG, startTestStack, type TestStack } from '../helpers/stack.js';

const RUNTIME_BEARER = 'runtime-bearer-for-this-job';

/** The claims GitHub Actions puts in a job's OIDC token (a push to main). */
const GITHUB_CLAIMS = {
  sub: 'repo:acme/app:ref:refs/heads/main',
  repository: 'acme/app',
  repository_id: '123456',
  repository_owner: 'acme',
  repository_owner_id: '654321',
  repository_visibility: 'private',
  ref: 'refs/heads/main',
  ref_type: 'branch',
  ref_protected: 'true',
  sha: 'd6cd1e2bd19e03a81132a23b2025920577f84e37',
  workflow: 'release',
  workflow_ref: 'acme/app/.github/workflows/release.yml@refs/heads/main',
  workflow_sha: 'd6cd1e2bd19e03a81132a23b2025920577f84e37',
  job_workflow_ref: 'acme/app/.github/workflows/release.yml@refs/heads/main',
  job_workflow_sha: 'd6cd1e2bd19e03a81132a23b2025920577f84e37',
  event_name: 'push',
  actor: 'octocat',
  actor_id: '1',
  run_id: '9876543210',
  run_number: '42',
  run_attempt: '1',
  runner_environment: 'github-hosted',
};

const POLICIES = {
  'ci.cedar': `
@id("ci-deploys-artifacts")
permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"deploy")
when {
  principal.issuer == "dev" &&
  principal.claims has repository_id && principal.claims.repository_id == "123456" &&
  principal.claims has job_workflow_ref &&
  principal.claims.job_workflow_ref == "acme/app/.github/workflows/release.yml@refs/heads/main"
};
@id("self-revoke")
permit (principal, action == Tvm::Action::"revoke", resource);
`,
};

let stack: TestStack;
let tokenService: Server;
let tokenUrl: string;
const audiencesAsked: (string | null)[] = [];
let dir: string;

beforeAll(async () => {
  stack = await startTestStack({ yaml: EXAMPLE_CONFIG, policies: POLICIES });
  tokenService = createServer(async (req, res) => {
    if (req.headers.authorization !== `Bearer ${RUNTIME_BEARER}`) return res.writeHead(401).end();
    const aud = new URL(req.url!, 'http://127.0.0.1').searchParams.get('audience');
    audiencesAsked.push(aud);
    const { sub, ...claims } = GITHUB_CLAIMS;
    const value = await stack.mintToken(claims, { sub, aud: aud ?? undefined });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: 1, value }));
  });
  await new Promise<void>((r) => tokenService.listen(0, '127.0.0.1', r));
  tokenUrl = `http://127.0.0.1:${(tokenService.address() as AddressInfo).port}/_apis/token?api-version=2.0`;
  dir = mkdtempSync(join(tmpdir(), 'tvm-gha-'));
  for (const f of ['env', 'state', 'output']) writeFileSync(join(dir, f), '');
}, 60_000);

afterAll(async () => {
  tokenService?.close();
  await stack?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function runAction(extra: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [ACTION_SCRIPT], {
      env: {
        PATH: process.env.PATH,
        GITHUB_ENV: join(dir, 'env'),
        GITHUB_STATE: join(dir, 'state'),
        GITHUB_OUTPUT: join(dir, 'output'),
        ACTIONS_ID_TOKEN_REQUEST_URL: tokenUrl,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: RUNTIME_BEARER,
        INPUT_ENDPOINT: stack.api,
        INPUT_GRANT: 'deploy',
        INPUT_AUDIENCE: 'tvm',
        INPUT_REVOKE: 'true',
        INPUT_TASK: 'release',
        ...extra,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

describe('GitHub vend action against the local stack', () => {
  let leaseId = '';

  it('vends with a GitHub-shaped token and exports working, masked credentials', async () => {
    const r = await runAction({});
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(audiencesAsked).toEqual(['tvm']);

    const env = parseCommandFile(readFileSync(join(dir, 'env'), 'utf8'));
    expect(env.AWS_ACCESS_KEY_ID).toMatch(/^ASIA/);
    expect(env.AWS_SECRET_ACCESS_KEY).toBeTruthy();
    expect(env.AWS_SESSION_TOKEN).toBeTruthy();
    const lines = r.stdout.split('\n');
    expect(lines).toContain(`::add-mask::${env.AWS_SECRET_ACCESS_KEY}`);
    expect(lines).toContain(`::add-mask::${env.AWS_SESSION_TOKEN}`);
    const visible = lines.filter((l) => !l.startsWith('::add-mask::')).join('\n');
    expect(visible).not.toContain(env.AWS_SECRET_ACCESS_KEY);
    expect(visible).not.toContain(env.AWS_SESSION_TOKEN);

    const state = parseCommandFile(readFileSync(join(dir, 'state'), 'utf8'));
    leaseId = state.leaseId;
    expect(leaseId).toBeTruthy();

    const { sub, ...claims } = GITHUB_CLAIMS;
    const token = await stack.mintToken(claims, { sub });
    const lease = await fetch(`${stack.api}/v1/leases/${leaseId}`, { headers: { authorization: `Bearer ${token}` } });
    expect(lease.status).toBe(200);
    const body = (await lease.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ leaseId, status: 'active', grant: 'deploy', accessKeyId: env.AWS_ACCESS_KEY_ID });
    expect(String(body.principal)).toBe(`dev|${GITHUB_CLAIMS.sub}`);
  });

  it('the post step revokes the lease', async () => {
    expect(leaseId).toBeTruthy();
    // The self-revoke route is served: an unauthenticated call is refused (401), not missing (404).
    const probe = await fetch(`${stack.api}/v1/leases/${leaseId}/revoke`, { method: 'POST' });
    expect(probe.status).toBe(401);
    const r = await runAction({ STATE_isPost: 'true', STATE_leaseId: leaseId, STATE_endpoint: stack.api });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('::warning::');

    const { sub, ...claims } = GITHUB_CLAIMS;
    const token = await stack.mintToken(claims, { sub });
    const lease = await fetch(`${stack.api}/v1/leases/${leaseId}`, { headers: { authorization: `Bearer ${token}` } });
    expect(((await lease.json()) as { status: string }).status).toBe('revoked');
  });

  it('a workflow the policy does not pin is refused, and nothing is exported', async () => {
    writeFileSync(join(dir, 'env'), '');
    const r = await runAction({ INPUT_GRANT: 'reports-read' });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('::error::tvm: tvm vend: HTTP 403 access_denied');
    expect(readFileSync(join(dir, 'env'), 'utf8')).toBe('');
  });
});
