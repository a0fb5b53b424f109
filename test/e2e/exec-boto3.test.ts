/**
 * `tvm exec` with boto3, a client nobody here wrote: a Python agent with no AWS code of its own
 * beyond `boto3.client(...)` runs under `tvm exec --grant reports-read -- python3 …`. Twenty rounds
 * of calls (a GetObject at the local S3, an STS call) make exactly one lease; when the script ends
 * the lease is revoked and the credentials the script's SDK held are AccessDenied by the local S3;
 * the script's exit code comes back out. Also measures the "before": boto3 on container
 * credentials straight at the stack makes a lease per call (botocore's 900 s advisory window).
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needTool } from '../helpers/tools.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { ALLOWED_KEY, ALLOWED_TEXT, cleanEnv, leasesOf, runTvm, s3Read } from './exec-helpers.js';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

const hasBoto3 = needTool('python3', 'tvm exec with boto3') && needTool('aws', 'boto3 comes with the AWS CLI on the image');

let stack: TestStack;
let dir: string;

/**
 * A boto3 agent: N rounds of a GetObject the grant allows (the local S3, found through the standard
 * AWS_ENDPOINT_URL_S3) and an STS call, one GetObject of another team's prefix, then what it read
 * and the credentials its SDK used, as JSON on stdout.
 */
const AGENT = `
import boto3, json, os, sys
from botocore.exceptions import ClientError
session = boto3.Session()
s3 = session.client("s3")
sts = session.client("sts", endpoint_url=os.environ["TEST_STS"], region_name="us-east-1")
n = int(sys.argv[1])
arns, bodies = set(), set()
for _ in range(n):
    bodies.add(s3.get_object(Bucket="reports", Key="analytics/q3.csv")["Body"].read().decode())
    arns.add(sts.get_caller_identity()["Arn"])
try:
    s3.get_object(Bucket="reports", Key="finance/q3.csv")
    other = "allowed"
except ClientError as e:
    other = e.response["Error"]["Code"]
creds = session.get_credentials()
c = creds.get_frozen_credentials()
print(json.dumps({"arns": sorted(arns), "bodies": sorted(bodies), "other": other, "method": creds.method,
                  "AccessKeyId": c.access_key, "SecretAccessKey": c.secret_key, "SessionToken": c.token}))
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
`;
const agentEnv = () => cleanEnv(dir, { TEST_STS: stack.sts, AWS_ENDPOINT_URL_S3: stack.s3 });
interface Used {
  arns: string[];
  bodies: string[];
  other: string;
  method: string;
  AccessKeyId: string;
  SecretAccessKey: string;
  SessionToken: string;
}

async function tokenFile(sub: string): Promise<string> {
  const file = join(dir, `token-${sub}`);
  writeFileSync(file, await stack.mintToken({ team: 'analytics' }, { sub, ttlSeconds: 3600 }));
  return file;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tvm-exec-boto3-'));
  writeFileSync(join(dir, 'agent.py'), AGENT);
  stack = await startTestStack();
});
afterAll(async () => {
  await stack?.close();
});

