/**
 * The configuration model (tvm.yaml): its schema and the checks that span fields.
 * Loading from disk lives in functions/shared/load-config.ts; this file is pure.
 */
import { z } from 'zod';
import { NAME, vendorSchema } from './vendor-config.js';

/** STS bounds a chained AssumeRole to [900, 3600] seconds. */
export const MIN_DURATION_SECONDS = 900;
export const MAX_DURATION_SECONDS = 3600;

/** Default per-principal vend rate: 120 a minute (one every half second, sustained). */
export const DEFAULT_VENDS_PER_WINDOW = 120;
export const DEFAULT_RATE_WINDOW_SECONDS = 60;

const LOCAL_HTTP = /^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?(\/|$)/;

const issuerUrl = z
  .string()
  .url()
  .refine((u) => u.startsWith('https://') || LOCAL_HTTP.test(u), {
    message: 'must be https (http only for 127.0.0.1 or localhost)',
  });

const ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

export const issuerSchema = z
  .object({
    name: z.string().regex(NAME, 'must match [a-z0-9-]+'),
    issuer: issuerUrl,
    audiences: z.array(z.string().min(1)).min(1, 'must list at least one audience'),
    jwksUri: issuerUrl.optional(),
    algorithms: z
      .array(z.enum(ALGS, { errorMap: () => ({ message: `must be one of ${ALGS.join(', ')} (never none or HS*)` }) }))
      .min(1)
      .default(['RS256', 'ES256']),
    maxTokenAgeSeconds: z.number().int().positive().optional(),
    singleUse: z.boolean().default(false),
  })
  .strict();

const policyStatement = z
  .object({
    Sid: z.string().optional(),
    Effect: z.enum(['Allow', 'Deny']),
    Action: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    NotAction: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    Resource: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    NotResource: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    Condition: z.record(z.record(z.union([z.string(), z.array(z.string()), z.boolean(), z.number()]))).optional(),
  })
  .strict()
  .refine((s) => (s.Action === undefined) !== (s.NotAction === undefined), { message: 'needs exactly one of Action or NotAction' })
  .refine((s) => (s.Resource === undefined) !== (s.NotResource === undefined), {
    message: 'needs exactly one of Resource or NotResource',
  });

export const policyDocumentSchema = z
  .object({
    Version: z.literal('2012-10-17'),
    Id: z.string().optional(),
    Statement: z.array(policyStatement).min(1),
  })
  .strict();

export const grantSchema = z
  .object({
    name: z.string().regex(NAME, 'must match [a-z0-9-]+'),
    roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/, 'must be an IAM role ARN'),
    durationSeconds: z
      .object({
        default: z.number().int().min(MIN_DURATION_SECONDS).max(MAX_DURATION_SECONDS),
        max: z.number().int().min(MIN_DURATION_SECONDS).max(MAX_DURATION_SECONDS),
      })
      .strict()
      .refine((d) => d.default <= d.max, { message: 'default must not exceed max' })
      .default({ default: 900, max: 3600 }),
    sessionPolicy: policyDocumentSchema,
    sessionTags: z.record(z.string().regex(/^[\w.:/=+@-]{1,128}$/, 'tag key'), z.string().max(256)).optional(),
    /** More live (pending or active, unexpired) leases than this for one principal on this grant → 429. */
    maxLiveLeasesPerPrincipal: z.number().int().min(1).max(10_000).optional(),
    /**
     * Credentials that work only where they were vended: from the vend's source address
     * (`aws:SourceIp`), or only through these VPC endpoints (`aws:SourceVpce`). Exactly one.
     */
    bind: z
      .object({
        sourceIp: z.literal(true).optional(),
        sourceVpce: z.array(z.string().regex(/^vpce-[0-9a-f]{8,17}$/, 'must be a VPC endpoint id (vpce-…)')).min(1).max(10).optional(),
      })
      .strict()
      .refine((b) => (b.sourceIp === undefined) !== (b.sourceVpce === undefined), { message: 'needs exactly one of sourceIp: true or sourceVpce: [...]' })
      .optional(),
  })
  .strict();

// ---- the `local` section (tvm dev only) ----

/** A trust policy statement (a role's resource policy): a permission statement plus its principal. */
const trustStatement = z
  .object({
    Sid: z.string().optional(),
    Effect: z.enum(['Allow', 'Deny']),
    Principal: z.union([z.literal('*'), z.record(z.union([z.string(), z.array(z.string()).min(1)]))]).optional(),
    NotPrincipal: z.record(z.union([z.string(), z.array(z.string()).min(1)])).optional(),
    Action: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    NotAction: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    Condition: z.record(z.record(z.union([z.string(), z.array(z.string()), z.boolean(), z.number()]))).optional(),
  })
  .strict()
  .refine((s) => (s.Action === undefined) !== (s.NotAction === undefined), { message: 'needs exactly one of Action or NotAction' })
  .refine((s) => (s.Principal === undefined) !== (s.NotPrincipal === undefined), { message: 'needs exactly one of Principal or NotPrincipal' });

const localRoleObject = z
  .object({
    /** The role's permission policy. */
    policy: policyDocumentSchema,
    /** Default: trust tvm's own local identity (sts:AssumeRole, sts:TagSession, sts:SetSourceIdentity). */
    trustPolicy: z.object({ Version: z.literal('2012-10-17'), Id: z.string().optional(), Statement: z.array(trustStatement).min(1) }).strict().optional(),
    /** IAM's MaxSessionDuration (3600..43200 s, IAM's bounds). Default 3600. */
    maxSessionDuration: z.number().int().min(3600).max(43_200).default(3600),
  })
  .strict();

