/**
 * What the broker and rotate handlers share for vendor keys, built once per runtime: the secret
 * store (Secrets Manager in AWS, the embedded store locally), the secret ids of each vendor, the
 * rotation state store, the wire, the key cache and one key-management adapter per vendor.
 */
import { randomUUID } from 'node:crypto';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { AwsCredentialIdentity } from '@smithy/types';
import { KeyCache } from '../core/broker-request.js';
import { isConfiguredValue, type RotateDeps, type RotateTarget } from '../core/rotate-vendor-key.js';
import { rotationLockTtlMs } from '../core/rotation/lock.js';
import type { VendorConfig } from '../core/vendor-config.js';
import { AWSCURRENT, type SecretStore, type VendorHttp, type VendorKeys, type VendorStateStore } from '../core/vendor-ports.js';
import { UpstreamUnavailable } from '../core/errors.js';
import { DatadogVendorKeys } from '../adapters/datadog-vendor.js';
import { DynamoVendorStateStore } from '../adapters/dynamodb-vendor-state.js';
import { fetchVendorHttp, HttpVendorKeys, MANAGEMENT_TIMEOUT_MS, type ManagementSource } from '../adapters/http-vendor.js';
import { OpenAiVendorKeys } from '../adapters/openai-vendor.js';
import { SecretsManagerStore } from '../adapters/secrets-manager-store.js';
import { ENV, vendorSecretsSchema } from './env.js';
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
  /** How long the broker trusts a cached key before reading it again, for every vendor. @default each vendor's `broker.keyCacheSeconds` */
  keyCacheTtlMs?: number;
  /** How long a management credential is cached. @default 5 minutes */
  managementCacheTtlMs?: number;
  /** @default the rotate function's timeout plus a margin (`rotationLockTtlMs()`) */
  lockTtlMs?: number;
}

export interface VendorRuntime {
  vendors: readonly VendorConfig[];
  secrets: SecretStore;
  secretIds: Record<string, VendorSecretIds>;
  state: VendorStateStore;
  http: VendorHttp;
  /** The broker's cache of `vendor`'s current key. */
  keyCacheFor(vendor: string): KeyCache;
  keysFor(vendor: VendorConfig): VendorKeys;
  target(name: string): RotateTarget | undefined;
  /** Whether the vendor's management credential is set (cached like the credential). */
  configured(vendor: VendorConfig): Promise<boolean>;
  /** Ports for one rotation run (a fresh lock owner each time); `lockTtlMs` from the invocation's remaining time. */
  rotateDeps(vendor: VendorConfig, opts?: { lockTtlMs?: number }): RotateDeps;
  /** The vendor whose key secret is `secretId` (name or ARN), for Secrets Manager rotation events. */
  vendorBySecret(secretId: string): VendorConfig | undefined;
}

/**
 * Secrets Manager, bounded: a call that hangs fails (UpstreamTimeout) after 3 s, twice at most,
 * so the broker's key read, and a rotation step, end well inside API Gateway's 29 s. The SDK
 * enforces `requestTimeout` only with `throwOnRequestTimeout`.
 */
export const SECRETS_MANAGER_TIMEOUTS = { connectionTimeout: 1_000, requestTimeout: 3_000, maxAttempts: 2 } as const;

/** The longest one Secrets Manager call can take (every attempt timing out), for deadlines. */
export const SECRETS_MANAGER_CALL_MAX_MS = (SECRETS_MANAGER_TIMEOUTS.connectionTimeout + SECRETS_MANAGER_TIMEOUTS.requestTimeout) * SECRETS_MANAGER_TIMEOUTS.maxAttempts;

/** The longest one key-management call to a vendor can take (every adapter's calls go through `managementCall`). */
export const VENDOR_CALL_MAX_MS = MANAGEMENT_TIMEOUT_MS;

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

/**
 * Parses `$TVM_VENDOR_SECRETS` (`{"<vendor>": {"key": "<secret id>", "management": "<secret id>"}}`,
 * env.ts's schema) and checks it covers the configured vendors: at init, so a bad deployment fails
 * there, naming the variable, not on each request.
 * @throws Error naming `TVM_VENDOR_SECRETS` and what is wrong.
 */
