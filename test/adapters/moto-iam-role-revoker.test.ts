/**
 * The revoker in two accounts, against moto (an AWS emulator nobody here wrote): a grant role in
 * tvm's own account is edited with the function's own IAM client; one in another account through
 * that account's revoker role, assumed with STS (moto runs requests signed with assumed-role
 * credentials in the role's account, and `x-moto-account-id` creates resources in another).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateRoleCommand, GetRolePolicyCommand, IAMClient, ListRolePoliciesCommand } from '@aws-sdk/client-iam';
import { STSClient } from '@aws-sdk/client-sts';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crossAccountIam } from '../../functions/adapters/cross-account-iam.js';
import { IamRoleRevoker } from '../../functions/adapters/iam-role-revoker.js';
import type { DenyEntry } from '../../functions/core/ports.js';
import { ensureTable } from '../../local/dynamo.js';
import { hasMoto, MOTO_ACCOUNT, MOTO_CREDENTIALS, startMoto, type Moto } from '../helpers/moto.js';

const OWN = MOTO_ACCOUNT;
const OTHER = '210987654321';
const STRANGER = '333344445555';
const POLICY = 'tvm-revocations';
const REGION = 'us-east-1';
const clock = { now: () => Date.now() };

let moto: Moto;
let ddb: DynamoDBDocumentClient;
let stsCalls = 0;

/** An IAM client of moto acting in `account` (the x-moto-account-id header), or the default one. */
function iamIn(account?: string): IAMClient {
  const client = new IAMClient({ region: REGION, endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
  if (account) {
    client.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = account;
        return next(args);
      },
      { step: 'build', name: 'motoAccount' },
    );
  }
  return client;
}

const trust = (principal: string) =>
  JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: principal }, Action: 'sts:AssumeRole' }] });

async function createRole(account: string, name: string, principal = `arn:aws:iam::${OWN}:root`) {
  await iamIn(account).send(new CreateRoleCommand({ RoleName: name, Path: '/tvm/', AssumeRolePolicyDocument: trust(principal) }));
  return `arn:aws:iam::${account}:role/tvm/${name}`;
}

const entry = (sessionName: string): DenyEntry => ({ kind: 'session', sessionName, expiresAt: Math.floor(Date.now() / 1000) + 900, issued: true });

function revoker() {
  const sts = new STSClient({ region: REGION, endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
  const send = sts.send.bind(sts);
  sts.send = ((cmd: never) => {
    stsCalls++;
    return send(cmd);
  }) as typeof sts.send;
  const iamFor = crossAccountIam({
    accounts: { [OTHER]: { revokerRoleArn: `arn:aws:iam::${OTHER}:role/tvm/tvm-revoker` } },
    ownAccount: OWN,
    sts,
    clock,
    iamClient: (credentials) => new IAMClient({ region: REGION, endpoint: moto.endpoint, credentials }),
  });
  return new IamRoleRevoker(iamIn(), ddb, 'tvm', { policyName: POLICY, clock, iamFor });
}

async function denyPolicyOf(account: string, roleName: string): Promise<string | undefined> {
  const iam = iamIn(account);
  const names = (await iam.send(new ListRolePoliciesCommand({ RoleName: roleName }))).PolicyNames ?? [];
  if (!names.includes(POLICY)) return undefined;
  return decodeURIComponent((await iam.send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: POLICY }))).PolicyDocument!);
}

const withMoto = hasMoto('the revoker in two accounts against moto');
describe.skipIf(!withMoto)('IamRoleRevoker across accounts (moto)', () => {
  beforeAll(async () => {
    moto = await startMoto();
    const client = new DynamoDBClient({ region: REGION, endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
    await ensureTable(client, 'tvm');
    ddb = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    await createRole(OWN, 'reports-read');
    await createRole(OWN, 'deploy'); // same name as the other account's grant role: must stay untouched
    await createRole(OTHER, 'deploy');
    await createRole(OTHER, 'tvm-revoker');
  }, 60_000);
  afterAll(() => moto?.close());

  it('a role in the own account gets the deny with the own client', async () => {
    await revoker().deny(`arn:aws:iam::${OWN}:role/tvm/reports-read`, [entry('lease-own')]);
    expect(await denyPolicyOf(OWN, 'reports-read')).toContain('lease-own');
  });

  it("a role in the other account gets the deny through that account's revoker role, and the own account's namesake none", async () => {
    const rv = revoker();
    stsCalls = 0;
    await rv.deny(`arn:aws:iam::${OTHER}:role/tvm/deploy`, [entry('lease-other-1')]);
    await rv.deny(`arn:aws:iam::${OTHER}:role/tvm/deploy`, [entry('lease-other-2')]);
    const doc = await denyPolicyOf(OTHER, 'deploy');
    expect(doc).toContain('lease-other-1');
    expect(doc).toContain('lease-other-2');
    expect(await denyPolicyOf(OWN, 'deploy')).toBeUndefined();
    // The revoker role is assumed once and its credentials reused.
    expect(stsCalls).toBe(1);
  });

  it('a role in an account neither own nor listed is refused, and nothing is written', async () => {
    await createRole(STRANGER, 'deploy');
    await expect(revoker().deny(`arn:aws:iam::${STRANGER}:role/tvm/deploy`, [entry('lease-stranger')])).rejects.toMatchObject({ code: 'upstream_unavailable' });
    expect(await denyPolicyOf(STRANGER, 'deploy')).toBeUndefined();
  });
});
