/**
 * A fake OpenAI following the published Admin API for project service accounts
 * (`/v1/organization/projects/{project_id}/service_accounts`: create answers the account and its
 * unredacted `api_key`; list; delete answers `{"object": "organization.project.service_account.deleted", "deleted": true}`),
 * authenticated with an admin key (`Authorization: Bearer`), plus `GET /v1/models` and
 * `POST /v1/chat/completions` for project keys. Errors are `{"error": {"message", "type", "param", "code"}}`.
 */
import { type FakeAnswer, type FakeRequest, token, VendorFake } from './base.js';

export class OpenAiFake extends VendorFake {
  adminKey = token('sk-admin-');

  constructor(
    name: string,
    readonly projectId: string,
    file?: string,
  ) {
    super(name, file);
  }

  protected managementState(): Record<string, string> {
    return { adminKey: this.adminKey };
  }
  protected restoreManagement(m: Record<string, string>): void {
    this.adminKey = m.adminKey;
  }
  managementSecret(): string {
    return JSON.stringify({ adminKey: this.adminKey });
  }
  protected errorBody(status: number): unknown {
    const e: Record<number, { message: string; type: string; code: string | null }> = {
      400: { message: 'Invalid request.', type: 'invalid_request_error', code: null },
      401: { message: 'Incorrect API key provided.', type: 'invalid_request_error', code: 'invalid_api_key' },
      403: { message: 'You have insufficient permissions for this operation.', type: 'invalid_request_error', code: 'insufficient_permissions' },
      404: { message: 'Not found.', type: 'invalid_request_error', code: 'not_found' },
      429: { message: 'Rate limit reached.', type: 'requests', code: 'rate_limit_exceeded' },
    };
    const x = e[status] ?? { message: 'The server had an error while processing your request.', type: 'server_error', code: null };
    return { error: { ...x, param: null } };
  }

  private bearer(req: FakeRequest): string | undefined {
    const m = /^Bearer (\S+)$/.exec((req.headers.authorization as string | undefined) ?? '');
    return m?.[1];
  }
  private err(status: number): FakeAnswer {
    return { status, body: this.errorBody(status) };
  }
  private account(k: { id: string; name: string; createdAt: string }) {
    return { object: 'organization.project.service_account', id: k.id, name: k.name, role: 'member', created_at: Math.floor(Date.parse(k.createdAt) / 1000) };
  }

  protected route(req: FakeRequest) {
    const { method, path } = req;
    const m = /^\/v1\/organization\/projects\/([^/]+)\/service_accounts(?:\/([^/]+))?$/.exec(path);
    if (m) {
      const admin = () => this.bearer(req) === this.adminKey;
      const project = decodeURIComponent(m[1]);
      const id = m[2] && decodeURIComponent(m[2]);
      if (!id && method === 'POST') {
        return {
          op: 'create',
          run: (): FakeAnswer => {
            if (!admin()) return this.err(401);
            if (project !== this.projectId) return this.err(404);
            const name = (req.json() as { name?: unknown })?.name;
            if (typeof name !== 'string' || !name) return this.err(400);
            const k = this.addKey(name, 'sk-svcacct-', 'svc_acct_');
            const created = Math.floor(Date.parse(k.createdAt) / 1000);
            return {
              status: 200,
              body: {
                ...this.account(k),
                api_key: { object: 'organization.project.service_account.api_key', value: k.key, name: 'Secret Key', created_at: created, id: `key_${k.id.slice(9)}` },
              },
            };
          },
        };
      }
      if (!id && method === 'GET') {
        return {
          op: 'list',
          run: (): FakeAnswer => {
            if (!admin()) return this.err(401);
            if (project !== this.projectId) return this.err(404);
            const all = this.liveKeys();
            const after = req.query.get('after');
            const limit = Math.min(100, Number(req.query.get('limit') ?? 20));
            const start = after ? all.findIndex((k) => k.id === after) + 1 : 0;
            const page = all.slice(start, start + limit);
            return {
              status: 200,
              body: { object: 'list', data: page.map((k) => this.account(k)), first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null, has_more: start + limit < all.length },
            };
          },
        };
      }
      if (id && method === 'DELETE') {
        return {
          op: 'revoke',
          run: (): FakeAnswer => {
            if (!admin()) return this.err(401);
            if (project !== this.projectId || !this.removeKey(id)) return this.err(404);
            return { status: 200, body: { object: 'organization.project.service_account.deleted', id, deleted: true } };
          },
        };
      }
    }
    if (path === '/v1/models' && method === 'GET') {
      return {
        op: 'test',
        run: (): FakeAnswer =>
          this.isLive(this.bearer(req))
            ? this.echo({ status: 200, body: { object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model', created: 1721172741, owned_by: 'system' }] } }, this.bearer(req))
            : this.err(401),
      };
    }
    if (path === '/v1/chat/completions' && method === 'POST') {
      return {
        op: 'call',
        run: (): FakeAnswer => {
          if (!this.isLive(this.bearer(req))) return this.err(401);
          return this.echo(
            {
              status: 200,
              body: {
                id: token('chatcmpl-', 8),
                object: 'chat.completion',
                created: Math.floor(Date.now() / 1000),
                model: 'gpt-4o-mini',
                choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
              },
            },
            this.bearer(req),
          );
        },
      };
    }
    return undefined;
  }
}
