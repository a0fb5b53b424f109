/**
 * The wire to vendors (global fetch, a timeout on every call, no redirects followed so a key
 * never travels to another origin), the management-call plumbing the vendor adapters share, and
 * the generic `http` vendor: key management described in config for vendors tvm has no adapter for.
 */
import { UpstreamTimeout, UpstreamUnavailable } from '../core/errors.js';
import type { HttpVendorConfig, VendorConfig } from '../core/vendor-config.js';
import {
  KeyRejected,
  type ListedKey,
  type VendorHttp,
  type VendorKey,
  type VendorKeys,
  VendorRefused,
  type VendorRequest,
  type VendorResponse,
} from '../core/vendor-ports.js';

/** Seconds a key-management call may take. */
export const MANAGEMENT_TIMEOUT_MS = 10_000;
const MAX_MANAGEMENT_ANSWER_BYTES = 1024 * 1024;

async function readLimited(res: Response, max: number): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new UpstreamUnavailable('upstream_answer_too_large', { bytes: size });
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks);
}

/** VendorHttp over the global fetch. */
export function fetchVendorHttp(fetchImpl: typeof fetch = fetch): VendorHttp {
  return {
    async send(req: VendorRequest): Promise<VendorResponse> {
      let res: Response;
      const signal = AbortSignal.timeout(req.timeoutMs);
      try {
        res = await fetchImpl(req.url, { method: req.method, headers: req.headers, body: req.body, redirect: 'manual', signal });
      } catch (e) {
        throw mapFetchError(e, req.url);
      }
      let body: Buffer;
      try {
        body = await readLimited(res, req.maxResponseBytes);
      } catch (e) {
        if (e instanceof UpstreamUnavailable) throw e;
        throw mapFetchError(e, req.url);
      }
      const headers: Record<string, string> = {};
      res.headers.forEach((v, k) => (headers[k] = v));
      return { status: res.status, headers, body };
    },
  };
}

function mapFetchError(e: unknown, url: string): Error {
  const name = (e as Error)?.name;
  const host = safeHost(url);
  if (name === 'TimeoutError' || name === 'AbortError') return new UpstreamTimeout('vendor_timeout', { host });
  return new UpstreamUnavailable('vendor_unreachable', { host, error: name });
}

function safeHost(url: string): string | undefined {
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}

export interface ManagementAnswer {
  status: number;
  json: unknown;
}

/**
 * One key-management call: JSON in and out, 5xx and 429 as UpstreamUnavailable (the next run
 * retries), transport failures as UpstreamUnavailable/UpstreamTimeout.
 */
export async function managementCall(
  http: VendorHttp,
  vendor: string,
  operation: string,
  req: { url: string; method: string; headers: Record<string, string>; json?: unknown },
): Promise<ManagementAnswer> {
  const headers: Record<string, string> = { accept: 'application/json', ...req.headers };
  let body: Uint8Array | undefined;
  if (req.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = Buffer.from(JSON.stringify(req.json));
  }
  const res = await http.send({ url: req.url, method: req.method, headers, body, timeoutMs: MANAGEMENT_TIMEOUT_MS, maxResponseBytes: MAX_MANAGEMENT_ANSWER_BYTES });
  if (res.status >= 500 || res.status === 429) {
    throw new UpstreamUnavailable(`vendor_${res.status}`, { vendor, operation, status: res.status });
  }
  let json: unknown;
  if (res.body.length) {
    try {
      json = JSON.parse(res.body.toString('utf8'));
    } catch {
      json = undefined;
    }
  }
  return { status: res.status, json };
}

