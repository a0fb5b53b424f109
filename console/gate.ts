/**
 * The ops console's door, shared by `tvm dev` (which serves it beside the API) and `tvm console`
 * (a loopback server in front of a deployed tvm). It adds no authority of its own: it serves one
 * static page and forwards a fixed list of admin routes to `forward`, which holds the real admin
 * credential (the local admin token, or the operator's AWS credentials for SigV4) — the browser
 * never sees it.
 *
 * A browser gets in once, with a one-time code (`/console?code=…`, printed by whoever started
 * the server): the code is exchanged for a random session value in a cookie (HttpOnly,
 * SameSite=Strict, Path=/console) and the browser is redirected to `/console` without the code.
 * API calls (`/console/api/v1/admin/…`) need that cookie and the `x-tvm-console` header, which a
 * cross-site form or image cannot send, and a same-origin `Origin` when one is given (CSRF).
 * `Authorization: Bearer <admin token>` is accepted instead of the cookie, for scripts.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An admin call made on the console's behalf: `path` is the admin route with its query. */
export type ConsoleForward = (req: { method: 'GET' | 'POST'; path: string; body?: string }) => Promise<{ status: number; body: unknown }>;

export interface ConsoleGateOptions {
  forward: ConsoleForward;
  /** Also accepted as `Authorization: Bearer …` (the local stack's admin token). */
  adminToken?: string;
  /** How long a console session lasts (default 12 h). */
  sessionSeconds?: number;
  /** Milliseconds since the epoch (tests move it). */
  now?: () => number;
}

export interface ConsoleGate {
  /** A fresh one-time code: `/console?code=<it>` lets one browser in, once. */
  issueCode(): string;
  /** Answers a request under `/console`; the caller routes only those paths here. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

/** The header every console API call carries: a cross-site form cannot set it. */
export const CONSOLE_HEADER = 'x-tvm-console';

/** The admin routes the page may call, and nothing else (no sweep, no workload routes). */
const API_ROUTES: { method: 'GET' | 'POST'; path: RegExp }[] = [
  { method: 'GET', path: /^\/v1\/admin\/leases$/ },
  { method: 'GET', path: /^\/v1\/admin\/leases\/[^/]+$/ },
  { method: 'GET', path: /^\/v1\/admin\/events$/ },
  { method: 'GET', path: /^\/v1\/admin\/vendors$/ },
  { method: 'POST', path: /^\/v1\/admin\/revoke$/ },
  { method: 'POST', path: /^\/v1\/admin\/vendors\/[^/]+\/rotate$/ },
];

const MAX_API_BODY = 64 * 1024;
const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:(\d{1,5}))?$/;

/** The page, read once; its inline script and style are allowed by hash and nothing else is. */
export const CONSOLE_PAGE = readFileSync(new URL('./page.html', import.meta.url), 'utf8');

function inlineHashes(html: string, tag: 'script' | 'style'): string {
  const hashes = [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => `'sha256-${createHash('sha256').update(m[1]).digest('base64')}'`);
  return hashes.join(' ') || "'none'";
}

const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${inlineHashes(CONSOLE_PAGE, 'script')}`,
  `style-src ${inlineHashes(CONSOLE_PAGE, 'style')}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

function sameSecret(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y);
}

function cookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

function answer(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', ...COMMON_HEADERS, ...headers });
  res.end(text);
}

const refused = (res: ServerResponse, status: 401 | 403, why: string) =>
  answer(res, status, { error: status === 401 ? 'invalid_token' : 'access_denied', message: why, requestId: 'console' });