describe.skipIf(!hasBoto3)('tvm exec -- python3 (boto3)', () => {
  it("20 rounds of boto3 calls (S3 and STS) make exactly one lease, revoked when the script ends: reads the team's prefix, refused another's, and its credentials are AccessDenied after", async () => {
    const sub = 'boto3-agent';
    const file = await tokenFile(sub);
    const ran = await runTvm(['exec', '--grant', 'reports-read', '--endpoint', stack.api, '--token-file', file, '--task', 'nightly', '--', 'python3', join(dir, 'agent.py'), '20'], agentEnv());
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    const used = JSON.parse(ran.stdout) as Used;
    expect(used.method).toBe('container-role');
    expect(used.bodies).toEqual([ALLOWED_TEXT]);
    expect(used.other).toBe('AccessDenied');
    const leases = await leasesOf(stack, sub);
    expect(leases).toHaveLength(1);
    expect(used.arns).toEqual([`arn:aws:sts::123456789012:assumed-role/reports-read/tvm-${leases[0].leaseId}`]);
    expect(leases[0].status).toBe('revoked');
    expect(leases[0].accessKeyId).toBe(used.AccessKeyId);
    expect(await s3Read(stack, used, ALLOWED_KEY)).toBe('AccessDenied');
  });

  it("passes a failing script's exit code through, and still revokes: its credentials are AccessDenied after", async () => {
    const sub = 'boto3-failing';
    const ran = await runTvm(['exec', '--grant', 'reports-read', '--endpoint', stack.api, '--token-file', await tokenFile(sub), '--', 'python3', join(dir, 'agent.py'), '1', '3'], agentEnv());
    expect(ran.code).toBe(3);
    const used = JSON.parse(ran.stdout) as Used;
    expect(used.bodies).toEqual([ALLOWED_TEXT]);
    const leases = await leasesOf(stack, sub);
    expect(leases.map((l) => l.status)).toEqual(['revoked']);
    expect(await s3Read(stack, used, ALLOWED_KEY)).toBe('AccessDenied');
  });

  it('before exec (measured, 20 rounds = 41 calls): boto3 on container credentials straight at the stack makes a lease per call; ?durationSeconds=3600 makes one', async () => {
    const perCall = async (sub: string, query: string) => {
      const file = await tokenFile(sub);
      const env = {
        ...agentEnv(),
        AWS_CONTAINER_CREDENTIALS_FULL_URI: `${stack.api}/v1/credentials/reports-read${query}`,
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: file,
      };
      const child = spawn('python3', [join(dir, 'agent.py'), '20'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const code = await new Promise((r) => child.on('close', r));
      expect(code).toBe(0);
      return (await leasesOf(stack, sub)).length;
    };
    const before = await perCall('boto3-direct', '');
    const withDuration = await perCall('boto3-direct-3600', '?durationSeconds=3600');
    console.info(`leases for 41 boto3 calls (20 rounds of S3 + STS, one refused read): container route with the grant default (900 s) ${before}, with ?durationSeconds=3600 ${withDuration}, tvm exec 1`);
    expect(before).toBeGreaterThanOrEqual(20);
    expect(withDuration).toBe(1);
  });
});

describe.skipIf(!hasBoto3)('the README\'s Python agent (examples/python-agent/agent.py) under tvm exec', () => {
  const EXAMPLE = 'examples/python-agent/agent.py';
  const readme = readFileSync('README.md', 'utf8');
  const command = ['exec', '--grant', 'reports-read', '--token-file', '/tmp/tvm-token', '--', 'python3', EXAMPLE];

  it('is the file and command the README shows', () => {
    expect(readme).toContain(`tvm ${command.join(' ')}\n`);
    expect(readme).toContain(`tvm ${command.join(' ')} --leak /tmp/leaked.env\n`);
    expect(readme).toContain('export AWS_ENDPOINT_URL_S3=');
  });

  it('reads the report with one lease, revoked at exit; the credentials it held are then AccessDenied (leaked copy and all)', async () => {
    const sub = 'readme-agent';
    const leak = join(dir, 'leaked.env');
    const args = [...command.slice(0, 3), '--endpoint', stack.api, '--token-file', await tokenFile(sub), ...command.slice(5)];
    const env = cleanEnv(dir, { AWS_ENDPOINT_URL_S3: stack.s3 });
    const plain = await runTvm(args, env);
    expect(plain.stderr).toBe('');
    expect(plain).toMatchObject({ code: 0, stdout: ALLOWED_TEXT });

    const leaking = await runTvm([...args, '--leak', leak], env);
    expect(leaking).toMatchObject({ code: 0, stdout: ALLOWED_TEXT });
    expect(statSync(leak).mode & 0o777).toBe(0o600);
    const leases = await leasesOf(stack, sub);
    expect(leases.map((l) => l.status)).toEqual(['revoked', 'revoked']);
    // The README's own check, with the AWS CLI, on the copy the agent wrote out.
    const check = await run('sh', ['-c', `. ${leak} && aws s3api get-object --bucket reports --key analytics/q3.csv /dev/stdout --endpoint-url ${stack.s3}`], { env: cleanEnv(dir) }).catch((e) => e);
    expect(check.code).not.toBe(0);
    expect(String(check.stderr)).toMatch(/An error occurred \(AccessDenied\) when calling the GetObject operation: .*with an explicit deny/);
    const copied = /AWS_ACCESS_KEY_ID=(\S+)/.exec(readFileSync(leak, 'utf8'))![1];
    expect(leases.map((l) => l.accessKeyId)).toContain(copied);
  });
});
