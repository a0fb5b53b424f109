/**
 * What tvm's functions may do to the grant roles: vend assumes them; the revoking functions
 * (leases, sweep) edit tvm's deny policy on them, directly in tvm's own account and through each
 * other account's revoker role (`accounts.<id>.revokerRoleArn`, the `RevokerRole` construct).
 */
import { Aws } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { accountOf, type TvmConfig } from '../../functions/core/config.js';
import { ENV } from '../../functions/shared/env.js';
import { type BindableFunction, roleOf } from './permissions.js';

export interface GrantRoles {
  /** Every grant's `roleArn`, and any given beyond the config. */
  readonly roleArns: string[];
  /** `accounts` of the config: the other accounts and their revoker roles. */
  readonly accounts: TvmConfig['accounts'];
  /** The tvm-owned inline deny policy's name. */
  readonly denyPolicyName: string;
}

/** vend: AssumeRole on the grant roles, with the source identity and session tags every lease sets. */
export function bindGrantRoles(grants: GrantRoles, fn: BindableFunction): void {
  if (grants.roleArns.length === 0) return;
  roleOf(fn).addToPrincipalPolicy(
    new PolicyStatement({
      sid: 'AssumeGrantRoles',
      actions: ['sts:AssumeRole', 'sts:SetSourceIdentity', 'sts:TagSession'],
      resources: grants.roleArns,
    }),
  );
}

/**
 * Sets `TVM_DENY_POLICY_NAME` and `TVM_ACCOUNT` on `fn` and grants what revocation needs: the deny
 * policy's IAM calls on the own-account grant roles, and AssumeRole on the other accounts'
 * revoker roles (which edit theirs).
 *
 * @example
 * bindRevoker(grants, sweepFunction);
 */
export function bindRevoker(grants: GrantRoles, fn: BindableFunction): void {
  const role = roleOf(fn);
  fn.addEnvironment(ENV.denyPolicyName, grants.denyPolicyName);
  fn.addEnvironment(ENV.account, Aws.ACCOUNT_ID);
  // IAM has no condition key for an inline policy's name, so the tvm-owned policy name is
  // enforced by the code, and the roles are what IAM can pin. Listing and reading the
  // role's other inline policies measures the budget left before the fallback deny.
  // Roles in another account are edited through that account's revoker role instead.
  const ownRoles = grants.roleArns.filter((arn) => !((accountOf(arn) ?? '') in (grants.accounts ?? {})));
  if (ownRoles.length) {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'RevocationDenyPolicy',
        actions: ['iam:DeleteRolePolicy', 'iam:GetRolePolicy', 'iam:ListRolePolicies', 'iam:PutRolePolicy'],
        resources: ownRoles,
      }),
    );
  }
  const revokerRoleArns = Object.values(grants.accounts ?? {}).map((a) => a.revokerRoleArn);
  if (revokerRoleArns.length) {
    role.addToPrincipalPolicy(new PolicyStatement({ sid: 'AssumeRevokerRoles', actions: ['sts:AssumeRole'], resources: revokerRoleArns }));
  }
}
