/**
 * The local HTTP API: turns node requests into API Gateway HTTP API (payload v2) events for the
 * same handlers Lambda runs, so local and deployed behaviour cannot drift. Admin routes stand in
 * for IAM authorization: the admin token, from loopback only.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpEvent, HttpResult } from '../functions/shared/http.js';
import type { ConsoleGate } from '../console/gate.js';
import { DEV_ISSUER_PATH, type DevIssuer } from './dev-issuer.js';

export type LocalHandler = (event: HttpEvent) => Promise<HttpResult | unknown>;

/** The routes of SPEC.md with the handler (Lambda function) that serves each. */
export const ROUTES: { key: string; fn: string; admin?: boolean }[] = [
  { key: 'POST /v1/vend', fn: 'vend' },
  { key: 'GET /v1/credentials/{grant}', fn: 'vend' },
  { key: 'GET /v1/leases/{id}', fn: 'leases' },
  { key: 'POST /v1/leases/{id}/revoke', fn: 'leases' },
  { key: 'ANY /v1/broker/{vendor}/{proxy+}', fn: 'broker' },
  { key: 'GET /v1/admin/leases', fn: 'leases', admin: true },
  { key: 'GET /v1/admin/leases/{id}', fn: 'leases', admin: true },
  { key: 'POST /v1/admin/revoke', fn: 'leases', admin: true },
  { key: 'GET /v1/admin/events', fn: 'leases', admin: true },
  { key: 'GET /v1/admin/vendors', fn: 'rotate', admin: true },
  { key: 'POST /v1/admin/vendors/{name}/rotate', fn: 'rotate', admin: true },
  { key: 'POST /v1/admin/sweep', fn: 'sweep', admin: true },
];

/** API Gateway's own payload limit (and Lambda's 6 MB): larger bodies never reach a handler. */
const MAX_BODY_BYTES = 6 * 1024 * 1024;

interface Match {
  route: (typeof ROUTES)[number];
  params: Record<string, string>;
}

