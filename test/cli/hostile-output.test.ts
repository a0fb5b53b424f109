/**
 * What the CLI prints from an answer is never a terminal instruction, and what users `source` is
 * exactly the values: a loopback server answers with hostile strings (as leases stored before
 * `sub` was checked, or a server in the middle, would) and every format is checked.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as leases } from '../../cli/commands/leases.js';
import { run as vend } from '../../cli/commands/vend.js';
import { jsonText, printable, Refusal, shellQuote, type Io } from '../../cli/lib.js';

const ESC_CLEAR = '\u001b[2J\u001b[H';
const OSC52 = '\u001b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u0007';
const HOSTILE = [ESC_CLEAR, OSC52, 'row\roverwritten', 'del\u007f', 'c1\u009b2J', 'bidi\u202egnp.exe', 'iso\u2066x\u2069', 'lrm\u200e', 'nul\u0000'];
/** Anything a terminal would act on: C0 (but newline and tab, which the CLI itself writes), DEL, C1, bidi. */
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

const sub = HOSTILE.join('|');
const lease = {
  leaseId: 'Laaaaaaaaaaaaaaaaaaaaaaaaaa',
  status: 'revoked',
  principal: `dev|${sub}`,
  grant: 'reports-read',
  issuedAt: '2030-01-01T00:00:00.000Z',
  expiresAt: '2030-01-01T00:15:00.000Z',
  revokedAt: '2030-01-01T00:05:00.000Z',
  revokeReason: OSC52,
  revokedBy: `dev|${ESC_CLEAR}`,
  decision: ['p'],
  context: { task: 'bidi\u202etask' },
  events: [{ at: '2030-01-01T00:00:00.000Z', type: 'revoked', by: `dev|${sub}`, reason: 'c1\u009b2J' }],
};
const creds = {
  leaseId: 'Laaaaaaaaaaaaaaaaaaaaaaaaaa',
  credentials: { AccessKeyId: "ASIA'$(touch pwned)'", SecretAccessKey: 'se$HOME`id`"\\cret', SessionToken: "tok'; touch pwned; echo '", Expiration: '2030-01-01T00:15:00Z\nexport PWNED=1' },
};

let server: Server;
let api: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url?.startsWith('/v1/admin/leases/')) return res.end(JSON.stringify(lease));
    if (req.url?.startsWith('/v1/admin/leases')) return res.end(JSON.stringify({ leases: [lease] }));
    if (req.url === '/v1/vend') return res.end(JSON.stringify(creds));
    res.statusCode = 403;
    res.end(JSON.stringify({ error: 'access_denied', message: `denied ${OSC52}`, requestId: ESC_CLEAR }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function io(): { io: Io; out: () => string } {
  let out = '';
  return { io: { out: (s) => void (out += s), err: (s) => void (out += s), env: { TVM_ENDPOINT: api, TVM_ADMIN_TOKEN: 'admin', TVM_TOKEN: 'x.y.z' } }, out: () => out };
}

describe('token-derived text reaches the terminal escaped', () => {
  it.each([['table'], ['json'], ['ndjson'], ['csv']])('tvm leases --format %s', async (format) => {
    const c = io();
    expect(await leases(['--format', format], c.io)).toBe(0);
    expect(c.out()).not.toMatch(RAW);
    expect(c.out()).toContain('dev|');
  });

  it.each([['table'], ['json']])('tvm leases show --format %s', async (format) => {
    const c = io();
    expect(await leases(['show', lease.leaseId, '--format', format], c.io)).toBe(0);
    expect(c.out()).not.toMatch(RAW);
  });

  it('json output is still the same JSON (escapes, not deletions)', async () => {
    const c = io();
    await leases(['--format', 'json'], c.io);
    expect(JSON.parse(c.out())).toEqual([lease]);
  });

  it('an error answer prints as one escaped line', async () => {
    const c = io();
    const e = await leases(['show', 'x/../../nope', '--endpoint', `${api}/elsewhere`], c.io).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Refusal);
    expect((e as Refusal).message).not.toMatch(RAW);
    expect((e as Refusal).message).toContain('access_denied');
  });

  it.each(HOSTILE)('printable and jsonText escape %j', (s) => {
    expect(printable(s)).not.toMatch(RAW);
    expect(jsonText({ s })).not.toMatch(RAW);
    expect(JSON.parse(jsonText({ s }))).toEqual({ s });
  });
});

describe('tvm vend --format env is safe to source', () => {
  it('each value is one quoted word: sourcing it sets exactly the values and runs nothing', async () => {
    const c = io();
    expect(await vend(['--grant', 'reports-read', '--format', 'env'], c.io)).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'tvm-env-'));
    writeFileSync(join(dir, 'creds'), c.out());
    const shown = execFileSync('/bin/sh', ['-c', '. ./creds && printf "%s\\0" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN" "$AWS_CREDENTIAL_EXPIRATION" "${PWNED-unset}" && ls'], { cwd: dir, env: { PATH: process.env.PATH, HOME: '/nonexistent' } }).toString();
    const [ak, sk, st, exp, pwned, listing] = shown.split('\0');
    expect([ak, sk, st, exp]).toEqual([creds.credentials.AccessKeyId, creds.credentials.SecretAccessKey, creds.credentials.SessionToken, creds.credentials.Expiration]);
    expect(pwned).toBe('unset');
    expect(listing.trim()).toBe('creds'); // no `pwned` file
  });

  it.each(["plain", "it's", "'", "''", "$(id)", "`id`", "a\nb", "\\"])('shellQuote(%j) round-trips through sh', (s) => {
    expect(execFileSync('/bin/sh', ['-c', `printf %s ${shellQuote(s)}`]).toString()).toBe(s);
  });
});
