/**
 * A grant whose role is in another account, end to end on the local stack: vended credentials
 * read from the local S3, a revocation goes through that account's revoker role (the emulator
 * saw tvm assume it), and the next read is AccessDenied.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListRolePoliciesCommand } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { s3Get } from '../helpers/s3.js';
import { EXAMPLE_CONFIG, startTestStack, type TestStack } from '../helpers/stack.js';

const OTHER = '210987654321';
const GRANT_ROLE = `arn:aws:iam::${OTHER}:role/tvm/x-reports`;
const REVOKER = `arn:aws:iam::${OTHER}:role/tvm/tvm-revoker`;
// The own account's role of the same name: the deny must not land there.
const NAMESAKE = 'arn:aws:iam::123456789012:role/tvm/x-reports';

function crossAccountConfig(): string {
  const config = parse(EXAMPLE_CONFIG) as Record<string, any>;
  config.grants.push({
    name: 'x-reports',
    roleArn: GRANT_ROLE,
    durationSeconds: { default: 900, max: 3600 },
    sessionPolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::reports/${claims.team}/*'] }] },
  });
  config.accounts = { ...(config.accounts ?? {}), [OTHER]: { revokerRoleArn: REVOKER } };
  const read = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::reports/*'] }] };
  config.local.roles[GRANT_ROLE] = read;
  config.local.roles[NAMESAKE] = read;
  // What the RevokerRole construct allows there: only the inline policies of tvm's grant roles.
  config.local.roles[REVOKER] = {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Action: ['iam:PutRolePolicy', 'iam:GetRolePolicy', 'iam:DeleteRolePolicy', 'iam:ListRolePolicies'], Resource: [GRANT_ROLE] }],
  };
  return stringify(config);
}

function policies(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync('config/policies')) out[f] = readFileSync(join('config/policies', f), 'utf8');
  out['x-reports.cedar'] = `@id("dev-agents-read-x-reports")
permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"x-reports")
when { principal.issuer == "dev" && principal.claims has team };`;
  return out;
}

let stack: TestStack;

/** POST /v1/admin/revoke for one lease, with the stack's admin token. */
const adminRevoke = (leaseId: string, reason: string) =>
  fetch(`${stack.api}/v1/admin/revoke`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ leaseId, reason }),
  });

beforeAll(async () => {
  stack = await startTestStack({ yaml: crossAccountConfig(), policies: policies() });
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

describe('revocation of a grant in another account', () => {
  it('reads before, AccessDenied after, and the deny went through the revoker role there', async () => {
    const vended = await stack.vend({ grant: 'x-reports' });
    expect(vended.status).toBe(200);
    expect(vended.body.roleArn).toBe(GRANT_ROLE);
    const creds = vended.body.credentials;
    expect(await s3Get(stack.s3, creds, '/reports/analytics/q3.csv')).toMatchObject({ status: 200 });
    expect(stack.stack.sessionsOf(REVOKER)).toEqual([]);

    const res = await adminRevoke(vended.body.leaseId, 'cross-account test');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ revoked: 1, leaseIds: [vended.body.leaseId] });

    expect(await s3Get(stack.s3, creds, '/reports/analytics/q3.csv')).toMatchObject({ status: 403, code: 'AccessDenied' });
    expect(stack.stack.sessionsOf(REVOKER)).toHaveLength(1);
    // The role of the same name in tvm's own account got no deny.
    const own = await stack.runtime.iam.send(new ListRolePoliciesCommand({ RoleName: 'x-reports' }));
    expect(own.PolicyNames ?? []).toEqual([]);
  });

  it('a second revocation reuses the revoker session (cached), and still denies', async () => {
    const vended = await stack.vend({ grant: 'x-reports' });
    const creds = vended.body.credentials;
    expect(await s3Get(stack.s3, creds, '/reports/analytics/q3.csv')).toMatchObject({ status: 200 });
    const res = await adminRevoke(vended.body.leaseId, 'again');
    expect(res.status).toBe(200);
    expect(await s3Get(stack.s3, creds, '/reports/analytics/q3.csv')).toMatchObject({ status: 403, code: 'AccessDenied' });
    expect(stack.stack.sessionsOf(REVOKER)).toHaveLength(1);
  });
});
