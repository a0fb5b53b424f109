/**
 * Cross-account revocation in the templates: tvm's revoking functions may assume only the listed
 * revoker roles and edit only own-account grant roles; the RevokerRole construct trusts only
 * tvm's leases and sweep roles and may touch only the deny policy of the roles given.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../functions/core/check-config.js';
import { RevokerRole } from '../../infra/constructs/revoker-role.js';
import { actionsOf, fixtureConfig, statementsOfRole, synthTemplate } from './helpers.js';

const REVOKER = 'arn:aws:iam::210987654321:role/tvm/tvm-revoker';

describe('tvm stack with a grant in another account', () => {
  const { stack, template } = synthTemplate();
  const roleId = (n: 'leases' | 'sweep' | 'vend') => stack.getLogicalId(stack.tvm.roles[n].node.defaultChild as never);

  it.each(['leases', 'sweep'] as const)('%s may assume only the listed revoker roles and edit only own-account grant roles', (name) => {
    const statements = statementsOfRole(template, roleId(name));
    const assume = statements.filter((s) => actionsOf([s]).includes('sts:AssumeRole'));
    expect(assume.map((s) => s.Resource)).toEqual([REVOKER]);
    const iam = statements.find((s) => s.Sid === 'RevocationDenyPolicy')!;
    expect(iam.Resource).toEqual('arn:aws:iam::123456789012:role/tvm/reports-read');
  });

  it('vend may assume no revoker role', () => {
    const resources = JSON.stringify(statementsOfRole(template, roleId('vend')).map((s) => s.Resource));
    expect(resources).not.toContain('tvm-revoker');
  });
});

describe('RevokerRole', () => {
  const app = new App();
  const stack = new Stack(app, 'Other', { env: { account: '210987654321', region: 'us-east-1' } });
  new RevokerRole(stack, 'TvmRevoker', {
    revokingRoleArns: ['arn:aws:iam::123456789012:role/Tvm-LeasesRole', 'arn:aws:iam::123456789012:role/Tvm-SweepRole'],
    grantRoleArns: ['arn:aws:iam::210987654321:role/tvm/deploy'],
  });
  const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, { Type: string; Properties: Record<string, any> }> };
  const [role] = Object.values(template.Resources).filter((r) => r.Type === 'AWS::IAM::Role');

  it('is named as the config expects and trusts only the leases and sweep roles', () => {
    expect(role.Properties.RoleName).toBe('tvm-revoker');
    expect(role.Properties.Path).toBe('/tvm/');
    const principals = role.Properties.AssumeRolePolicyDocument.Statement.flatMap((s: any) => [s.Principal.AWS].flat());
    expect(principals.sort()).toEqual(['arn:aws:iam::123456789012:role/Tvm-LeasesRole', 'arn:aws:iam::123456789012:role/Tvm-SweepRole']);
  });

  it('may only put, get, delete and list inline policies on the grant roles', () => {
    const statements = role.Properties.Policies.flatMap((p: any) => p.PolicyDocument.Statement);
    expect(statements).toEqual([
      {
        Sid: 'RevocationDenyPolicy',
        Effect: 'Allow',
        Action: ['iam:DeleteRolePolicy', 'iam:GetRolePolicy', 'iam:ListRolePolicies', 'iam:PutRolePolicy'],
        Resource: 'arn:aws:iam::210987654321:role/tvm/deploy',
      },
    ]);
  });
});

describe('the config check (tvm policy check and synth)', () => {
  it('refuses a grant whose role is in an account neither own nor listed', () => {
    const config = fixtureConfig();
    const problems = checkConfig({ ...config, accounts: {} });
    expect(problems).toEqual([expect.objectContaining({ path: 'grants[1].roleArn', message: expect.stringContaining('210987654321') })]);
  });

  it('accepts it once the account is listed with its revoker role, and refuses a revoker role in another account', () => {
    const config = fixtureConfig();
    expect(checkConfig(config)).toEqual([]);
    const wrong = checkConfig({ ...config, accounts: { '210987654321': { revokerRoleArn: 'arn:aws:iam::999999999999:role/tvm/tvm-revoker' } } });
    expect(wrong).toEqual([expect.objectContaining({ path: 'accounts.210987654321.revokerRoleArn' })]);
  });
});
