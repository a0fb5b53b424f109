/** The IAM part (leases and sweep only): the client and the deny-policy revoker over it. */
import { IAMClient } from '@aws-sdk/client-iam';
import type { RoleRevoker } from '../core/ports.js';
import { IamRoleRevoker } from '../adapters/iam-role-revoker.js';
import { sdkOptions, type Base } from './compose.js';

export interface IamParts {
  iam: IAMClient;
  /** The tvm-owned deny policy on grant roles (revoke and sweep only; vend never writes IAM). */
  revoker: RoleRevoker;
}

export function iamParts(base: Base): IamParts {
  const iam = new IAMClient({ ...sdkOptions(base.settings), endpoint: base.settings.iamEndpoint });
  return { iam, revoker: new IamRoleRevoker(iam, base.ddb, base.table, { policyName: base.denyPolicyName, clock: base.clock }) };
}
