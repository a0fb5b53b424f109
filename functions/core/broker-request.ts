/**
 * The broker use case: a verified workload calls a vendor through tvm; tvm checks the vendor's
 * allow-list and Cedar, adds the current key, and relays the answer without anything that could
 * carry the key back. The workload never holds the key.
 */
import { AccessDenied, InvalidRequest, UpstreamUnavailable } from './errors.js';
import type { Clock, PolicyEngine, RequestContext } from './ports.js';
import { parseVendorKey } from './rotate-vendor-key.js';
import { cedarContext } from './vend-credentials.js';
import type { VendorConfig } from './vendor-config.js';
import { AWSCURRENT, type SecretStore, type VendorHttp, type VendorKey, type VendorKeys, type VendorResponse } from './vendor-ports.js';
import type { VerifiedToken } from './verify-token.js';

/** Lambda's payload limit: larger request bodies are refused with 413. */
export const MAX_BROKER_BODY_BYTES = 6 * 1024 * 1024;
/** Answers are relayed base64-encoded: 4.5 MB of vendor answer is 6 MB of Lambda answer. */
export const MAX_BROKER_ANSWER_BYTES = Math.floor((MAX_BROKER_BODY_BYTES * 3) / 4);

/** Request headers relayed to the vendor. Everything else (Authorization, cookies, any key header) stays behind. */
const FORWARD_HEADERS = new Set([
  'accept',
  'accept-language',
  'content-type',
  'content-encoding',
  'user-agent',
  'idempotency-key',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'openai-beta',
  'x-request-id',
]);

/** Answer headers relayed to the caller; everything else (set-cookie, auth echoes) is dropped. */
const RELAY_HEADERS = new Set(['content-type', 'cache-control', 'etag', 'last-modified', 'retry-after', 'x-request-id', 'request-id', 'openai-processing-ms']);
const RELAY_PREFIXES = ['x-ratelimit-'];

const REDACTED = Buffer.from('[redacted]');

/** The current key of each vendor, cached for a short time and reloaded on demand (a 401 after a rotation). */
export class KeyCache {
  private readonly entries = new Map<string, { key: VendorKey; loadedAt: number }>();
  private readonly loading = new Map<string, Promise<VendorKey>>();

  constructor(
    private readonly secrets: SecretStore,
    private readonly secretIdOf: (vendor: string) => string | undefined,
    private readonly clock: Clock,
    private readonly ttlMs = 30_000,
  ) {}

  async get(vendor: string, refresh = false): Promise<VendorKey> {
    const hit = this.entries.get(vendor);
    if (!refresh && hit && this.clock.now() - hit.loadedAt < this.ttlMs) return hit.key;
    let p = this.loading.get(vendor);
    if (!p) {
      p = this.load(vendor).finally(() => this.loading.delete(vendor));
      this.loading.set(vendor, p);
    }
    return p;
  }

  private async load(vendor: string): Promise<VendorKey> {
    const secretId = this.secretIdOf(vendor);
    if (!secretId) throw new UpstreamUnavailable('vendor_secret_not_configured', { vendor });
    let value: string | undefined;
    try {
      value = (await this.secrets.getValue(secretId, { stage: AWSCURRENT }))?.value;
    } catch (e) {
      throw new UpstreamUnavailable('secret_store_unavailable', { vendor, error: (e as Error).name });
    }
    const key = parseVendorKey(value);
    if (!key) throw new UpstreamUnavailable('vendor_key_missing', { vendor });
    this.entries.set(vendor, { key, loadedAt: this.clock.now() });
    return key;
  }
}

export interface BrokerDeps {
  vendors: readonly VendorConfig[];
  policy: PolicyEngine;
  http: VendorHttp;
  keys: KeyCache;
  keysFor(vendor: VendorConfig): Pick<VendorKeys, 'keyHeaders'>;
}

export interface BrokerCall {
  who: VerifiedToken;
  vendor: string;
  method: string;
  /** The path at the vendor, as the caller sent it (still percent-encoded), starting with '/'. */
  path: string;
  /** The raw query string, without '?'. */
  rawQuery?: string;
  headers: Record<string, string | undefined>;
  body?: Buffer;
  context: RequestContext;
  sourceIp?: string;
}

/**
 * Refuses paths that could mean something else at the vendor than the allow-list saw: dot
 * segments, empty segments, encoded slashes, dots or backslashes, control characters.
 */
