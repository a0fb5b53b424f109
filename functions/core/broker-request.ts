/**
 * The broker use case: a verified workload calls a vendor through tvm; tvm checks the vendor's
 * allow-list and Cedar, adds the current key, and relays the answer without anything that could
 * carry the key back. The workload never holds the key.
 */
import { AccessDenied, InvalidRequest, UpstreamUnavailable } from './errors.js';
import { principalOf, requireAllow } from './decision.js';
import type { AuthzRequest, Clock, PolicyEngine, RequestContext } from './ports.js';
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
  /** The path at the vendor as the caller sent it (still percent-encoded), starting with '/'; canonicalised here. */
  path: string;
  /** The raw query string, without '?'. */
  rawQuery?: string;
  headers: Record<string, string | undefined>;
  body?: Buffer;
  context: RequestContext;
  sourceIp?: string;
}

const badPath = (why: string): never => {
  throw new InvalidRequest('bad_path', { why }, 'The path is not valid.');
};

/** RFC 3986 §2.3: percent-encoding these changes nothing, so they are decoded (§6.2.2.2). */
const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * The one spelling of a vendor path that the allow-list, Cedar's `context.path` and the vendor all
 * see (RFC 3986 §6.2.2): percent-encoded unreserved characters decoded (`%62` → `b`), other
 * escapes kept with upper-case hex (`%3f` → `%3F`). A double encoding stays what it is: `%2562`
 * is the three characters `%62` at the vendor, never `b`. Refused (400 `bad_path`): anything
 * a vendor or a proxy in front of it could read as another path — encoded `/`, `\`, NUL and
 * other control characters, dot segments in any spelling (`..`, `%2e%2E`), empty segments
 * (`//`), `;` path parameters (raw or `%3B`, which some servers strip), a bad escape, a
 * non-UTF-8 byte sequence, and any raw character outside RFC 3986's `pchar`.
 * @example canonicalVendorPath('/v1/%62illing/%3finvoices') // → '/v1/billing/%3Finvoices'
 */
export function canonicalVendorPath(path: string): string {
  if (!path.startsWith('/') || path.length > 2048) badPath('not an absolute path');
  // RFC 3986 pchar and '/', without ';': anything else (space, '\\', '?', '#', controls, raw
  // non-ASCII that a client would encode on the way out) is not a plain path.
  if (!/^[A-Za-z0-9\-._~%!$&'()*+,=:@/]*$/.test(path)) badPath('character not allowed');
  const canonical = path.replace(/%(.{0,2})/gs, (_all, hex: string) => {
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return badPath('bad percent-encoding');
    const code = parseInt(hex, 16);
    const ch = String.fromCharCode(code);
    if (code < 0x20 || code === 0x7f || ch === '/' || ch === '\\' || ch === ';') return badPath(`encoded ${hex}`);
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
  const segs = canonical.split('/').slice(1);
  segs.forEach((seg, i) => {
    if (seg === '.' || seg === '..') badPath('dot segment');
    if (seg === '' && i < segs.length - 1) badPath('empty segment');
  });
  try {
    decodeURIComponent(canonical);
  } catch {
    badPath('not UTF-8');
  }
  return canonical;
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

/**
 * The spellings of a key an answer could carry it in: verbatim, percent-encoded (either hex
 * case), and base64 / base64url at each of the three byte alignments a key can sit at inside a
 * longer encoded value (`Basic base64(user:key)`): for each, the run of characters that only
 * key bytes determine, so at most two bytes of key at either edge could remain beside it.
 */
export function keyForms(key: string): string[] {
  if (!key) return [];
  const bytes = Buffer.from(key);
  const forms = new Set([key, encodeURIComponent(key), encodeURIComponent(key).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())]);
  for (let lead = 0; lead < 3; lead++) {
    const padded = Buffer.concat([Buffer.alloc(lead), bytes, Buffer.alloc(2)]);
    const from = Math.ceil((8 * lead) / 6);
    const to = Math.floor((8 * (lead + bytes.length)) / 6);
    for (const enc of ['base64', 'base64url'] as const) {
      const core = padded.toString(enc).slice(from, to);
      if (core.length >= 4) forms.add(core);
    }
  }
  return [...forms];
}

/** Replaces every occurrence of each of `secrets` in `buf`, longest first. */
export function redact(buf: Buffer, secrets: string | readonly string[]): Buffer {
  const needles = (typeof secrets === 'string' ? [secrets] : [...secrets]).filter(Boolean).sort((a, b) => b.length - a.length);
  let out = buf;
  for (const secret of needles) {
    const needle = Buffer.from(secret);
    let at = out.indexOf(needle);
    if (at < 0) continue;
    const parts: Buffer[] = [];
    let from = 0;
    while (at >= 0) {
      parts.push(out.subarray(from, at), REDACTED);
      from = at + needle.length;
      at = out.indexOf(needle, from);
    }
    parts.push(out.subarray(from));
    out = Buffer.concat(parts);
  }
  return out;
}

function relayHeaders(headers: Record<string, string>, forms: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase();
    if (!RELAY_HEADERS.has(name) && !RELAY_PREFIXES.some((p) => name.startsWith(p))) continue;
    if (forms.some((f) => v.includes(f))) continue;
    out[name] = v;
  }
  return out;
}

export interface BrokerAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** The Cedar request of a broker call, `path` canonical (also what `tvm policy eval` decides). */
export function brokerAuthzRequest(who: Pick<VerifiedToken, 'issuer' | 'iss' | 'sub' | 'claims'>, vendor: string, method: string, path: string, context: RequestContext, sourceIp?: string): AuthzRequest {
  return { principal: principalOf(who), action: 'broker', resource: { type: 'Vendor', id: vendor }, context: cedarContext(context, { method, path, sourceIp }) };
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
  // The path needs no vendor to check: checked first, a 400 says nothing about which vendors exist.
  const path = canonicalVendorPath(call.path);
  record.path = path;
  const vendor = deps.vendors.find((v) => v.name === call.vendor);
  if (!vendor) throw new AccessDenied('unknown_vendor', { vendor: call.vendor });
  if (!isAllowed(vendor.broker.allow, method, path)) throw new AccessDenied('path_not_allowed', { vendor: vendor.name, method, path });

  const decision = deps.policy.decide(brokerAuthzRequest(call.who, vendor.name, method, path, call.context, call.sourceIp));
  record.decision = decision.policyIds;
  requireAllow(decision);

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
  const forms = keyForms(key.key);
  return { status: answer.status, headers: relayHeaders(answer.headers, forms), body: redact(answer.body, forms) };
}
