/**
 * The revoker role, created in each account (other than tvm's own) that holds grant roles: tvm's
 * leases and sweep functions assume it to put, read and delete the deny policy on those roles,
 * and may do nothing else there. Its ARN goes in tvm.yaml as `accounts.<id>.revokerRoleArn`.
 */
import { ArnPrincipal, CompositePrincipal, PolicyDocument, PolicyStatement, Role } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

export interface RevokerRoleProps {
  /**
   * The roles of tvm's leases and sweep functions (the stack outputs `LeasesRoleArn` and
   * `SweepRoleArn` of tvm's stack): the only principals trusted.
   */
  readonly revokingRoleArns: string[];
  /**
   * The grant roles of this account that tvm vends (their ARNs, or a path pattern such as
   * `arn:aws:iam::210987654321:role/tvm/*`).
   */
  readonly grantRoleArns: string[];
  /** @default 'tvm-revoker' (the name the docs and the example config use) */
  readonly roleName?: string;
  /** @default '/tvm/' */
  readonly path?: string;
}

/**
 * @example
 * new RevokerRole(this, 'TvmRevoker', {
 *   revokingRoleArns: ['arn:aws:iam::123456789012:role/Tvm-LeasesRole…', 'arn:aws:iam::123456789012:role/Tvm-SweepRole…'],
 *   grantRoleArns: ['arn:aws:iam::210987654321:role/tvm/*'],
 * });
 */
export class RevokerRole extends Construct {
  readonly role: Role;
  readonly roleArn: string;

  constructor(scope: Construct, id: string, props: RevokerRoleProps) {
    super(scope, id);
    if (props.revokingRoleArns.length === 0) throw new Error(`RevokerRole ${this.node.path}: revokingRoleArns must name tvm's leases and sweep roles`);
    if (props.grantRoleArns.length === 0) throw new Error(`RevokerRole ${this.node.path}: grantRoleArns must name the roles tvm vends here`);
    this.role = new Role(this, 'Role', {
      roleName: props.roleName ?? 'tvm-revoker',
      path: props.path ?? '/tvm/',
      description: "tvm: edits only tvm's deny policy on this account's grant roles (assumed by tvm's leases and sweep functions)",
      maxSessionDuration: undefined,
      assumedBy: new CompositePrincipal(...props.revokingRoleArns.map((arn) => new ArnPrincipal(arn))),
      inlinePolicies: {
        DenyPolicyOnGrantRoles: new PolicyDocument({
          statements: [
            // IAM has no condition key for an inline policy's name: the roles are what IAM can pin,
            // and tvm's code writes only its own policy name.
            new PolicyStatement({
              sid: 'RevocationDenyPolicy',
              actions: ['iam:DeleteRolePolicy', 'iam:GetRolePolicy', 'iam:ListRolePolicies', 'iam:PutRolePolicy'],
              resources: props.grantRoleArns,
            }),
          ],
        }),
      },
    });
    this.roleArn = this.role.roleArn;
  }
}
