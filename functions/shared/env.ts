/**
 * Environment variable names: the one list the handlers read and the CDK stack sets, so the
 * two cannot drift apart. Read through `requireEnv` so a missing variable names itself.
 */
export const ENV = {
  /** DynamoDB table holding leases, replay markers and vendor rotation state. */
  table: 'TVM_TABLE',
  /** Path of the config: tvm.yaml, or the compiled JSON the CDK bundles beside the handler. */
  config: 'TVM_CONFIG',
  /** Local stack only: endpoint overrides. Unset in AWS. */
  dynamodbEndpoint: 'TVM_DYNAMODB_ENDPOINT',
  stsEndpoint: 'TVM_STS_ENDPOINT',
  iamEndpoint: 'TVM_IAM_ENDPOINT',
  /** JSON map vendor name → { key: secret id, management: secret id }. */
  vendorSecrets: 'TVM_VENDOR_SECRETS',
  /** Name of the tvm-owned inline deny policy on grant roles. */
  denyPolicyName: 'TVM_DENY_POLICY_NAME',
} as const;

export const DEFAULT_DENY_POLICY_NAME = 'tvm-revocations';

export function requireEnv(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name];
  if (v === undefined || v === '') throw new Error(`missing environment variable ${name}`);
  return v;
}
