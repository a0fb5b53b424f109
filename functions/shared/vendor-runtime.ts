/**
 * What the broker and rotate handlers share for vendor keys, built once per runtime: the secret
 * store (Secrets Manager in AWS, the embedded store locally), the secret ids of each vendor, the
 * rotation state store, the wire, the key cache and one key-management adapter per vendor.
 */
import { randomUUID } from 'node:crypto';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { AwsCredentialIdentity } from '@smithy/types';
import { KeyCache } from '../core/broker-request.js';
import type { RotateDeps, RotateTarget } from '../core/rotate-vendor-key.js';
import type { VendorConfig } from '../core/vendor-config.js';
import { AWSCURRENT, type SecretStore, type VendorHttp, type VendorKeys, type VendorStateStore } from '../core/vendor-ports.js';
import { UpstreamUnavailable } from '../core/errors.js';
import { DatadogVendorKeys } from '../adapters/datadog-vendor.js';
import { DynamoVendorStateStore } from '../adapters/dynamodb-vendor-state.js';
import { fetchVendorHttp, HttpVendorKeys, type ManagementSource } from '../adapters/http-vendor.js';
import { OpenAiVendorKeys } from '../adapters/openai-vendor.js';
import { SecretsManagerStore } from '../adapters/secrets-manager-store.js';
import { ENV } from './env.js';
import type { Base } from './compose.js';

export interface VendorSecretIds {
  /** The key secret tvm rotates: JSON `{"keyId", "key"}`, labels AWSCURRENT/AWSPENDING/AWSPREVIOUS. */
  key: string;
  /** The management credential (set by an operator; never brokered). */
  management: string;
}

export interface VendorRuntimeSettings {
  /** The secret store; default Secrets Manager. */
  secrets?: SecretStore;
  /** Vendor name → secret ids; default `$TVM_VENDOR_SECRETS`. */
  secretIds?: Record<string, VendorSecretIds>;
  secretsManagerEndpoint?: string;
  http?: VendorHttp;
  state?: VendorStateStore;
  /** How long the broker trusts a cached key before reading it again. @default 30 s */
  keyCacheTtlMs?: number;
  /** How long a management credential is cached. @default 5 minutes */
  managementCacheTtlMs?: number;
  /** @default 5 minutes */
  lockTtlMs?: number;
}

export interface VendorRuntime {
  vendors: readonly VendorConfig[];
  secrets: SecretStore;
  secretIds: Record<string, VendorSecretIds>;
  state: VendorStateStore;
  http: VendorHttp;
  keyCache: KeyCache;
  keysFor(vendor: VendorConfig): VendorKeys;
  target(name: string): RotateTarget | undefined;
  /** Ports for one rotation run (a fresh lock owner each time). */
  rotateDeps(vendor: VendorConfig): RotateDeps;
  /** The vendor whose key secret is `secretId` (name or ARN), for Secrets Manager rotation events. */
  vendorBySecret(secretId: string): VendorConfig | undefined;
}

/**
 * Secrets Manager, bounded: a call that hangs fails (UpstreamTimeout) after 3 s, twice at most,
 * so the broker's key read, and a rotation step, end well inside API Gateway's 29 s. The SDK
 * enforces `requestTimeout` only with `throwOnRequestTimeout`.
 */
export const SECRETS_MANAGER_TIMEOUTS = { connectionTimeout: 1_000, requestTimeout: 3_000, maxAttempts: 2 } as const;

export function secretsManagerClient(opts: { region: string; credentials?: AwsCredentialIdentity; endpoint?: string }): SecretsManagerClient {
  const { connectionTimeout, requestTimeout, maxAttempts } = SECRETS_MANAGER_TIMEOUTS;
  return new SecretsManagerClient({
    region: opts.region,
    credentials: opts.credentials,
    endpoint: opts.endpoint,
    maxAttempts,
    requestHandler: { connectionTimeout, requestTimeout, throwOnRequestTimeout: true },
  });
}

