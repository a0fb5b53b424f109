/**
 * The IAM part (leases and sweep only): the client and the deny-policy revoker over it. A grant
 * role in another account is edited through that account's revoker role (`config.accounts`),
 * assumed with STS.
 */
import { IAMClient } from '@aws-sdk/client-iam';
import { STSClient } from '@aws-sdk/client-sts';
import type { RoleRevoker } from '../core/ports.js';
import { crossAccountIam } from '../adapters/cross-account-iam.js';
import { IamRoleRevoker } from '../adapters/iam-role-revoker.js';
import { sdkOptions, type Base } from './compose.js';

export interface IamParts {
  iam: IAMClient;
  /** The tvm-owned deny policy on grant roles (revoke and sweep only; vend never writes IAM). */
  revoker: RoleRevoker;
}

export function iamParts(base: Base): IamParts {
  const options = sdkOptions(base.settings);
  const iam = new IAMClient({ ...options, endpoint: base.settings.iamEndpoint });
  const accounts = base.config.accounts ?? {};
  const iamFor = Object.keys(accounts).length
    ? crossAccountIam({
        accounts,
        ownAccount: base.settings.account ?? base.config.account,
        sts: new STSClient({ ...options, endpoint: base.settings.stsEndpoint }),
        clock: base.clock,
        iamClient: (credentials) => new IAMClient({ ...options, credentials, endpoint: base.settings.iamEndpoint }),
      })
    : undefined;
  return { iam, revoker: new IamRoleRevoker(iam, base.ddb, base.table, { policyName: base.denyPolicyName, clock: base.clock, iamFor }) };
}
