/**
 * OpenAI project keys through the Admin API: a key is the API key of a project service account.
 * `POST /v1/organization/projects/{project_id}/service_accounts` `{"name"}` creates the account
 * and answers its key (`api_key.value`, `api_key.id`); deleting the account
 * (`DELETE …/service_accounts/{service_account_id}` → `{"deleted": true}`) revokes the key, so
 * tvm's key id is the service account id. `GET /v1/models` with the key tests it (401 when bad).
 * Authenticated with an admin key (`Authorization: Bearer`): the management secret holds JSON
 * `{"adminKey": "..."}` or the plain key. Errors are `{"error": {"message", "type", "code"}}`.
 */
import { UpstreamUnavailable } from '../core/errors.js';
import type { VendorConfig } from '../core/vendor-config.js';
import { KeyRejected, type ListedKey, type VendorHttp, type VendorKey, type VendorKeys, VendorRefused } from '../core/vendor-ports.js';
import { credentialField, getPath, managementCall, type ManagementSource } from './http-vendor.js';

function errorOf(json: unknown): string | undefined {
  const m = getPath(json, 'error.code') ?? getPath(json, 'error.type');
  return typeof m === 'string' ? m.slice(0, 100) : undefined;
}

export class OpenAiVendorKeys implements VendorKeys {
  private readonly accounts: string;
  private readonly base: string;

  constructor(
    private readonly vendor: VendorConfig,
    private readonly management: ManagementSource,
    private readonly http: VendorHttp,
  ) {
    if (!vendor.projectId) throw new Error(`vendor ${vendor.name} has no projectId`);
    this.base = vendor.baseUrl.replace(/\/+$/, '');
    this.accounts = `${this.base}/v1/organization/projects/${encodeURIComponent(vendor.projectId)}/service_accounts`;
  }

  private async managementHeaders(): Promise<Record<string, string>> {
    return { Authorization: `Bearer ${credentialField(await this.management(), 'adminKey', true)}` };
  }

  keyHeaders(key: string): Record<string, string> {
    return { Authorization: `Bearer ${key}` };
  }

  async create(name: string): Promise<VendorKey> {
    const res = await managementCall(this.http, this.vendor.name, 'create', {
      url: this.accounts,
      method: 'POST',
      headers: await this.managementHeaders(),
      json: { name },
    });
    if (res.status !== 200 && res.status !== 201) throw new VendorRefused('create', res.status, errorOf(res.json));
    const accountId = getPath(res.json, 'id');
    const key = getPath(res.json, 'api_key.value');
    if (typeof accountId !== 'string' || !accountId || typeof key !== 'string' || !key) {
      throw new UpstreamUnavailable('vendor_answer_malformed', { vendor: this.vendor.name, operation: 'create' });
    }
    return { keyId: accountId, key };
  }

  async test(key: VendorKey): Promise<void> {
    const res = await managementCall(this.http, this.vendor.name, 'test', {
      url: `${this.base}/v1/models`,
      method: 'GET',
      headers: this.keyHeaders(key.key),
    });
    if (res.status === 401 || res.status === 403) throw new KeyRejected(res.status);
    if (res.status !== 200) throw new VendorRefused('test', res.status, errorOf(res.json));
  }

  async revoke(keyId: string): Promise<void> {
    const res = await managementCall(this.http, this.vendor.name, 'revoke', {
      url: `${this.accounts}/${encodeURIComponent(keyId)}`,
      method: 'DELETE',
      headers: await this.managementHeaders(),
    });
    if (res.status === 404) return;
    if (res.status !== 200 && res.status !== 204) throw new VendorRefused('revoke', res.status, errorOf(res.json));
  }

  async list(prefix: string): Promise<ListedKey[]> {
    const out: ListedKey[] = [];
    let after: string | undefined;
    for (let page = 0; page < 100; page++) {
      const q = new URLSearchParams({ limit: '100', ...(after ? { after } : {}) });
      const res = await managementCall(this.http, this.vendor.name, 'list', {
        url: `${this.accounts}?${q}`,
        method: 'GET',
        headers: await this.managementHeaders(),
      });
      if (res.status !== 200) throw new VendorRefused('list', res.status, errorOf(res.json));
      const data = getPath(res.json, 'data');
      if (!Array.isArray(data)) throw new UpstreamUnavailable('vendor_answer_malformed', { vendor: this.vendor.name, operation: 'list' });
      for (const d of data) {
        const id = getPath(d, 'id');
        const name = getPath(d, 'name');
        if (typeof id === 'string' && typeof name === 'string' && name.startsWith(prefix)) out.push({ keyId: id, name });
      }
      const last = getPath(res.json, 'last_id');
      if (getPath(res.json, 'has_more') !== true || typeof last !== 'string') break;
      after = last;
    }
    return out;
  }
}
