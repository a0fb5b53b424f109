/**
 * Do these credentials work? Asked of the STS/IAM emulator's evaluate route with an action the
 * grant and the role allow: AWS answers sts:GetCallerIdentity whatever the policies say, so that
 * is no test of revocation. Anything but Allowed or an explicit Deny is a broken test, not a deny.
 */
export interface SessionCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

/** Vend-answer credentials (`AccessKeyId`…) in the SDK's shape. */
export function sdkCredentials(c: { AccessKeyId: string; SecretAccessKey: string; SessionToken: string }): SessionCredentials {
  return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
}

export async function allowed(stsUrl: string, creds: SessionCredentials, action = 's3:GetObject', resource = 'arn:aws:s3:::reports/team/report.csv'): Promise<boolean> {
  const res = await fetch(`${stsUrl}/_tvm/evaluate`, { method: 'POST', body: JSON.stringify({ ...creds, action, resource }) });
  const out = (await res.json()) as { allowed: boolean; reason: string };
  if (!out.allowed && out.reason !== 'ExplicitlyDenied') throw new Error(`evaluate: ${out.reason}`);
  return out.allowed;
}
