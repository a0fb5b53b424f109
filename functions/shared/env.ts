/**
 * Environment variable names: the one list the functions read and the CDK stack sets, so the
 * two cannot drift apart, and the zod schemas each function's `lambda.ts` parses its
 * environment with, once, at init (a missing or malformed variable names itself).
 *
 * Endpoints are not tvm's business: the AWS SDK reads the standard `AWS_ENDPOINT_URL_<SERVICE>`
 * variables itself (unset in AWS; the tests point them at loopback).
 */
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';

export const ENV = {
  /** DynamoDB table holding leases, replay markers and vendor rotation state. */
  table: 'TVM_TABLE',
  /** Path of the compiled JSON config the CDK bundles beside the handler (relative: to the task root). */
  config: 'TVM_CONFIG',
  /** JSON map vendor name → { key: secret id, management: secret id }. */
  vendorSecrets: 'TVM_VENDOR_SECRETS',
  /** Name of the tvm-owned inline deny policy on grant roles. */
  denyPolicyName: 'TVM_DENY_POLICY_NAME',
  /** tvm's own AWS account: a grant role elsewhere is revoked through that account's revoker role. */
  account: 'TVM_ACCOUNT',
  /** Comma-separated log groups the admin events route queries with Logs Insights (the functions' own). */
  auditLogGroups: 'TVM_AUDIT_LOG_GROUPS',
} as const;

export const DEFAULT_DENY_POLICY_NAME = 'tvm-revocations';

const nonEmpty = z.string().min(1);

/** `{"<vendor>": {"key": "<arn>", "management": "<arn>"}}`. */
export const vendorSecretsSchema = z.record(z.object({ key: nonEmpty, management: nonEmpty }).strict());

const json = <T extends z.ZodTypeAny>(schema: T) =>
  z.string().transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'is not valid JSON' });
      return z.NEVER;
    }
  }).pipe(schema);

const common = {
  [ENV.table]: nonEmpty,
  [ENV.config]: nonEmpty,
  AWS_REGION: nonEmpty.default('us-east-1'),
};
const revoking = {
  [ENV.denyPolicyName]: nonEmpty,
  [ENV.account]: z.string().regex(/^\d{12}$/, 'must be a 12-digit account id').optional(),
};
const vendorKeys = { [ENV.vendorSecrets]: json(vendorSecretsSchema) };

/** What each function reads from its environment. */
export const FUNCTION_ENV = {
  vend: z.object(common),
  leases: z.object({ ...common, ...revoking, [ENV.auditLogGroups]: nonEmpty.optional() }),
  sweep: z.object({ ...common, ...revoking }),
  broker: z.object({ ...common, ...vendorKeys }),
  rotate: z.object({ ...common, ...vendorKeys }),
} as const;

export type FunctionEnv<K extends keyof typeof FUNCTION_ENV> = z.infer<(typeof FUNCTION_ENV)[K]>;

/**
 * Parses `env` for function `name`.
 * @throws Error naming every missing or malformed variable.
 */
export function parseEnv<K extends keyof typeof FUNCTION_ENV>(name: K, env: NodeJS.ProcessEnv): FunctionEnv<K> {
  const parsed = FUNCTION_ENV[name].safeParse(env);
  if (!parsed.success) {
    throw new Error(`environment of the ${name} function: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const out = parsed.data as FunctionEnv<K>;
  // Lambda unpacks the asset in $LAMBDA_TASK_ROOT (/var/task); the config travels inside it.
  const config = out[ENV.config];
  if (!isAbsolute(config)) out[ENV.config] = join(env.LAMBDA_TASK_ROOT ?? process.cwd(), config);
  return out;
}