export function parseVendorSecrets(text: string | undefined, vendors: readonly Pick<VendorConfig, 'name'>[] = []): Record<string, VendorSecretIds> {
  let raw: unknown = {};
  if (text) {
    try {
      raw = JSON.parse(text);
    } catch {
      throw new Error(`${ENV.vendorSecrets}: is not valid JSON`);
    }
  }
  const parsed = vendorSecretsSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${ENV.vendorSecrets}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ')}`);
  return checkVendorSecrets(parsed.data, vendors);
}

/** Every configured vendor needs its two secrets. @throws Error naming `TVM_VENDOR_SECRETS`. */
export function checkVendorSecrets(ids: Record<string, VendorSecretIds>, vendors: readonly Pick<VendorConfig, 'name'>[]): Record<string, VendorSecretIds> {
  const missing = vendors.filter((v) => !ids[v.name]).map((v) => v.name);
  if (missing.length) throw new Error(`${ENV.vendorSecrets}: no secrets for the configured vendor${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  return ids;
}

export { LOCK_MARGIN_MS, ROTATE_FUNCTION_TIMEOUT_SECONDS, rotationLockTtlMs } from '../core/rotation/lock.js';

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
  const secretIds = settings.secretIds ? checkVendorSecrets(settings.secretIds, vendors) : parseVendorSecrets(process.env[ENV.vendorSecrets], vendors);
  const secrets =
    settings.secrets ??
    new SecretsManagerStore(secretsManagerClient({ region: rt.region, credentials: rt.settings.credentials, endpoint: settings.secretsManagerEndpoint }));
  const state = settings.state ?? new DynamoVendorStateStore(rt.ddb, rt.table);
  const http = settings.http ?? fetchVendorHttp();
  // One key cache per vendor, each with the vendor's `broker.keyCacheSeconds` (a runtime-wide
  // `keyCacheTtlMs` setting overrides them all).
  const keyCaches = new Map<string, KeyCache>();
  const keyCacheFor = (name: string): KeyCache => {
    let c = keyCaches.get(name);
    if (!c) {
      const seconds = vendors.find((v) => v.name === name)?.broker.keyCacheSeconds ?? 30;
      c = new KeyCache(secrets, (n) => secretIds[n]?.key, rt.clock, settings.keyCacheTtlMs ?? seconds * 1000);
      keyCaches.set(name, c);
    }
    return c;
  };

  // The management credential, cached (also when not set: an operator's put is seen within the TTL).
  const managementCache = new Map<string, { value: string | undefined; at: number }>();
  const managementTtl = settings.managementCacheTtlMs ?? 5 * 60_000;
  const managementValue = async (vendor: VendorConfig): Promise<string | undefined> => {
    const hit = managementCache.get(vendor.name);
    if (hit && rt.clock.now() - hit.at < managementTtl) return hit.value;
    const id = secretIds[vendor.name]?.management;
    if (!id) throw new UpstreamUnavailable('vendor_secret_not_configured', { vendor: vendor.name });
    const value = (await secrets.getValue(id, { stage: AWSCURRENT }))?.value;
    managementCache.set(vendor.name, { value, at: rt.clock.now() });
    return value;
  };
  const configured = async (vendor: VendorConfig): Promise<boolean> => isConfiguredValue(await managementValue(vendor));
  const management =
    (vendor: VendorConfig): ManagementSource =>
    async () => {
      const value = await managementValue(vendor);
      if (!isConfiguredValue(value)) throw new UpstreamUnavailable('management_credential_missing', { vendor: vendor.name });
      return value!;
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
    keyCacheFor,
    keysFor,
    target(name) {
      const vendor = vendors.find((v) => v.name === name);
      const ids = secretIds[name];
      return vendor && ids ? { vendor, secretId: ids.key } : undefined;
    },
    configured,
    rotateDeps(vendor, opts = {}) {
      return {
        secrets,
        keys: keysFor(vendor),
        state,
        clock: rt.clock,
        audit: rt.audit,
        newToken: randomUUID,
        owner: randomUUID(),
        lockTtlMs: opts.lockTtlMs ?? settings.lockTtlMs ?? rotationLockTtlMs(),
        configured: () => configured(vendor),
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
