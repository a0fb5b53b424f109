/**
 * A role that tvm may vend: it trusts only tvm's vend function role, and only when tvm sets a
 * source identity and the `tvm:lease` session tag, so every session of it is tied to a lease.
 */
import { Duration } from 'aws-cdk-lib';
import { ArnPrincipal, PolicyStatement, Role, type IManagedPolicy, type IRole, type PolicyDocument } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** STS caps a role-chained session (Lambda role → grant role) at one hour. */
export const MAX_VENDABLE_SESSION_SECONDS = 3600;

/** The session tag that carries the lease id on every vended session. */
export const LEASE_TAG = 'tvm:lease';

export interface VendableRoleProps {
  /**
   * The role tvm's vend function runs as: `TokenVendingMachine.vendRole`, or its ARN when the
   * role lives in another account (the stack output `VendRoleArn`).
   */
  readonly vendRole: IRole | string;
  /** @default - CloudFormation generates one */
  readonly roleName?: string;
  /** The grant `roleArn` patterns in tvm.yaml often pin a path. @default '/tvm/' */
  readonly path?: string;
  /** At most 3600 (STS's role-chaining limit). @default 3600 */
  readonly maxSessionDuration?: Duration;
  readonly description?: string;
  /** The permissions the role grants; a grant's session policy narrows them per lease. */
  readonly inlinePolicies?: Record<string, PolicyDocument>;
  readonly managedPolicies?: IManagedPolicy[];
}

/**
 * An IAM role that only tvm can assume, for a grant in tvm.yaml.
 *
 * @example
 * const role = new VendableRole(this, 'ReportsRead', { vendRole: tvm.vendRole, roleName: 'reports-read' });
 * bucket.grantRead(role);
 */
export class VendableRole extends Construct {
  readonly role: Role;
  readonly roleArn: string;

  constructor(scope: Construct, id: string, props: VendableRoleProps) {
    super(scope, id);
    const maxSessionDuration = props.maxSessionDuration ?? Duration.seconds(MAX_VENDABLE_SESSION_SECONDS);
    if (maxSessionDuration.toSeconds() > MAX_VENDABLE_SESSION_SECONDS || maxSessionDuration.toSeconds() < 900) {
      throw new Error(
        `VendableRole ${this.node.path}: maxSessionDuration must be between 900 and ${MAX_VENDABLE_SESSION_SECONDS} seconds, got ${maxSessionDuration.toSeconds()}`,
      );
    }
    const vendRoleArn = typeof props.vendRole === 'string' ? props.vendRole : props.vendRole.roleArn;

    // Every action an AssumeRole with a source identity and session tags is checked against
    // requires both: a session without a lease tag or a source identity cannot exist.
    const conditions = { Null: { 'sts:SourceIdentity': 'false', [`aws:RequestTag/${LEASE_TAG}`]: 'false' } };
    this.role = new Role(this, 'Role', {
      roleName: props.roleName,
      path: props.path ?? '/tvm/',
      description: props.description ?? 'Vended by tvm: assumable only by the tvm vend function, per lease',
      maxSessionDuration,
      assumedBy: new ArnPrincipal(vendRoleArn).withConditions(conditions).withSessionTags(),
      inlinePolicies: props.inlinePolicies,
      managedPolicies: props.managedPolicies,
    });
    this.role.assumeRolePolicy!.addStatements(
      new PolicyStatement({
        principals: [new ArnPrincipal(vendRoleArn)],
        actions: ['sts:SetSourceIdentity'],
        conditions,
      }),
    );
    this.roleArn = this.role.roleArn;
  }
}