export function matchRoute(method: string, path: string): Match | undefined {
  const segs = path.split('/').slice(1);
  for (const route of ROUTES) {
    const [m, pattern] = route.key.split(' ');
    if (m !== 'ANY' && m !== method) continue;
    const params = matchPattern(pattern.split('/').slice(1), segs);
    if (params) return { route, params };
  }
  return undefined;
}

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** Matches path segments against `{name}` (one segment) and a final `{name+}` (the rest). A bad %-escape matches nothing. */
function matchPattern(pattern: string[], segs: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p.endsWith('+}')) {
      const rest = segs.slice(i);
      if (rest.length === 0 || rest.every((s) => s === '')) return undefined;
      const decoded = rest.map(decode);
      if (decoded.some((d) => d === undefined)) return undefined;
      params[p.slice(1, -2)] = decoded.join('/');
      return params;
    }
    const s = segs[i];
    if (s === undefined || s === '') return undefined;
    if (p.startsWith('{')) {
      const d = decode(s);
      if (d === undefined) return undefined;
      params[p.slice(1, -1)] = d;
    } else if (p !== s) return undefined;
  }
  return segs.length === pattern.length ? params : undefined;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function isLoopback(addr: string | undefined): boolean {
  return !!addr && (addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.'));
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

export interface LocalServerOptions {
  port: number;
  handlers: Record<string, LocalHandler>;
  adminToken: string;
  issuer?: () => DevIssuer | undefined;
  /** The ops console (`GET /console`, `/console/api/…`), loopback only. */
  console?: () => ConsoleGate | undefined;
  onRequest?: (line: { method: string; path: string; status: number; ms: number }) => void;
}

export interface LocalServer {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer | 'too_large'> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return 'too_large';
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function startLocalServer(opts: LocalServerOptions): Promise<LocalServer> {
  // Headers up to 64 KiB reach the handlers, so tvm's own 16 KiB token limit is what refuses a big token.
  const server = createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    const started = Date.now();
    handle(req, res)
      .catch(() => send(res, 500, { error: 'internal', message: 'An internal error occurred.', requestId: 'local' }))
      .finally(() => opts.onRequest?.({ method: req.method ?? '', path: (req.url ?? '').split('?')[0], status: res.statusCode, ms: Date.now() - started }));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = (req.method ?? 'GET').toUpperCase();
    const requestId = randomUUID();
    const sourceIp = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');

    if (url.pathname.startsWith(DEV_ISSUER_PATH)) return devIssuer(req, res, url.pathname.slice(DEV_ISSUER_PATH.length), sourceIp);
    if (url.pathname === '/console' || url.pathname.startsWith('/console/')) {
      const gate = opts.console?.();
      if (!gate) return send(res, 404, { error: 'not_found', message: 'Not found.', requestId });
      if (!isLoopback(req.socket.remoteAddress)) return send(res, 403, { error: 'access_denied', message: 'Access is denied.', requestId });
      return gate.handle(req, res);
    }

    const match = matchRoute(method, url.pathname);
    const handler = match && opts.handlers[match.route.fn];
    if (!match || !handler) return send(res, 404, { error: 'not_found', message: 'Not found.', requestId });

    const body = await readBody(req);
    if (body === 'too_large') return send(res, 413, { error: 'payload_too_large', message: 'The request is too large.', requestId });

    let authorizer: HttpEvent['requestContext']['authorizer'];
    if (match.route.admin) {
      const auth = req.headers.authorization ?? '';
      const token = /^Bearer\s+(\S+)$/i.exec(auth)?.[1] ?? '';
      if (!isLoopback(req.socket.remoteAddress) || !token || !sameSecret(token, opts.adminToken)) {
        return send(res, 401, { error: 'invalid_token', message: 'The token is not valid.', requestId });
      }
      authorizer = { iam: { userArn: 'arn:aws:iam::000000000000:user/tvm-local-admin', accountId: '000000000000' } };
    }

    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = query[k] === undefined ? v : `${query[k]},${v}`;
    const now = new Date();
    const event = {
      version: '2.0',
      routeKey: match.route.key,
      rawPath: url.pathname,
      rawQueryString: url.search.slice(1),
      headers,
      queryStringParameters: Object.keys(query).length ? query : undefined,
      pathParameters: Object.keys(match.params).length ? match.params : undefined,
      body: body.length ? body.toString('base64') : undefined,
      isBase64Encoded: body.length > 0,
      requestContext: {
        accountId: '000000000000',
        apiId: 'local',
        domainName: req.headers.host ?? '127.0.0.1',
        domainPrefix: 'local',
        http: { method, path: url.pathname, protocol: 'HTTP/1.1', sourceIp, userAgent: req.headers['user-agent'] ?? '' },
        requestId,
        routeKey: match.route.key,
        stage: '$default',
        time: now.toISOString(),
        timeEpoch: now.getTime(),
        authorizer,
      },
    } as HttpEvent;
    const result = (await handler(event)) as HttpResult;
    const outHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(result.headers ?? {})) outHeaders[k] = String(v);
    res.writeHead(result.statusCode, outHeaders);
    res.end(result.isBase64Encoded ? Buffer.from(result.body ?? '', 'base64') : (result.body ?? ''));
  }

  async function devIssuer(req: IncomingMessage, res: ServerResponse, sub: string, sourceIp: string): Promise<void> {
    const issuer = opts.issuer?.();
    if (!issuer) return send(res, 404, { error: 'not_found', message: 'Not found.' });
    if (req.method === 'GET' && sub === '/.well-known/openid-configuration') return send(res, 200, issuer.discovery());
    if (req.method === 'GET' && sub === '/jwks') return send(res, 200, issuer.jwks());
    if (req.method === 'POST' && sub === '/token') {
      // Minting is for `tvm token`: loopback and the admin token only.
      const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
      if (!isLoopback(sourceIp) || !token || !sameSecret(token, opts.adminToken)) {
        return send(res, 401, { error: 'invalid_token', message: 'The token is not valid.' });
      }
      const body = await readBody(req);
      let m: Record<string, unknown> = {};
      try {
        m = body === 'too_large' || body.length === 0 ? {} : (JSON.parse(body.toString('utf8')) as Record<string, unknown>);
      } catch {
        return send(res, 400, { error: 'invalid_request', message: 'The body is not valid JSON.' });
      }
      const jwt = await issuer.mint({
        sub: typeof m.sub === 'string' ? m.sub : undefined,
        aud: typeof m.aud === 'string' ? m.aud : undefined,
        ttlSeconds: typeof m.ttlSeconds === 'number' ? m.ttlSeconds : undefined,
        claims: m.claims && typeof m.claims === 'object' ? (m.claims as Record<string, unknown>) : undefined,
      });
      return send(res, 200, { token: jwt });
    }
    return send(res, 404, { error: 'not_found', message: 'Not found.' });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  server.keepAliveTimeout = 5000;
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