async function readUpTo(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function createConsoleGate(opts: ConsoleGateOptions): ConsoleGate {
  const now = opts.now ?? Date.now;
  const sessionMs = (opts.sessionSeconds ?? 12 * 3600) * 1000;
  // Only hashes are kept: a dump of this process's maps holds no usable code or session.
  const codes = new Set<string>();
  const sessions = new Map<string, number>();
  const digest = (s: string) => createHash('sha256').update(s).digest('base64url');

  function sessionOf(req: IncomingMessage, cookieName: string): boolean {
    const sid = cookies(req).get(cookieName);
    if (!sid) return false;
    const until = sessions.get(digest(sid));
    if (until === undefined) return false;
    if (until <= now()) {
      sessions.delete(digest(sid));
      return false;
    }
    return true;
  }

  function bearer(req: IncomingMessage): boolean {
    const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    return !!(token && opts.adminToken && sameSecret(token, opts.adminToken));
  }

  return {
    issueCode() {
      const code = randomBytes(24).toString('base64url');
      codes.add(digest(code));
      return code;
    },

    async handle(req, res) {
      const host = req.headers.host ?? '';
      const hostMatch = LOOPBACK_HOST.exec(host);
      // A DNS-rebound name (evil.example → 127.0.0.1) is not this origin: nothing is served to it.
      if (!hostMatch) return refused(res, 403, 'The console is served on loopback only.');
      const origin = `http://${host}`;
      // Cookies are per host, not per port: two consoles on one machine each keep their own.
      const cookieName = `tvm_console_${hostMatch[3] ?? '80'}`;
      const url = new URL(req.url ?? '/', origin);
      const method = (req.method ?? 'GET').toUpperCase();

      if (url.pathname === '/console' || url.pathname === '/console/') {
        if (method !== 'GET') return answer(res, 405, { error: 'invalid_request', message: 'Method not allowed.', requestId: 'console' });
        const code = url.searchParams.get('code');
        if (code !== null) {
          const key = digest(code);
          if (!codes.delete(key)) return refused(res, 403, 'This console link is not valid or was used already: run `tvm console` for a new one.');
          const sid = randomBytes(32).toString('base64url');
          sessions.set(digest(sid), now() + sessionMs);
          return answer(res, 303, '', {
            location: '/console',
            'set-cookie': `${cookieName}=${sid}; HttpOnly; SameSite=Strict; Path=/console; Max-Age=${Math.floor(sessionMs / 1000)}`,
          });
        }
        if (!sessionOf(req, cookieName) && !bearer(req)) return refused(res, 401, 'Open the console link that `tvm dev` or `tvm console` printed.');
        return answer(res, 200, CONSOLE_PAGE, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': PAGE_CSP });
      }

      if (!url.pathname.startsWith('/console/api/')) return answer(res, 404, { error: 'not_found', message: 'Not found.', requestId: 'console' });
      const viaBearer = bearer(req);
      if (!viaBearer) {
        if (!sessionOf(req, cookieName)) return refused(res, 401, 'No console session.');
        // CSRF: the cookie alone never suffices; the page's own fetch sends this header, a form cannot.
        if (req.headers[CONSOLE_HEADER] !== '1') return refused(res, 403, 'Console API calls come from the console page.');
        const from = req.headers.origin;
        if (from !== undefined && from !== origin) return refused(res, 403, 'Cross-origin requests are refused.');
        const site = req.headers['sec-fetch-site'];
        if (site !== undefined && site !== 'same-origin') return refused(res, 403, 'Cross-site requests are refused.');
      }
      const path = url.pathname.slice('/console/api'.length);
      if (method !== 'GET' && method !== 'POST') return answer(res, 405, { error: 'invalid_request', message: 'Method not allowed.', requestId: 'console' });
      if (!API_ROUTES.some((r) => r.method === method && r.path.test(path))) return answer(res, 404, { error: 'not_found', message: 'Not found.', requestId: 'console' });
      let body: string | undefined;
      if (method === 'POST') {
        if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
          return answer(res, 400, { error: 'invalid_request', message: 'Content-Type must be application/json.', requestId: 'console' });
        }
        const buf = await readUpTo(req, MAX_API_BODY);
        if (!buf) return answer(res, 413, { error: 'payload_too_large', message: 'The request is too large.', requestId: 'console' });
        body = buf.toString('utf8');
      }
      let out;
      try {
        out = await opts.forward({ method, path: `${path}${url.search}`, body });
      } catch {
        return answer(res, 503, { error: 'upstream_unavailable', message: 'The tvm API cannot be reached.', requestId: 'console' });
      }
      return answer(res, out.status, out.body ?? {});
    },
  };
}