export function checkVendorPath(path: string): string {
  if (!path.startsWith('/') || path.length > 2048) throw new InvalidRequest('bad_path', undefined, 'The path is not valid.');
  if (/[\\\p{Cc}\s?#]/u.test(path) || /%(2e|2f|5c|00)/i.test(path)) throw new InvalidRequest('bad_path', undefined, 'The path is not valid.');
  const segs = path.split('/').slice(1);
  segs.forEach((s, i) => {
    if (s === '.' || s === '..' || (s === '' && i < segs.length - 1)) throw new InvalidRequest('bad_path', undefined, 'The path is not valid.');
  });
  try {
    decodeURIComponent(path);
  } catch {
    throw new InvalidRequest('bad_path', undefined, 'The path is not valid.');
  }
  return path;
}

/**
 * Whether `METHOD /path` is in a vendor's `broker.allow`: `*` as a segment matches exactly one
 * segment; a final `/*` matches one or more; method `*` matches any method.
 */
export function isAllowed(allow: readonly string[], method: string, path: string): boolean {
  const segs = path.split('/').slice(1);
  const segMatch = (p: string, s: string) => (p === '*' ? s !== '' : p === s);
  return allow.some((entry) => {
    const [m, pattern] = entry.split(' ');
    if (m !== '*' && m !== method) return false;
    const ps = pattern.split('/').slice(1);
    if (pattern.endsWith('/*')) {
      const prefix = ps.slice(0, -1);
      const rest = segs.slice(prefix.length);
      return segs.length > prefix.length && prefix.every((p, i) => segMatch(p, segs[i])) && rest.every((s, i) => s !== '' || i === rest.length - 1) && rest[0] !== '';
    }
    return segs.length === ps.length && ps.every((p, i) => segMatch(p, segs[i]));
  });
}

/** Replaces every occurrence of `secret` in `buf`. */
export function redact(buf: Buffer, secret: string): Buffer {
  if (!secret) return buf;
  const needle = Buffer.from(secret);
  let at = buf.indexOf(needle);
  if (at < 0) return buf;
  const parts: Buffer[] = [];
  let from = 0;
  while (at >= 0) {
    parts.push(buf.subarray(from, at), REDACTED);
    from = at + needle.length;
    at = buf.indexOf(needle, from);
  }
  parts.push(buf.subarray(from));
  return Buffer.concat(parts);
}

function relayHeaders(headers: Record<string, string>, key: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase();
    if (!RELAY_HEADERS.has(name) && !RELAY_PREFIXES.some((p) => name.startsWith(p))) continue;
    if (key && v.includes(key)) continue;
    out[name] = v;
  }
  return out;
}

export interface BrokerAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Forwards one call to a vendor with its current key.
 * @throws AccessDenied (unknown vendor, path outside `broker.allow`, Cedar deny), InvalidRequest
 *   (a path that is not plain), PayloadTooLarge (handler), UpstreamTimeout (504), UpstreamUnavailable (503).
 * @example const answer = await brokerRequest(deps, { who, vendor: 'datadog', method: 'GET', path: '/api/v1/validate', headers: {}, context: {} }, record);
 */
export async function brokerRequest(deps: BrokerDeps, call: BrokerCall, record: Record<string, unknown> = {}): Promise<BrokerAnswer> {
  const method = call.method.toUpperCase();
  Object.assign(record, { vendor: call.vendor, method, path: call.path });
  const vendor = deps.vendors.find((v) => v.name === call.vendor);
  if (!vendor) throw new AccessDenied('unknown_vendor', { vendor: call.vendor });
  const path = checkVendorPath(call.path);
  if (!isAllowed(vendor.broker.allow, method, path)) throw new AccessDenied('path_not_allowed', { vendor: vendor.name, method, path });

  const decision = deps.policy.decide({
    principal: { issuer: call.who.issuer.name, iss: call.who.iss, sub: call.who.sub, claims: call.who.claims },
    action: 'broker',
    resource: { type: 'Vendor', id: vendor.name },
    context: cedarContext(call.context, { method, path, sourceIp: call.sourceIp }),
  });
  record.decision = decision.policyIds;
  if (!decision.allow) throw new AccessDenied('policy_deny', { policies: decision.policyIds, errors: decision.errors });

  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(call.headers)) if (v !== undefined && FORWARD_HEADERS.has(k.toLowerCase())) headers[k.toLowerCase()] = v;
  const url = vendor.baseUrl.replace(/\/+$/, '') + path + (call.rawQuery ? `?${call.rawQuery}` : '');
  const hasBody = !!call.body?.length && method !== 'GET' && method !== 'HEAD';
  const adapter = deps.keysFor(vendor);

  const send = async (key: VendorKey): Promise<VendorResponse> =>
    deps.http.send({
      url,
      method,
      headers: { ...headers, ...adapter.keyHeaders(key.key) },
      body: hasBody ? call.body : undefined,
      timeoutMs: vendor.broker.timeoutSeconds * 1000,
      maxResponseBytes: MAX_BROKER_ANSWER_BYTES,
    });

  let key = await deps.keys.get(vendor.name);
  let answer = await send(key);
  // 401 (or Datadog's 403 for a bad API key) after a rotation revoked the cached key: reload once.
  if (answer.status === 401 || answer.status === 403) {
    const fresh = await deps.keys.get(vendor.name, true);
    if (fresh.keyId !== key.keyId) {
      record.keyRefreshed = true;
      key = fresh;
      answer = await send(key);
    }
  }
  record.keyId = key.keyId;
  record.upstreamStatus = answer.status;
  return { status: answer.status, headers: relayHeaders(answer.headers, key.key), body: redact(answer.body, key.key) };
}
