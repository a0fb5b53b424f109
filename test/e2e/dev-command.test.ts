/**
 * `npm start` as a user runs it: `tvm dev` in its own process, then `tvm token`, `tvm vend`, the
 * AWS CLI, `tvm leases`; SIGTERM stops it cleanly and a restart on the same data keeps the leases.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BIN = resolve('cli/bin.mjs');
const data = mkdtempSync(join(tmpdir(), 'tvm-dev-'));
const env = {
  PATH: process.env.PATH ?? '',
  HOME: data,
  TVM_DATA: data,
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

interface Dev {
  child: ChildProcess;
  out: string[];
  exited: Promise<number | null>;
}

async function startDev(): Promise<Dev> {
  const file = join(data, 'endpoints.json');
  const before = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const child = spawn('node', [BIN, 'dev', '--port', '0', '--data', data], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  child.stdout!.on('data', (d) => out.push(String(d)));
  child.stderr!.on('data', (d) => out.push(String(d)));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  for (let i = 0; i < 900; i++) {
    if (out.join('').includes('tvm dev is running') && existsSync(file) && readFileSync(file, 'utf8') !== before) return { child, out, exited };
    if (child.exitCode !== null) throw new Error(`tvm dev exited: ${out.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`tvm dev did not start: ${out.join('')}`);
}

const tvm = (args: string[], extra: Record<string, string> = {}) => run('node', [BIN, ...args], { env: { ...env, ...extra } });

let dev: Dev | undefined;
afterAll(() => {
  dev?.child.kill('SIGKILL');
});

describe('tvm dev', () => {
  let leaseId = '';

  it('starts, writes endpoints.json, and serves a vend the AWS CLI can use', async () => {
    dev = await startDev();
    const endpoints = JSON.parse(readFileSync(join(data, 'endpoints.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(endpoints).sort()).toEqual(['adminToken', 'api', 'dynamodb', 'iam', 'identity', 'issuer', 's3', 'sts', 'vendors']);
    expect(dev.out.join('')).toContain(String(endpoints.adminToken));
    // The banner's one-time console link: it opens the console once, and is in no file.
    const link = new RegExp(`console\\s+(${String(endpoints.api).replace(/[.]/g, '\\.')}/console\\?code=([A-Za-z0-9_-]+))`).exec(dev.out.join(''));
    expect(link, 'the banner prints the console link').not.toBeNull();
    expect(readFileSync(join(data, 'endpoints.json'), 'utf8')).not.toContain(link![2]);
    expect((await fetch(link![1], { redirect: 'manual' })).status).toBe(303);
    expect((await fetch(link![1], { redirect: 'manual' })).status).toBe(403);

    const tokenFile = join(data, 'token');
    await tvm(['token', '--claim', 'team=analytics', '--out', tokenFile]);
    expect(readFileSync(tokenFile, 'utf8')).not.toMatch(/\n$/);
    const vended = await tvm(['vend', '--grant', 'reports-read', '--format', 'env', '--task', 'demo'], { TVM_TOKEN_FILE: tokenFile });
    // --format env single-quotes every value (POSIX: '\'' for a quote inside): unquote as sh would.
    const unquote = (v: string) => (v.startsWith("'") ? v.slice(1, -1).replaceAll(`'\\''`, "'") : v);
    const vars = Object.fromEntries([...vended.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], unquote(m[2])]));
    leaseId = vars.TVM_LEASE_ID;
    const who = await run('aws', ['sts', 'get-caller-identity', '--endpoint-url', String(endpoints.sts), '--region', 'us-east-1'], {
      env: { ...env, AWS_ACCESS_KEY_ID: vars.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: vars.AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: vars.AWS_SESSION_TOKEN },
    });
    expect(JSON.parse(who.stdout).Arn).toContain(`tvm-${leaseId}`);

    const listed = await tvm(['leases', '--status', 'active']);
    expect(listed.stdout).toContain(leaseId);
    const shown = await tvm(['leases', 'show', leaseId]);
    expect(shown.stdout).toMatch(/status\s+active/);
    expect(shown.stdout).toMatch(/issued/);

    // The service's own log lines never carry what it handed out.
    const logs = dev.out.join('');
    for (const secret of [vars.AWS_SECRET_ACCESS_KEY, vars.AWS_SESSION_TOKEN, readFileSync(tokenFile, 'utf8')]) expect(logs.includes(secret)).toBe(false);
  }, 180_000);

  it('stops cleanly on SIGTERM and keeps the leases across a restart', async () => {
    dev!.child.kill('SIGTERM');
    expect(await dev!.exited).toBe(0);
    dev = await startDev();
    const shown = await tvm(['leases', 'show', leaseId]);
    expect(shown.stdout).toContain(leaseId);
    const token = await tvm(['token', '--claim', 'team=analytics']);
    const again = await tvm(['vend', '--grant', 'reports-read'], { TVM_TOKEN: token.stdout.trim() });
    expect(JSON.parse(again.stdout).leaseId).toMatch(/^L/);
    dev.child.kill('SIGINT');
    expect(await dev.exited).toBe(0);
    dev = undefined;
  }, 180_000);
});

/** Waits (bounded) until `check` holds; answers whether it did. */
async function eventually(check: () => boolean | Promise<boolean>, tries = 150): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Starts a process and collects its output; resolves once `ready` holds. */
async function startUntil(cmd: string, args: string[], opts: { cwd?: string; env: Record<string, string> }, ready: (out: string) => boolean) {
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  child.stdout!.on('data', (d) => out.push(String(d)));
  child.stderr!.on('data', (d) => out.push(String(d)));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  if (!(await eventually(() => ready(out.join('')) || child.exitCode !== null, 1200)) || child.exitCode !== null) {
    child.kill('SIGKILL');
    throw new Error(`did not start: ${out.join('')}`);
  }
  return { child, out, exited };
}