/** Parses `$TVM_VENDOR_SECRETS`: `{"<vendor>": {"key": "<arn>", "management": "<arn>"}}`. */
export function parseVendorSecrets(text: string | undefined): Record<string, VendorSecretIds> {
  if (!text) return {};
  const parsed = JSON.parse(text) as Record<string, VendorSecretIds>;
  for (const [name, ids] of Object.entries(parsed)) {
    if (!ids || typeof ids.key !== 'string' || typeof ids.management !== 'string') throw new Error(`${ENV.vendorSecrets}: ${name} needs "key" and "management"`);
  }
  return parsed;
}

const built = new WeakMap<Base, VendorRuntime>();

/** The vendor runtime of `rt`, built on first use. */
export function vendorRuntime(rt: Base): VendorRuntime {
  let v = built.get(rt);
  if (!v) {
    v = createVendorRuntime(rt, rt.settings.vendors ?? {});
    built.set(rt, v);
  }
  return v;
}

export function createVendorRuntime(rt: Base, settings: VendorRuntimeSettings): VendorRuntime {
  const vendors = rt.config.vendors;
  const secretIds = settings.secretIds ?? parseVendorSecrets(process.env[ENV.vendorSecrets]);
  const secrets =
    settings.secrets ??
    new SecretsManagerStore(secretsManagerClient({ region: rt.region, credentials: rt.settings.credentials, endpoint: settings.secretsManagerEndpoint }));
  const state = settings.state ?? new DynamoVendorStateStore(rt.ddb, rt.table);
  const http = settings.http ?? fetchVendorHttp();
  const keyCache = new KeyCache(secrets, (name) => secretIds[name]?.key, rt.clock, settings.keyCacheTtlMs ?? 30_000);

  const managementCache = new Map<string, { value: string; at: number }>();
  const managementTtl = settings.managementCacheTtlMs ?? 5 * 60_000;
  const management =
    (vendor: VendorConfig): ManagementSource =>
    async () => {
      const hit = managementCache.get(vendor.name);
      if (hit && rt.clock.now() - hit.at < managementTtl) return hit.value;
      const id = secretIds[vendor.name]?.management;
      if (!id) throw new UpstreamUnavailable('vendor_secret_not_configured', { vendor: vendor.name });
      const value = (await secrets.getValue(id, { stage: AWSCURRENT }))?.value;
      if (!value) throw new UpstreamUnavailable('management_credential_missing', { vendor: vendor.name });
      managementCache.set(vendor.name, { value, at: rt.clock.now() });
      return value;
    };

  const adapters = new Map<string, VendorKeys>();
  const keysFor = (vendor: VendorConfig): VendorKeys => {
    let a = adapters.get(vendor.name);
    if (!a) {
      const src = management(vendor);
      a =
        vendor.kind === 'datadog'
          ? new DatadogVendorKeys(vendor, src, http)
          : vendor.kind === 'openai'
            ? new OpenAiVendorKeys(vendor, src, http)
            : new HttpVendorKeys(vendor, src, http);
      adapters.set(vendor.name, a);
    }
    return a;
  };

  return {
    vendors,
    secrets,
    secretIds,
    state,
    http,
    keyCache,
    keysFor,
    target(name) {
      const vendor = vendors.find((v) => v.name === name);
      const ids = secretIds[name];
      return vendor && ids ? { vendor, secretId: ids.key } : undefined;
    },
    rotateDeps(vendor) {
      return {
        secrets,
        keys: keysFor(vendor),
        state,
        clock: rt.clock,
        audit: rt.audit,
        newToken: randomUUID,
        owner: randomUUID(),
        lockTtlMs: settings.lockTtlMs,
      };
    },
    vendorBySecret(secretId) {
      const name = Object.entries(secretIds).find(([, ids]) => ids.key === secretId || secretName(ids.key) === secretName(secretId))?.[0];
      return name ? vendors.find((v) => v.name === name) : undefined;
    },
  };
}

/** `arn:aws:secretsmanager:…:secret:tvm-datadog-key-AbCdEf` and its name compare equal. */
function secretName(id: string): string {
  const m = /^arn:[^:]+:secretsmanager:[^:]*:\d*:secret:(.+)$/.exec(id);
  return m ? m[1] : id;
}
