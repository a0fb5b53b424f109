/**
 * STS AssumeRole as the credential issuer. Maps STS's errors to tvm's and checks that the answer
 * really carries credentials (the SDK does not).
 */
import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';
import { AccessDenied, InvalidRequest, Throttled, UpstreamTimeout, UpstreamUnavailable } from '../core/errors.js';
import type { AssumeRoleInput, CredentialIssuer, IssuedCredentials } from '../core/ports.js';

const THROTTLING = new Set(['Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded']);

export function mapStsError(e: unknown, roleArn: string): Error {
  const name = (e as { name?: string })?.name ?? '';
  const detail = { roleArn, stsError: name };
  if (THROTTLING.has(name)) return new Throttled('sts_throttled', detail);
  if (name === 'AccessDenied' || name === 'AccessDeniedException') return new AccessDenied('sts_access_denied', detail);
  if (name === 'PackedPolicyTooLarge' || name === 'PackedPolicyTooLargeException') {
    return new InvalidRequest('packed_policy_too_large', detail);
  }
  if (name === 'TimeoutError' || name === 'RequestTimeout' || name === 'AbortError') return new UpstreamTimeout('sts_timeout', detail);
  return new UpstreamUnavailable('sts_failed', { ...detail, message: (e as Error)?.message });
}

export class StsCredentialIssuer implements CredentialIssuer {
  constructor(private readonly sts: STSClient) {}

  async assumeRole(input: AssumeRoleInput): Promise<IssuedCredentials> {
    let out;
    try {
      out = await this.sts.send(
        new AssumeRoleCommand({
          RoleArn: input.roleArn,
          RoleSessionName: input.sessionName,
          SourceIdentity: input.sourceIdentity,
          DurationSeconds: input.durationSeconds,
          Policy: input.policy,
          Tags: Object.entries(input.tags).map(([Key, Value]) => ({ Key, Value })),
        }),
      );
    } catch (e) {
      throw mapStsError(e, input.roleArn);
    }
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
      throw new UpstreamUnavailable('sts_no_credentials', { roleArn: input.roleArn });
    }
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration: new Date(c.Expiration).toISOString(),
      assumedRoleArn: out.AssumedRoleUser?.Arn,
      assumedRoleId: out.AssumedRoleUser?.AssumedRoleId,
    };
  }
}
