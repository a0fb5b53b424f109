/**
 * Builds what the handlers share, once per process: the frozen config, the SDK clients, the
 * adapters and the logger. Lambda builds it from the environment; the local stack passes
 * endpoints and credentials directly, so both run the same handlers.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IAMClient } from '@aws-sdk/client-iam';
import { STSClient } from '@aws-sdk/client-sts';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { AwsCredentialIdentity } from '@smithy/types';
import type { TvmConfig } from '../core/config.js';
import type { Audit, Clock, CredentialIssuer, IdGenerator, KeyResolver, LeaseStore, PolicyEngine, ReplayGuard } from '../core/ports.js';
import { createCedarPolicyEngine } from '../adapters/cedar-policy.js';
import { DynamoLeaseStore } from '../adapters/dynamodb-lease-store.js';
import { DynamoReplayGuard } from '../adapters/dynamodb-replay-guard.js';
import { createJwksKeyResolver, type JwksOptions } from '../adapters/jwks-keys.js';
import { randomIds } from '../adapters/random-ids.js';
import { StsCredentialIssuer } from '../adapters/sts-credential-issuer.js';
import { IamRoleRevoker } from '../adapters/iam-role-revoker.js';
import type { RoleRevoker } from '../core/ports.js';
import { DEFAULT_DENY_POLICY_NAME, ENV, requireEnv } from './env.js';
import { loadConfig } from './load-config.js';
import { createAudit, createLogger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import type { VendorRuntimeSettings } from './vendor-runtime.js';

export interface RuntimeSettings {
  config: Readonly<TvmConfig>;
  table: string;
  region?: string;
  dynamodbEndpoint?: string;
  stsEndpoint?: string;
  iamEndpoint?: string;
  /** Local stack only: tvm's own identity. In AWS the SDK's default chain (the function's role). */
  credentials?: AwsCredentialIdentity;
  denyPolicyName?: string;
  logger?: Logger;
  metrics?: Metrics;
  clock?: Clock;
  jwks?: JwksOptions;
  /** Vendor keys: the secret store and secret ids (local: embedded store; AWS: Secrets Manager, ids from TVM_VENDOR_SECRETS). */
  vendors?: VendorRuntimeSettings;
}

export interface Runtime {
  config: Readonly<TvmConfig>;
  table: string;
  region: string;
  denyPolicyName: string;
  ddb: DynamoDBDocumentClient;
  sts: STSClient;
  iam: IAMClient;
  leases: LeaseStore;
  /** The tvm-owned deny policy on grant roles (revoke and sweep only; vend never writes IAM). */
  revoker: RoleRevoker;
  replay: ReplayGuard;
  credentials: CredentialIssuer;
  policy: PolicyEngine;
  keys: KeyResolver;
  ids: IdGenerator;
  clock: Clock;
  logger: Logger;
  audit: Audit;
  metrics: Metrics;
  settings: RuntimeSettings;
}

export const systemClock: Clock = { now: () => Date.now() };

export function createRuntime(settings: RuntimeSettings): Runtime {
  const region = settings.region ?? 'us-east-1';
  // A hung dependency must answer 504/503 well inside API Gateway's 30 s, not hold the function
  // until it times out: the SDK only enforces requestTimeout with throwOnRequestTimeout.
  const requestHandler = { connectionTimeout: 2_000, requestTimeout: 5_000, throwOnRequestTimeout: true };
  const common = { region, credentials: settings.credentials, maxAttempts: 3, requestHandler };
  const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({ ...common, endpoint: settings.dynamodbEndpoint }), {
    marshallOptions: { removeUndefinedValues: true },
  });
  const sts = new STSClient({ ...common, endpoint: settings.stsEndpoint });
  const iam = new IAMClient({ ...common, endpoint: settings.iamEndpoint });
  const clock = settings.clock ?? systemClock;
  const logger = settings.logger ?? createLogger();
  return {
    config: settings.config,
    table: settings.table,
    region,
    denyPolicyName: settings.denyPolicyName ?? DEFAULT_DENY_POLICY_NAME,
    ddb,
    sts,
    iam,
    leases: new DynamoLeaseStore(ddb, settings.table, { pendingTimeoutSeconds: settings.config.leases.pendingTimeoutSeconds }),
    revoker: new IamRoleRevoker(iam, ddb, settings.table, { policyName: settings.denyPolicyName ?? DEFAULT_DENY_POLICY_NAME, clock }),
    replay: new DynamoReplayGuard(ddb, settings.table, clock),
    credentials: new StsCredentialIssuer(sts),
    policy: createCedarPolicyEngine(settings.config),
    keys: createJwksKeyResolver(settings.config.issuers, settings.jwks),
    ids: randomIds,
    clock,
    logger,
    audit: createAudit(logger),
    metrics: settings.metrics ?? createMetrics(),
    settings,
  };
}

/** The Lambda side: settings from the environment, failing at init on anything missing. */
export function runtimeFromEnv(env: NodeJS.ProcessEnv = process.env): Runtime {
  return createRuntime({
    config: loadConfig(requireEnv(env, ENV.config)),
    table: requireEnv(env, ENV.table),
    region: env.AWS_REGION,
    dynamodbEndpoint: env[ENV.dynamodbEndpoint] || undefined,
    stsEndpoint: env[ENV.stsEndpoint] || undefined,
    iamEndpoint: env[ENV.iamEndpoint] || undefined,
    denyPolicyName: env[ENV.denyPolicyName] || undefined,
  });
}

let shared: Runtime | undefined;
/** One runtime per Lambda container, built on first use (module scope, reused across invocations). */
export function lambdaRuntime(): Runtime {
  shared ??= runtimeFromEnv();
  return shared;
}
