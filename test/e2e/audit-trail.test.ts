/**
 * The audit trail on the real local stack: every request's event reaches GET /v1/admin/events
 * (filters, newest first, cursor paging) and <data>/audit.ndjson; `tvm audit` lists it and
 * `tvm explain` says why a refusal happened in words; no token reaches the trail (its SHA-256 does).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/tvm.js';
import type { Io } from '../../cli/lib.js';
import { type LocalStack, startLocalStack } from '../../local/stack.js';

let stack: LocalStack;
let dataDir: string;
let api: string;
const token: Record<string, string> = {};
const requestId: Record<string, string> = {};
let leaseId: string;

async function vend(name: string, jwt: string, body: Record<string, unknown> = { grant: 'reports-read' }) {
  token[name] = jwt;
  const res = await fetch(`${api}/v1/vend`, { method: 'POST', headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = (await res.json()) as Record<string, string>;
  if (answer.requestId) requestId[name] = answer.requestId;
  return { status: res.status, answer };
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tvm-audit-'));
  stack = await startLocalStack({ configPath: 'config/tvm.yaml', port: 0, dataDir, logSink: () => undefined, sweepIntervalMs: 0, rotateIntervalMs: 0 });
  api = stack.endpoints.api;
  const ok = await vend('ok', await stack.issuer.mint({ sub: 'agent-1', claims: { team: 'analytics' } }), { grant: 'reports-read', context: { task: 'INC-1' } });
  expect(ok.status).toBe(200);
  leaseId = ok.answer.leaseId;
  expect((await vend('noPolicy', await stack.issuer.mint({ sub: 'agent-2', claims: {} }))).status).toBe(403);
  expect((await vend('audience', await stack.issuer.mint({ sub: 'agent-3', aud: 'someone-else', claims: { team: 'x' } }))).status).toBe(401);
  expect((await vend('expired', await stack.issuer.mint({ sub: 'agent-4', ttlSeconds: -120, claims: { team: 'x' } }))).status).toBe(401);
  expect((await vend('grant', await stack.issuer.mint({ sub: 'agent-5', claims: { team: 'x' } }), { grant: 'nope' })).status).toBe(403);
  expect((await vend('forbid', await stack.issuer.mint({ sub: 'agent-6', claims: { team: 'x' } }), { grant: 'reports-read', durationSeconds: 1800, context: { sensitivity: 'restricted' } })).status).toBe(403);
  const revoke = await fetch(`${api}/v1/admin/revoke`, { method: 'POST', headers: { authorization: `Bearer ${stack.endpoints.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ leaseId, reason: 'drill' }) });
  expect(revoke.status).toBe(200);
}, 60_000);
afterAll(() => stack?.close());

async function tvm(...args: string[]) {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => void (out += s), err: (s) => void (err += s), env: { TVM_ENDPOINT: api, TVM_ADMIN_TOKEN: stack.endpoints.adminToken } };
  return { code: await main(args, io), out, err };
}

const events = async (query: string) => {
  const res = await fetch(`${api}/v1/admin/events?${query}`, { headers: { authorization: `Bearer ${stack.endpoints.adminToken}` } });
  return { status: res.status, body: (await res.json()) as { events: Record<string, any>[]; next?: string } };
};

describe('GET /v1/admin/events', () => {
  it('has the issuance, each denial with its reason, and the revocation, newest first', async () => {
    const { body } = await events('limit=1000');
    const ats = body.events.map((e) => e.at);
    expect(ats).toEqual([...ats].sort().reverse());
    const types = body.events.map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['issued', 'denied', 'revoked', 'rotated']));
    const denied = body.events.filter((e) => e.type === 'denied').map((e) => e.reason).sort();
    expect(denied).toEqual(['claim_aud_check_failed', 'policy_deny', 'policy_deny', 'token_expired', 'unknown_grant']);
  });

  it('filters by lease, principal, type and request id', async () => {
    const byLease = (await events(`lease=${leaseId}`)).body.events.map((e) => e.type);
    expect(byLease).toEqual(expect.arrayContaining(['issued', 'revoked']));
    expect((await events('principal=dev%7Cagent-2')).body.events.map((e) => e.reason)).toEqual(['policy_deny']);
    expect((await events(`requestId=${requestId.audience}`)).body.events).toHaveLength(1);
    expect((await events('type=revoked')).body.events.map((e) => e.leaseId)).toEqual([leaseId]);
  });

  it('pages with a cursor: every event once', async () => {
    // Each admin call is itself audited: page over a window that ends now.
    const until = new Date().toISOString();
    const all = (await events(`limit=1000&until=${until}`)).body.events.length;
    const seen: string[] = [];
    let next: string | undefined;
    do {
      const { body } = await events(`limit=2&until=${until}${next ? `&next=${next}` : ''}`);
      seen.push(...body.events.map((e) => JSON.stringify(e)));
      next = body.next;
    } while (next);
    expect(seen).toHaveLength(all);
    expect(new Set(seen).size).toBe(all);
  });

  it('a bad cursor or an unknown parameter is a 400', async () => {
    expect((await events('next=nonsense')).status).toBe(400);
    expect((await events('principle=x')).status).toBe(400);
  });

  it('<data>/audit.ndjson holds the same events; no token is in it, its SHA-256 is', async () => {
    const before = (await events('limit=1000')).body.events.length;
    const file = readFileSync(join(dataDir, 'audit.ndjson'), 'utf8');
    const lines = file.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBe(before + 1);
    for (const t of Object.values(token)) {
      expect(file).not.toContain(t);
      expect(file).not.toContain(t.split('.')[2]);
    }
    expect(file).toContain(createHash('sha256').update(token.ok).digest('hex'));
    expect(file).not.toContain(stack.endpoints.adminToken);
  });
});

describe('tvm audit and tvm explain', () => {
  it('tvm audit --type denied lists the denials with their reasons', async () => {
    const r = await tvm('audit', '--type', 'denied', '--since', '1h');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[0].split(/\s+/)).toEqual(['AT', 'TYPE', 'REQUEST', 'PRINCIPAL', 'LEASE', 'GRANT', 'REASON']);
    expect(r.out).toContain('claim_aud_check_failed');
    expect(r.out.trim().split('\n')).toHaveLength(1 + 5);
  });

  it('tvm audit --limit says when more exist', async () => {
    const r = await tvm('audit', '--limit', '2');
    expect(r.out.trim().split('\n')).toHaveLength(3);
    expect(r.err).toMatch(/more exist/);
  });

  it.each([
    ['noPolicy', /no policy permits this request/],
    ['audience', /the token's audience \(aud\) is not one the issuer's configuration accepts/],
    ['expired', /the token had expired/],
    ['grant', /the grant "nope" is not configured/],
    ['forbid', /policy no-restricted-data-for-long forbids this request/],
  ])('tvm explain says why %s was refused, in words', async (name, words) => {
    const r = await tvm('explain', requestId[name]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(words);
  });

  it('tvm explain of an unknown request id is a refusal', async () => {
    expect((await tvm('explain', 'no-such-request')).code).toBe(1);
  });
});