/** A local role: a bare permission policy (it trusts tvm's identity, 3600 s) or `{policy, trustPolicy, maxSessionDuration}`. */
const localRoleSchema = z.unknown().transform((v, ctx): z.infer<typeof localRoleObject> => {
  const full = !!v && typeof v === 'object' && 'policy' in v;
  const r = full ? localRoleObject.safeParse(v) : policyDocumentSchema.safeParse(v);
  if (!r.success) {
    for (const issue of r.error.issues) ctx.addIssue(issue as z.IssueData);
    return z.NEVER;
  }
  return full ? (r.data as z.infer<typeof localRoleObject>) : { policy: r.data as z.infer<typeof policyDocumentSchema>, maxSessionDuration: 3600 };
});

const localBucketSchema = z.union([
  z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name'),
  z
    .object({
      name: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name'),
      /** A folder (relative to the config file) whose files are put into the bucket at start where the key is absent. */
      seed: z.string().min(1),
    })
    .strict(),
]);

export const localSchema = z
  .object({
    roles: z.record(z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/, 'must be an IAM role ARN'), localRoleSchema).default({}),
    /** Buckets of the local S3. */
    buckets: z.array(localBucketSchema).default([]),
    /** The issuer `tvm dev` serves itself (its URL is set at start). */
    devIssuer: z.string().regex(NAME).optional(),
  })
  .strict();

export type LocalConfig = z.infer<typeof localSchema>;
export type LocalRoleConfig = z.infer<typeof localRoleObject>;

// ---- end of the `local` section ----

const ACCOUNT_ID = z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id');
const ROLE_ARN = /^arn:aws[a-z-]*:iam::(\d{12}):role\/[\w+=,.@/-]+$/;

/** The account of a role ARN (undefined for anything else). */
export function accountOf(roleArn: string): string | undefined {
  return ROLE_ARN.exec(roleArn)?.[1];
}

export const configSchema = z
  .object({
    /** tvm's own AWS account (default: the stack's at synth, the emulator's locally). */
    account: ACCOUNT_ID.optional(),
    /** Every other account a grant's role lives in, with the revoker role tvm assumes there. */
    accounts: z
      .record(ACCOUNT_ID, z.object({ revokerRoleArn: z.string().regex(ROLE_ARN, 'must be an IAM role ARN') }).strict())
      .default({}),
    issuers: z.array(issuerSchema).min(1, 'must list at least one issuer'),
    grants: z.array(grantSchema).default([]),
    vendors: z.array(vendorSchema).default([]),
    policies: z.string().default('./policies'),
    leases: z
      .object({
        retentionDays: z.number().int().min(1).max(3650).default(90),
        pendingTimeoutSeconds: z.number().int().min(30).max(3600).default(300),
        /**
         * Vends one principal may make per window, all grants together (fixed windows; more → 429).
         * Bounds what one workload can make tvm do, IAM writes of its revocations included.
         */
        ratePerPrincipal: z
          .object({
            vends: z.number().int().min(1).max(1_000_000).default(DEFAULT_VENDS_PER_WINDOW),
            windowSeconds: z.number().int().min(1).max(3600).default(DEFAULT_RATE_WINDOW_SECONDS),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    local: localSchema.optional(),
  })
  .strict();

export type IssuerConfig = z.infer<typeof issuerSchema>;
export type GrantConfig = z.infer<typeof grantSchema>;
export type PolicyDocument = z.infer<typeof policyDocumentSchema>;

/** The loaded configuration: the YAML plus the Cedar policies it points at, keyed by `@id`. */
export type TvmConfig = z.infer<typeof configSchema> & {
  /** Cedar policies keyed by their `@id`, with the file each came from. */
  cedar: { id: string; file: string; text: string }[];
  /** The file the config came from (for messages). */
  source: string;
};

/** One problem found in the config: the file, the path inside it, what is wrong. */
export interface ConfigProblem {
  file: string;
  path: string;
  message: string;
}

export function formatPath(path: (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${p}` : p;
  return out || '(root)';
}

const ISSUER_TEST = /principal\.issuer\s*==\s*"([^"\\]*)"|"([^"\\]*)"\s*==\s*principal\.issuer/g;

/** The issuer names a Cedar policy compares `principal.issuer` with. */
export function issuersNamedBy(text: string): string[] {
  return [...new Set([...text.matchAll(ISSUER_TEST)].map((m) => m[1] ?? m[2]))];
}

/**
 * The config as deployed: without the `local` section and without the issuer `tvm dev` serves
 * itself (an http://127.0.0.1 issuer means nothing in AWS), nor the Cedar policies that name only
 * that issuer (they could never match). Problems if nothing is left to trust, or if a policy
 * names an issuer the deployed config lacks (it would deploy a permission nobody can use).
 */
export function forDeployment(config: TvmConfig): { config: TvmConfig; problems: ConfigProblem[] } {
  const dev = config.local?.devIssuer;
  const issuers = config.issuers.filter((i) => i.name !== dev);
  const problems: ConfigProblem[] = issuers.length
    ? []
    : [{ file: config.source, path: 'issuers', message: `no issuer is left to deploy once the local dev issuer '${dev}' is removed` }];
  const deployed = new Set(issuers.map((i) => i.name));
  const cedar = config.cedar.filter((p) => {
    const named = issuersNamedBy(p.text);
    return !(dev && named.length > 0 && named.every((n) => n === dev));
  });
  for (const p of cedar) {
    for (const n of issuersNamedBy(p.text)) {
      if (!deployed.has(n) && n !== dev) {
        problems.push({ file: p.file, path: `@id("${p.id}")`, message: `names issuer '${n}', which the deployed config does not have` });
      }
    }
  }
  const { local: _local, ...rest } = config;
  return { config: { ...rest, issuers, cedar }, problems };
}