/** `a.b.0.c` into a JSON value. */
export function getPath(value: unknown, path: string): unknown {
  let v: unknown = value;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** A management secret holds JSON; `field` or, for a plain string secret, the whole value. */
export function credentialField(secret: string, field: string, plainAllowed: boolean): string {
  const trimmed = secret.trim();
  if (trimmed.startsWith('{')) {
    try {
      const v = (JSON.parse(trimmed) as Record<string, unknown>)[field];
      if (typeof v === 'string' && v) return v;
    } catch {
      // falls through
    }
    throw new UpstreamUnavailable('management_credential_invalid', { field });
  }
  if (plainAllowed && trimmed) return trimmed;
  throw new UpstreamUnavailable('management_credential_invalid', { field });
}

export type ManagementSource = () => Promise<string>;

function fill(template: string, values: Record<string, string>, encode: boolean): string {
  return template.replace(/\{(keyName|keyId)\}/g, (_, k: string) => (encode ? encodeURIComponent(values[k] ?? '') : (values[k] ?? '')));
}

function fillBody(body: unknown, values: Record<string, string>): unknown {
  if (typeof body === 'string') return fill(body, values, false);
  if (Array.isArray(body)) return body.map((b) => fillBody(b, values));
  if (body && typeof body === 'object') return Object.fromEntries(Object.entries(body).map(([k, v]) => [k, fillBody(v, values)]));
  return body;
}

function vendorMessage(json: unknown): string | undefined {
  const m = getPath(json, 'message') ?? getPath(json, 'error.message') ?? getPath(json, 'error');
  return typeof m === 'string' ? m.slice(0, 200) : undefined;
}

/**
 * The generic `http` vendor. Management credential: JSON `{"token": "..."}` or the plain token;
 * sent in `managementHeader` after `managementPrefix`.
 */
export class HttpVendorKeys implements VendorKeys {
  private readonly spec: HttpVendorConfig;
  private readonly base: string;
  readonly list?: (prefix: string) => Promise<ListedKey[]>;

  constructor(
    private readonly vendor: VendorConfig,
    private readonly management: ManagementSource,
    private readonly http: VendorHttp,
  ) {
    if (!vendor.http) throw new Error(`vendor ${vendor.name} has no http section`);
    this.spec = vendor.http;
    this.base = vendor.baseUrl.replace(/\/+$/, '');
    if (this.spec.list) this.list = (prefix) => this.listKeys(prefix);
  }

  private async managementHeaders(): Promise<Record<string, string>> {
    const token = credentialField(await this.management(), 'token', true);
    return { [this.spec.managementHeader]: `${this.spec.managementPrefix ?? ''}${token}` };
  }

  keyHeaders(key: string): Record<string, string> {
    return { [this.spec.keyHeader]: `${this.spec.keyPrefix ?? ''}${key}` };
  }

  async create(name: string): Promise<VendorKey> {
    const c = this.spec.create;
    const values = { keyName: name };
    const res = await managementCall(this.http, this.vendor.name, 'create', {
      url: this.base + fill(c.path, values, true),
      method: c.method,
      headers: await this.managementHeaders(),
      json: c.body === undefined ? undefined : fillBody(c.body, values),
    });
    if (res.status < 200 || res.status > 299) throw new VendorRefused('create', res.status, vendorMessage(res.json));
    const key = getPath(res.json, c.keyPath);
    const keyId = getPath(res.json, c.idPath);
    if (typeof key !== 'string' || !key || (typeof keyId !== 'string' && typeof keyId !== 'number')) {
      throw new UpstreamUnavailable('vendor_answer_malformed', { vendor: this.vendor.name, operation: 'create' });
    }
    return { keyId: String(keyId), key };
  }

  async test(key: VendorKey): Promise<void> {
    const t = this.spec.test;
    const res = await managementCall(this.http, this.vendor.name, 'test', {
      url: this.base + fill(t.path, { keyId: key.keyId }, true),
      method: t.method,
      headers: this.keyHeaders(key.key),
      json: t.body,
    });
    if (res.status === 401 || res.status === 403) throw new KeyRejected(res.status);
    if (res.status < 200 || res.status > 299) throw new VendorRefused('test', res.status, vendorMessage(res.json));
  }

  async revoke(keyId: string): Promise<void> {
    const r = this.spec.revoke;
    const res = await managementCall(this.http, this.vendor.name, 'revoke', {
      url: this.base + fill(r.path, { keyId }, true),
      method: r.method,
      headers: await this.managementHeaders(),
      json: r.body === undefined ? undefined : fillBody(r.body, { keyId }),
    });
    if (res.status === 404) return;
    if (res.status < 200 || res.status > 299) throw new VendorRefused('revoke', res.status, vendorMessage(res.json));
  }

  private async listKeys(prefix: string): Promise<ListedKey[]> {
    const l = this.spec.list!;
    const res = await managementCall(this.http, this.vendor.name, 'list', {
      url: this.base + fill(l.path, { keyName: prefix }, true),
      method: l.method,
      headers: await this.managementHeaders(),
      json: l.body,
    });
    if (res.status < 200 || res.status > 299) throw new VendorRefused('list', res.status, vendorMessage(res.json));
    const items = getPath(res.json, l.itemsPath);
    if (!Array.isArray(items)) throw new UpstreamUnavailable('vendor_answer_malformed', { vendor: this.vendor.name, operation: 'list' });
    return items
      .map((it) => ({ keyId: String(getPath(it, l.idPath) ?? ''), name: String(getPath(it, l.namePath) ?? '') }))
      .filter((k) => k.keyId && k.name.startsWith(prefix));
  }
}