const CONFIG = resolve('config/tvm.yaml');
const { TVM_DATA: _data, ...withoutData } = env;
const started: number[] = [];
afterAll(() => {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

describe('tvm dev and its neighbours', () => {
  it('stops with `npm start` when npm gets SIGTERM: no orphaned server, its port closed, its files gone', async () => {
    const home = mkdtempSync(join(tmpdir(), 'tvm-npm-home-'));
    const pointerFile = join(home, '.local', 'state', 'tvm', 'local-stack.json');
    const npm = await startUntil('npm', ['start', '--', '--ephemeral', '--port', '0'], { env: { ...withoutData, HOME: home } }, (o) => o.includes('tvm dev is running') && existsSync(pointerFile));
    const pointer = JSON.parse(readFileSync(pointerFile, 'utf8')) as { data: string; pid: number; api: string };
    started.push(pointer.pid);
    expect(pointer.pid).not.toBe(npm.child.pid);
    expect(existsSync(join(pointer.data, 'endpoints.json'))).toBe(true);
    expect((await fetch(`${pointer.api}/v1/leases/x`)).status).toBe(401);

    npm.child.kill('SIGTERM');
    await npm.exited;
    expect(await eventually(() => !alive(pointer.pid), 300), 'the node server outlived npm').toBe(true);
    await expect(fetch(`${pointer.api}/v1/leases/x`)).rejects.toThrow();
    expect(existsSync(pointerFile)).toBe(false);
    expect(existsSync(pointer.data)).toBe(false);
  }, 240_000);

  it('two stacks on two data folders never touch each other’s files; the CLI finds a stack from below the repo or from anywhere', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'tvm-repo-'));
    const home = mkdtempSync(join(tmpdir(), 'tvm-home-'));
    const elsewhere = mkdtempSync(join(tmpdir(), 'tvm-elsewhere-'));
    const noPointer = { ...withoutData, HOME: mkdtempSync(join(tmpdir(), 'tvm-nohome-')) };
    const userEnv = { ...withoutData, HOME: home };
    const pointerFile = join(home, '.local', 'state', 'tvm', 'local-stack.json');
    const repoFile = join(repo, '.tvm', 'dev', 'endpoints.json');
    const endpointsOf = (out: string) => /endpoints\s+(\S+endpoints\.json)/.exec(out)?.[1];

    const main = await startUntil('node', [BIN, 'dev', '--port', '0', '--config', CONFIG], { cwd: repo, env: userEnv }, (o) => o.includes('tvm dev is running'));
    started.push(main.child.pid!);
    const repoEndpoints = readFileSync(repoFile, 'utf8');
    // From a folder below the repository, with no per-user pointer: found by walking up.
    const deeper = join(repo, 'docs', 'deeper');
    mkdirSync(deeper, { recursive: true });
    const listed = await run('node', [BIN, 'leases'], { cwd: deeper, env: noPointer });
    expect(listed.stderr).not.toMatch(/no endpoint|not running/);

    const e1 = await startUntil('node', [BIN, 'dev', '--ephemeral', '--port', '0', '--config', CONFIG], { cwd: repo, env: userEnv }, (o) => !!endpointsOf(o));
    started.push(e1.child.pid!);
    const e2 = await startUntil('node', [BIN, 'dev', '--ephemeral', '--port', '0', '--config', CONFIG], { cwd: repo, env: userEnv }, (o) => !!endpointsOf(o));
    started.push(e2.child.pid!);
    const [f1, f2] = [endpointsOf(e1.out.join(''))!, endpointsOf(e2.out.join(''))!];
    expect(f1).not.toBe(f2);
    expect(f1.startsWith(repo) || f2.startsWith(repo)).toBe(false);
    expect(readFileSync(repoFile, 'utf8')).toBe(repoEndpoints);
    const e2Endpoints = JSON.parse(readFileSync(f2, 'utf8')) as { issuer: string };
    expect(JSON.parse(readFileSync(pointerFile, 'utf8')).data).toBe(dirname(f2));

    e1.child.kill('SIGTERM');
    expect(await e1.exited).toBe(0);
    expect(existsSync(f1)).toBe(false);
    expect(existsSync(f2)).toBe(true);
    expect(readFileSync(repoFile, 'utf8')).toBe(repoEndpoints);
    // The pointer still names the second stack: from anywhere, the CLI reaches it.
    expect(JSON.parse(readFileSync(pointerFile, 'utf8')).data).toBe(dirname(f2));
    const token = await run('node', [BIN, 'token'], { cwd: elsewhere, env: userEnv });
    const iss = JSON.parse(Buffer.from(token.stdout.split('.')[1], 'base64url').toString()).iss as string;
    expect(iss).toBe(e2Endpoints.issuer);

    e2.child.kill('SIGTERM');
    expect(await e2.exited).toBe(0);
    expect(existsSync(pointerFile)).toBe(false);
    expect(readFileSync(repoFile, 'utf8')).toBe(repoEndpoints);
    main.child.kill('SIGTERM');
    expect(await main.exited).toBe(0);
    expect(existsSync(repoFile)).toBe(false);
  }, 400_000);
});
