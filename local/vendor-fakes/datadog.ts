/**
 * A fake Datadog following the published API: Key Management v2 (`/api/v2/api_keys`: create 201,
 * list, delete 204, 404 for an unknown id), `GET /api/v1/validate` (200 `{"valid": true}`, 403
 * for a bad key), and `POST /api/v2/series` (202) as a brokered call. Key management needs a
 * valid `DD-API-KEY` and the application key in `DD-APPLICATION-KEY` (else 403). Errors are
 * `{"errors": ["..."]}`.
 */
import { type FakeAnswer, type FakeRequest, token, VendorFake } from './base.js';

const PHRASES: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not found',
  429: 'Too many requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export class DatadogFake extends VendorFake {
  /** An API key outside rotation (the management pair's API key) and the application key. */
  managementApiKey = token('');
  applicationKey = token('', 20);

  protected managementState(): Record<string, string> {
    return { apiKey: this.managementApiKey, applicationKey: this.applicationKey };
  }
  protected restoreManagement(m: Record<string, string>): void {
    this.managementApiKey = m.apiKey;
    this.applicationKey = m.applicationKey;
  }
  managementSecret(): string {
    return JSON.stringify({ apiKey: this.managementApiKey, applicationKey: this.applicationKey });
  }
  protected errorBody(status: number): unknown {
    return { errors: [PHRASES[status] ?? 'Error'] };
  }

  private apiKeyOk(req: FakeRequest): boolean {
    const k = req.headers['dd-api-key'];
    return typeof k === 'string' && (k === this.managementApiKey || this.isLive(k));
  }
  private managementOk(req: FakeRequest): boolean {
    return this.apiKeyOk(req) && req.headers['dd-application-key'] === this.applicationKey;
  }
  private forbidden(): FakeAnswer {
    return { status: 403, body: this.errorBody(403) };
  }

  private full(k: { id: string; key: string; name: string; createdAt: string }, withKey: boolean) {
    return {
      type: 'api_keys',
      id: k.id,
      attributes: {
        category: 'default',
        created_at: k.createdAt,
        ...(withKey ? { key: k.key } : {}),
        last4: k.key.slice(-4),
        modified_at: k.createdAt,
        name: k.name,
        remote_config_read_enabled: false,
      },
      relationships: { created_by: { data: { type: 'users', id: 'tvm-fake-user' } }, modified_by: { data: { type: 'users', id: 'tvm-fake-user' } } },
    };
  }

  protected route(req: FakeRequest) {
    const { method, path } = req;
    if (path === '/api/v2/api_keys' && method === 'POST') {
      return {
        op: 'create',
        run: (): FakeAnswer => {
          if (!this.managementOk(req)) return this.forbidden();
          const body = req.json() as { data?: { type?: string; attributes?: { name?: unknown } } };
          const name = body?.data?.attributes?.name;
          if (body?.data?.type !== 'api_keys' || typeof name !== 'string' || !name) return { status: 400, body: this.errorBody(400) };
          const k = this.addKey(name, '', '');
          return { status: 201, body: { data: this.full(k, true) } };
        },
      };
    }
    if (path === '/api/v2/api_keys' && method === 'GET') {
      return {
        op: 'list',
        run: (): FakeAnswer => {
          if (!this.managementOk(req)) return this.forbidden();
          const filter = req.query.get('filter') ?? '';
          const size = Number(req.query.get('page[size]') ?? 10);
          const number = Number(req.query.get('page[number]') ?? 0);
          const all = this.liveKeys().filter((k) => k.name.includes(filter));
          const page = all.slice(number * size, number * size + size);
          return { status: 200, body: { data: page.map((k) => this.full(k, false)), meta: { page: { total_filtered_count: all.length } } } };
        },
      };
    }
    const del = /^\/api\/v2\/api_keys\/([^/]+)$/.exec(path);
    if (del && method === 'DELETE') {
      return {
        op: 'revoke',
        run: (): FakeAnswer => {
          if (!this.managementOk(req)) return this.forbidden();
          if (!this.removeKey(decodeURIComponent(del[1]))) return { status: 404, body: { errors: ['API key not found'] } };
          return { status: 204 };
        },
      };
    }
    if (path === '/api/v1/validate' && method === 'GET') {
      return {
        op: 'test',
        run: (): FakeAnswer => (this.apiKeyOk(req) ? this.echo({ status: 200, body: { valid: true } }, req.headers['dd-api-key'] as string) : this.forbidden()),
      };
    }
    if (path === '/api/v2/series' && method === 'POST') {
      return {
        op: 'call',
        run: (): FakeAnswer => (this.apiKeyOk(req) ? this.echo({ status: 202, body: { errors: [] } }, req.headers['dd-api-key'] as string) : this.forbidden()),
      };
    }
    return undefined;
  }
}
