/**
 * Datadog API keys through Datadog's Key Management API (v2): `POST /api/v2/api_keys` creates
 * (201, `data.id`, `data.attributes.key`), `DELETE /api/v2/api_keys/{api_key_id}` revokes (204),
 * `GET /api/v2/api_keys?filter=` lists, and `GET /api/v1/validate` with `DD-API-KEY` tests
 * (200 `{"valid": true}`, 403 for a bad key). Key management needs both `DD-API-KEY` and
 * `DD-APPLICATION-KEY`: the management secret holds JSON `{"apiKey": "...", "applicationKey": "..."}`
 * (an API key tvm does not rotate, and an application key with `api_keys_write`). Errors are
 * `{"errors": ["..."]}`.
 */
import { UpstreamUnavailable } from '../core/errors.js';
import type { VendorConfig } from '../core/vendor-config.js';
import { KeyRejected, type ListedKey, type VendorHttp, type VendorKey, type VendorKeys, VendorRefused } from '../core/vendor-ports.js';
import { credentialField, getPath, managementCall, type ManagementSource } from './http-vendor.js';

function errorsOf(json: unknown): string | undefined {
  const e = getPath(json, 'errors');
  return Array.isArray(e) ? e.filter((x) => typeof x === 'string').join('; ').slice(0, 200) : undefined;
}

export class DatadogVendorKeys implements VendorKeys {
  private readonly base: string;

  constructor(
    private readonly vendor: VendorConfig,
    private readonly management: ManagementSource,
    private readonly http: VendorHttp,
  ) {
    this.base = vendor.baseUrl.replace(/\/+$/, '');
  }

  private async managementHeaders(): Promise<Record<string, string>> {
    const secret = await this.management();
    return { 'DD-API-KEY': credentialField(secret, 'apiKey', false), 'DD-APPLICATION-KEY': credentialField(secret, 'applicationKey', false) };
  }

  keyHeaders(key: string): Record<string, string> {
    return { 'DD-API-KEY': key };
  }

  async create(name: string): Promise<VendorKey> {
    const res = await managementCall(this.http, this.vendor.name, 'create', {
      url: `${this.base}/api/v2/api_keys`,
      method: 'POST',
      headers: await this.managementHeaders(),
      json: { data: { type: 'api_keys', attributes: { name } } },
    });
    if (res.status !== 201 && res.status !== 200) throw new VendorRefused('create', res.status, errorsOf(res.json));
    const keyId = getPath(res.json, 'data.id');
    const key = getPath(res.json, 'data.attributes.key');
    if (typeof keyId !== 'string' || !keyId || typeof key !== 'string' || !key) {
      throw new UpstreamUnavailable('vendor_answer_malformed', { vendor: this.vendor.name, operation: 'create' });
    }
    return { keyId, key };
  }

  async test(key: VendorKey): Promise<void> {
    const res = await managementCall(this.http, this.vendor.name, 'test', {
      url: `${this.base}/api/v1/validate`,
      method: 'GET',
      headers: this.keyHeaders(key.key),
    });
    if (res.status === 401 || res.status === 403) throw new KeyRejected(res.status);
    if (res.status !== 200) throw new VendorRefused('test', res.status, errorsOf(res.json));
    if (getPath(res.json, 'valid') !== true) throw new KeyRejected(res.status);
  }

  async revoke(keyId: string): Promise<void> {
    const res = await managementCall(this.http, this.vendor.name, 'revoke', {
      url: `${this.base}/api/v2/api_keys/${encodeURIComponent(keyId)}`,
      method: 'DELETE',
      headers: await this.managementHeaders(),
    });
    if (res.status === 204 || res.status === 200 || res.status === 404) return;
    throw new VendorRefused('revoke', res.status, errorsOf(res.json));
  }

  async list(prefix: string): Promise<ListedKey[]> {
    const out: ListedKey[] = [];
    for (let page = 0; page < 50; page++) {
      const q = new URLSearchParams({ filter: prefix, 'page[size]': '100', 'page[number]': String(page) });
      const res = await managementCall(this.http, this.vendor.name, 'list', {
        url: `${this.base}/api/v2/api_keys?${q}`,
        method: 'GET',
        headers: await this.managementHeaders(),
      });
      if (res.status !== 200) throw new VendorRefused('list', res.status, errorsOf(res.json));
      const data = getPath(res.json, 'data');
      if (!Array.isArray(data)) throw new UpstreamUnavailable('vendor_answer_malformed', { vendor: this.vendor.name, operation: 'list' });
      for (const d of data) {
        const id = getPath(d, 'id');
        const name = getPath(d, 'attributes.name');
        if (typeof id === 'string' && typeof name === 'string' && name.startsWith(prefix)) out.push({ keyId: id, name });
      }
      if (data.length < 100) break;
    }
    return out;
  }
}
