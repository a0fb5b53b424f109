/**
 * The `tvm` a user installs from a clone, as the README shows (`npm install -g .`, here into a
 * temporary prefix so the machine's global npm is untouched), used from a folder outside the
 * repository: `credential_process` in an AWS config, and `tvm exec` (an S3 read the grant allows,
 * then the lease revoked). And no doc or example tells a user to run `npx tvm` (outside the
 * repository it runs an unrelated public package).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needTool } from '../helpers/tools.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { ALLOWED_KEY, ALLOWED_TEXT, cleanEnv, leasesOf } from './exec-helpers.js';

const run = promisify(execFile);
const REPO = resolve('.');
let stack: TestStack;
let prefix: string;
let outside: string;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

describe('docs and examples', () => {
  it('never tell a user to run `npx tvm …` (they may warn against it)', () => {
    const docs = ['README.md', ...['docs', 'examples', 'config/examples', '.github'].flatMap((d) => files(d))];
    const offenders = docs.filter((f) => /\bnpx\s+tvm\s+[a-z-]/.test(readFileSync(f, 'utf8')));
    expect(offenders).toEqual([]);
  });
});

describe.skipIf(!needTool('aws', 'credential_process with the installed tvm'))('the installed tvm, outside the repository', () => {
  beforeAll(async () => {
    prefix = mkdtempSync(join(tmpdir(), 'tvm-prefix-'));
    outside = mkdtempSync(join(tmpdir(), 'tvm-outside-'));
    expect(relative(REPO, outside).startsWith('..')).toBe(true);
    await run('npm', ['install', '-g', REPO, '--prefix', prefix, '--no-audit', '--no-fund', '--offline'], { cwd: outside, env: { ...process.env, npm_config_update_notifier: 'false' } });
    stack = await startTestStack();
  }, 180_000);
  afterAll(async () => {
    await stack?.close();
  });

  const env = () => cleanEnv(outside, { PATH: `${join(prefix, 'bin')}:${process.env.PATH}` });

  it('is on the PATH and answers --help from another folder', async () => {
    const help = await run('tvm', ['--help'], { cwd: outside, env: env() });
    expect(help.stdout).toMatch(/usage: tvm <command>/);
  });

  it('serves a credential_process profile to the AWS CLI from a folder outside the repository', async () => {
    const tokenFile = join(outside, 'token');
    writeFileSync(tokenFile, await stack.mintToken({ team: 'analytics' }, { sub: 'installed-cp', ttlSeconds: 3600 }));
    const config = join(outside, 'aws-config');
    writeFileSync(config, `[profile agent]\ncredential_process = tvm credential-process --grant reports-read --duration 3600 --endpoint ${stack.api} --token-file ${tokenFile}\nregion = us-east-1\n`);
    const who = await run('aws', ['sts', 'get-caller-identity', '--profile', 'agent', '--endpoint-url', stack.sts, '--query', 'Arn', '--output', 'text'], {
      cwd: outside,
      env: { ...env(), AWS_CONFIG_FILE: config },
    });
    const leases = await leasesOf(stack, 'installed-cp');
    expect(leases).toHaveLength(1);
    expect(who.stdout.trim()).toBe(`arn:aws:sts::123456789012:assumed-role/reports-read/tvm-${leases[0].leaseId}`);
  });

  it('runs `tvm exec` from a folder outside the repository: the AWS CLI reads the allowed object, the lease is revoked at exit', async () => {
    const tokenFile = join(outside, 'token-exec');
    writeFileSync(tokenFile, await stack.mintToken({ team: 'analytics' }, { sub: 'installed-exec', ttlSeconds: 3600 }));
    const ran = await run('tvm', ['exec', '--grant', 'reports-read', '--endpoint', stack.api, '--token-file', tokenFile, '--', 'aws', 's3', 'cp', `s3://${ALLOWED_KEY}`, '-', '--endpoint-url', stack.s3], {
      cwd: outside,
      env: env(),
    });
    expect(ran.stdout).toBe(ALLOWED_TEXT);
    expect((await leasesOf(stack, 'installed-exec')).map((l) => l.status)).toEqual(['revoked']);
  });
});
