/**
 * The parts a function is composed of, each built once at init from the same settings: the base
 * every function has (config, clock, logger, audit, metrics, the DynamoDB client), token
 * verification, the lease store. Heavier parts live in their own modules (compose-sts.ts,
 * compose-iam.ts, the Cedar adapter) so a bundle carries only the parts its entry imports.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { AwsCredentialIdentity } from '@smithy/types';
import type { EventSource } from '../core/audit-events.js';
import type { TvmConfig } from '../core/config.js';
import type { Audit, Clock, KeyResolver, LeaseStore, RateLimiter, ReplayGuard } from '../core/ports.js';
import { DynamoLeaseStore } from '../adapters/dynamodb-lease-store.js';
import { DynamoRateLimiter } from '../adapters/dynamodb-rate-limiter.js';
import { rememberFullWindows, type RememberingRateLimiter } from '../core/full-windows.js';
import { DynamoReplayGuard } from '../adapters/dynamodb-replay-guard.js';
import { createJwksKeyResolver, type JwksOptions } from '../adapters/jwks-keys.js';
import { DEFAULT_DENY_POLICY_NAME } from './env.js';
import { createAudit, createLogger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import type { VendorRuntimeSettings } from './vendor-runtime.js';

export interface RuntimeSettings {
  config: Readonly<TvmConfig>;
  table: string;
  region?: string;
  /** Endpoint overrides (the local stack). In Lambda, unset: the SDK reads `AWS_ENDPOINT_URL_*`. */
  dynamodbEndpoint?: string;
  stsEndpoint?: string;
  iamEndpoint?: string;
  /** Local stack only: tvm's own identity. In AWS the SDK's default chain (the function's role). */
  credentials?: AwsCredentialIdentity;
  denyPolicyName?: string;
  /** tvm's own account (grant roles elsewhere are revoked through `config.accounts`). */
  account?: string;
  logger?: Logger;
  metrics?: Metrics;
  clock?: Clock;
  jwks?: JwksOptions;
  /** Vendor keys: the secret store and secret ids (local: embedded store; AWS: Secrets Manager, ids from TVM_VENDOR_SECRETS). */
  vendors?: VendorRuntimeSettings;
  /** Where the admin events route reads the audit trail (local: the stack's audit log; AWS: Logs Insights). */
  events?: EventSource;
}

/** What every function has. */
export interface Base {
  config: Readonly<TvmConfig>;
  table: string;
  region: string;
  denyPolicyName: string;
  ddb: DynamoDBDocumentClient;
  clock: Clock;
  logger: Logger;
  audit: Audit;
  metrics: Metrics;
  settings: RuntimeSettings;
}

export interface TokenParts {
  keys: KeyResolver;
  replay: ReplayGuard;
}

export interface LeaseParts {
  leases: LeaseStore;
  /** The per-principal vend rate's counters (the same table), remembering windows found full. */
  rates: RememberingRateLimiter;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Options every SDK client of tvm shares. */
export function sdkOptions(settings: RuntimeSettings) {
  return {
    region: settings.region ?? 'us-east-1',
    credentials: settings.credentials,
    maxAttempts: 3,
    // A hung dependency must answer 504/503 well inside API Gateway's 30 s, not hold the function
    // until it times out: the SDK only enforces requestTimeout with throwOnRequestTimeout.
    requestHandler: { connectionTimeout: 2_000, requestTimeout: 5_000, throwOnRequestTimeout: true },
  };
}

export function createBase(settings: RuntimeSettings): Base {
  const logger = settings.logger ?? createLogger();
  return {
    config: settings.config,
    table: settings.table,
    region: settings.region ?? 'us-east-1',
    denyPolicyName: settings.denyPolicyName ?? DEFAULT_DENY_POLICY_NAME,
    ddb: DynamoDBDocumentClient.from(new DynamoDBClient({ ...sdkOptions(settings), endpoint: settings.dynamodbEndpoint }), {
      marshallOptions: { removeUndefinedValues: true },
    }),
    clock: settings.clock ?? systemClock,
    logger,
    audit: createAudit(logger),
    metrics: settings.metrics ?? createMetrics(),
    settings,
  };
}

export function tokenParts(base: Base): TokenParts {
  return {
    keys: createJwksKeyResolver(base.config.issuers, { clock: base.clock, ...base.settings.jwks }),
    replay: new DynamoReplayGuard(base.ddb, base.table, base.clock),
  };
}

export function leaseParts(base: Base): LeaseParts {
  return {
    leases: new DynamoLeaseStore(base.ddb, base.table, { pendingTimeoutSeconds: base.config.leases.pendingTimeoutSeconds }),
    rates: rememberFullWindows(new DynamoRateLimiter(base.ddb, base.table)),
  };
}

/**
 * Runs a function's init: anything it throws (a bad environment, a bad config) is logged as one
 * structured line naming the function, then rethrown, so Lambda fails the init instead of
 * answering requests with a half-built runtime.
 */
export function initFunction<T>(name: string, logger: Logger, build: () => T): T {
  try {
    return build();
  } catch (e) {
    logger.error('init failed', { function: name, error: (e as Error)?.message ?? String(e) });
    throw e;
  }
}
