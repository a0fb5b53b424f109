/**
 * A fake of a vendor tvm has no adapter for ("acme"), matching the `http` vendor config in
 * docs/vendors.md: `POST /admin/keys` `{"name"}` → 201 `{"key": {"id", "secret", "name"}}`,
 * `GET /admin/keys?name=` → `{"keys": [{"id", "name"}]}`, `DELETE /admin/keys/{id}` → 204,
 * management with `X-Admin-Token`; calls with `X-Api-Key`: `GET /v1/whoami` and anything under
 * `/v1/`. Errors are `{"message": "..."}`.
 */
import { type FakeAnswer, type FakeRequest, token, VendorFake } from './base.js';

/** The `http` section that drives this fake (also the example in docs/vendors.md). */
export const ACME_HTTP_CONFIG = {
  keyHeader: 'X-Api-Key',
  managementHeader: 'X-Admin-Token',
  create: { method: 'POST', path: '/admin/keys', body: { name: '{keyName}' }, keyPath: 'key.secret', idPath: 'key.id' },
  test: { method: 'GET', path: '/v1/whoami' },
  revoke: { method: 'DELETE', path: '/admin/keys/{keyId}' },
  list: { method: 'GET', path: '/admin/keys?name={keyName}', itemsPath: 'keys', idPath: 'id', namePath: 'name' },
} as const;

export class HttpFake extends VendorFake {
  adminToken = token('acme-admin-');

  protected managementState(): Record<string, string> {
    return { token: this.adminToken };
  }
  protected restoreManagement(m: Record<string, string>): void {
    this.adminToken = m.token;
  }
  managementSecret(): string {
    return JSON.stringify({ token: this.adminToken });
  }
  protected errorBody(status: number): unknown {
    return { message: status >= 500 ? 'server error' : status === 404 ? 'not found' : status === 401 ? 'unauthorized' : 'bad request' };
  }
  private err(status: number): FakeAnswer {
    return { status, body: this.errorBody(status) };
  }

  protected route(req: FakeRequest) {
    const { method, path } = req;
    const admin = () => req.headers['x-admin-token'] === this.adminToken;
    if (path === '/admin/keys' && method === 'POST') {
      return {
        op: 'create',
        run: (): FakeAnswer => {
          if (!admin()) return this.err(401);
          const name = (req.json() as { name?: unknown })?.name;
          if (typeof name !== 'string' || !name) return this.err(400);
          const k = this.addKey(name, 'acme_', 'k_');
          return { status: 201, body: { key: { id: k.id, secret: k.key, name: k.name } } };
        },
      };
    }
    if (path === '/admin/keys' && method === 'GET') {
      return {
        op: 'list',
        run: (): FakeAnswer => {
          if (!admin()) return this.err(401);
          const prefix = req.query.get('name') ?? '';
          return { status: 200, body: { keys: this.liveKeys().filter((k) => k.name.startsWith(prefix)).map((k) => ({ id: k.id, name: k.name })) } };
        },
      };
    }
    const del = /^\/admin\/keys\/([^/]+)$/.exec(path);
    if (del && method === 'DELETE') {
      return {
        op: 'revoke',
        run: (): FakeAnswer => {
          if (!admin()) return this.err(401);
          return this.removeKey(decodeURIComponent(del[1])) ? { status: 204 } : this.err(404);
        },
      };
    }
    const key = req.headers['x-api-key'] as string | undefined;
    if (path === '/v1/whoami' && method === 'GET') {
      return { op: 'test', run: (): FakeAnswer => (this.isLive(key) ? this.echo({ status: 200, body: { ok: true } }, key) : this.err(401)) };
    }
    if (path.startsWith('/v1/')) {
      return {
        op: 'call',
        run: (): FakeAnswer => (this.isLive(key) ? this.echo({ status: 200, body: { ok: true, method, path, query: req.query.toString() } }, key) : this.err(401)),
      };
    }
    return undefined;
  }
}
