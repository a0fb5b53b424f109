/**
 * A role that tvm may vend: it trusts only tvm's vend function role, and only when tvm sets a
 * source identity and the `tvm:lease` session tag, so every session of it is tied to a lease.
 *
 * AWS authorizes an AssumeRole with tags and a source identity as three actions, each against
 * the trust policy with the condition keys of that action only (the Service Authorization
 * Reference: `sts:AssumeRole` has `sts:SourceIdentity` and `aws:RequestTag/…`; `sts:TagSession`
 * has `aws:RequestTag/…` and `aws:TagKeys` but no `sts:SourceIdentity`; `sts:SetSourceIdentity`
 * has `sts:SourceIdentity` only). So each statement names one action and tests only its keys:
 * a condition on a key its action lacks reads as an absent key, and the action is refused.
 */
import { Duration } from 'aws-cdk-lib';
import { ArnPrincipal, PolicyStatement, Role, type IManagedPolicy, type IRole, type PolicyDocument } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** STS caps a role-chained session (Lambda role → grant role) at one hour. */
export const MAX_VENDABLE_SESSION_SECONDS = 3600;

/** The session tag that carries the lease id on every vended session. */
export const LEASE_TAG = 'tvm:lease';

/** The session tags tvm itself sets on every vended session (functions/core/vend-credentials.ts). */
export const TVM_SESSION_TAG_KEYS = [LEASE_TAG, 'tvm:grant', 'tvm:issuer'] as const;

/**
 * The two forms of tvm's `SourceIdentity` (functions/core/lease.ts `sourceIdentityFor`): the
 * principal itself, `<issuer>.<sub>`, where it fits AWS's 64 characters, else
 * `<issuer>=<digest>`.
 */
export const SOURCE_IDENTITY_PATTERNS = ['?*.?*', '?*=?*'] as const;

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
  /**
   * The keys of the grant's `sessionTags` in tvm.yaml: with tvm's own (`tvm:lease`, `tvm:grant`,
   * `tvm:issuer`), the only tag keys a session may carry. @default none
   */
  readonly sessionTagKeys?: string[];
  /**
   * The names of the tvm.yaml issuers whose workloads may get this role's sessions: the source
   * identity must then begin with one of them. @default any issuer
   */
  readonly issuers?: string[];
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

    const principal = new ArnPrincipal(vendRoleArn);
    const leaseTagSet = { [`aws:RequestTag/${LEASE_TAG}`]: 'false' };
    this.role = new Role(this, 'Role', {
      roleName: props.roleName,
      path: props.path ?? '/tvm/',
      description: props.description ?? 'Vended by tvm: assumable only by the tvm vend function, per lease',
      maxSessionDuration,
      // sts:AssumeRole: only with a source identity and the lease tag (both keys of this action).
      assumedBy: principal.withConditions({ Null: { 'sts:SourceIdentity': 'false', ...leaseTagSet } }),
      inlinePolicies: props.inlinePolicies,
      managedPolicies: props.managedPolicies,
    });
    this.role.assumeRolePolicy!.addStatements(
      // sts:TagSession: the lease tag is set, and no tag but tvm's own and the grant's.
      new PolicyStatement({
        principals: [principal],
        actions: ['sts:TagSession'],
        conditions: {
          Null: leaseTagSet,
          'ForAllValues:StringEquals': { 'aws:TagKeys': [...new Set([...TVM_SESSION_TAG_KEYS, ...(props.sessionTagKeys ?? [])])] },
        },
      }),
      // sts:SetSourceIdentity: a source identity of tvm's form.
      new PolicyStatement({
        principals: [principal],
        actions: ['sts:SetSourceIdentity'],
        conditions: {
          StringLike: {
            'sts:SourceIdentity': props.issuers?.length
              ? props.issuers.flatMap((issuer) => [`${issuer}.?*`, `${issuer.slice(0, 20)}=?*`])
              : [...SOURCE_IDENTITY_PATTERNS],
          },
        },
      }),
    );
    this.roleArn = this.role.roleArn;
  }
}
