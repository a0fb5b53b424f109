/**
 * `tvm exec` with boto3, a client nobody here wrote: a Python agent with no AWS code of its own
 * beyond `boto3.client(...)` runs under `tvm exec --grant reports-read -- python3 …`. Twenty calls
 * make exactly one lease; when the script ends the lease is revoked and its credentials stop
 * working; the script's exit code comes back out. Also measures the "before": boto3 on container
 * credentials straight at the stack makes a lease per call (botocore's 900 s advisory window).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needTool } from '../helpers/tools.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { cleanEnv, leasesOf, mayRead, runTvm } from './exec-helpers.js';
import { spawn } from 'node:child_process';

const hasBoto3 = needTool('python3', 'tvm exec with boto3') && needTool('aws', 'boto3 comes with the AWS CLI on the image');

let stack: TestStack;
let dir: string;

/** A boto3 agent: N STS calls, then what it used, as JSON on stdout. */
const AGENT = `
import boto3, json, os, sys
session = boto3.Session()
sts = session.client("sts", endpoint_url=os.environ["TEST_STS"], region_name="us-east-1")
n = int(sys.argv[1])
arns = set()
for _ in range(n):
    arns.add(sts.get_caller_identity()["Arn"])
creds = session.get_credentials()
c = creds.get_frozen_credentials()
print(json.dumps({"arns": sorted(arns), "method": creds.method,
                  "AccessKeyId": c.access_key, "SecretAccessKey": c.secret_key, "SessionToken": c.token}))
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
`;

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
  it('20 boto3 calls make exactly one lease, revoked when the script ends; its credentials then stop working', async () => {
    const sub = 'boto3-agent';
    const file = await tokenFile(sub);
    const ran = await runTvm(
      ['exec', '--grant', 'reports-read', '--endpoint', stack.api, '--token-file', file, '--task', 'nightly', '--', 'python3', join(dir, 'agent.py'), '20'],
      cleanEnv(dir, { TEST_STS: stack.sts }),
    );
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    const used = JSON.parse(ran.stdout) as { arns: string[]; method: string; AccessKeyId: string; SecretAccessKey: string; SessionToken: string };
    expect(used.method).toBe('container-role');
    const leases = await leasesOf(stack, sub);
    expect(leases).toHaveLength(1);
    expect(used.arns).toEqual([`arn:aws:sts::123456789012:assumed-role/reports-read/tvm-${leases[0].leaseId}`]);
    expect(leases[0].status).toBe('revoked');
    expect(leases[0].accessKeyId).toBe(used.AccessKeyId);
    expect(await mayRead(stack, used, 'arn:aws:s3:::reports/analytics/q3.csv')).toEqual({ allowed: false, reason: 'ExplicitlyDenied' });
  });

  it("passes a failing script's exit code through, and still revokes", async () => {
    const sub = 'boto3-failing';
    const ran = await runTvm(
      ['exec', '--grant', 'reports-read', '--endpoint', stack.api, '--token-file', await tokenFile(sub), '--', 'python3', join(dir, 'agent.py'), '1', '3'],
      cleanEnv(dir, { TEST_STS: stack.sts }),
    );
    expect(ran.code).toBe(3);
    const leases = await leasesOf(stack, sub);
    expect(leases.map((l) => l.status)).toEqual(['revoked']);
  });

  it('before exec (measured, 20 calls): boto3 on container credentials straight at the stack makes a lease per call; ?durationSeconds=3600 makes one', async () => {
    const perCall = async (sub: string, query: string) => {
      const file = await tokenFile(sub);
      const env = {
        ...cleanEnv(dir, { TEST_STS: stack.sts }),
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
    console.info(`leases for 20 boto3 calls: container route with the grant default (900 s) ${before}, with ?durationSeconds=3600 ${withDuration}, tvm exec 1`);
    expect(before).toBeGreaterThanOrEqual(20);
    expect(withDuration).toBe(1);
  });
});
