/**
 * IAM clients for grant roles in other accounts: each acts as that account's revoker role
 * (`accounts.<id>.revokerRoleArn`), assumed through STS and cached until five minutes before the
 * credentials expire. A role in tvm's own account uses the function's own client.
 */
import { IAMClient } from '@aws-sdk/client-iam';
import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity } from '@smithy/types';
import { accountOf, type TvmConfig } from '../core/config.js';
import { UpstreamUnavailable } from '../core/errors.js';
import type { Clock } from '../core/ports.js';

const REFRESH_BEFORE_MS = 5 * 60_000;

export interface CrossAccountIamOptions {
  accounts: TvmConfig['accounts'];
  /** tvm's own account; without it, any account not listed is taken as own. */
  ownAccount?: string;
  sts: STSClient;
  clock: Clock;
  /** Builds an IAM client over the given credentials (the caller's region, endpoint, timeouts). */
  iamClient(credentials: () => Promise<AwsCredentialIdentity>): IAMClient;
}

/** Credentials of `roleArn`, assumed once and reused until near their expiry. */
export function assumedRoleCredentials(sts: STSClient, roleArn: string, clock: Clock): () => Promise<AwsCredentialIdentity> {
  let cached: AwsCredentialIdentity | undefined;
  let inflight: Promise<AwsCredentialIdentity> | undefined;
  return async () => {
    if (cached?.expiration && cached.expiration.getTime() - clock.now() > REFRESH_BEFORE_MS) return cached;
    inflight ??= (async () => {
      try {
        const out = await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: 'tvm-revoker', DurationSeconds: 3600 }));
        const c = out.Credentials;
        // The STS client does not check that Credentials came back.
        if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) throw new Error('AssumeRole answered no credentials');
        cached = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: new Date(c.Expiration) };
        return cached;
      } catch (e) {
        throw new UpstreamUnavailable('revoker_role_unavailable', { roleArn, error: (e as Error)?.name });
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };
}

/**
 * The `iamFor` of `IamRoleRevoker`: the client to edit `roleArn` with, or undefined for tvm's
 * own account. A role in an account neither own nor listed is refused (fail closed).
 */
export function crossAccountIam(opts: CrossAccountIamOptions): (roleArn: string) => IAMClient | undefined {
  const clients = new Map<string, IAMClient>();
  return (roleArn) => {
    const account = accountOf(roleArn);
    const entry = account ? opts.accounts[account] : undefined;
    if (!entry) {
      if (!opts.ownAccount || account === opts.ownAccount) return undefined;
      throw new UpstreamUnavailable('no_revoker_role', { roleArn, account });
    }
    let client = clients.get(account!);
    if (!client) {
      client = opts.iamClient(assumedRoleCredentials(opts.sts, entry.revokerRoleArn, opts.clock));
      clients.set(account!, client);
    }
    return client;
  };
}
