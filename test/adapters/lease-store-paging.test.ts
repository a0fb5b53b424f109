/**
 * Listing leases at scale against real dynalite with the stack's table: every page answers `next`
 * exactly when more exist; paging with it returns every matching lease exactly once; the filters
 * (principal, grant, issuer, task, status, since/until) agree with a plain filter over the data;
 * the principal index is used (newest first) and the live listing uses the due index.
 */
import { createHash } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLeaseStore } from '../../functions/adapters/dynamodb-lease-store.js';
import { base32 } from '../../functions/adapters/random-ids.js';
import { TvmError } from '../../functions/core/errors.js';
import type { Lease, LeaseQuery, LeaseStatus } from '../../functions/core/ports.js';
import { ensureTable, startDynalite, type EmbeddedDynamo } from '../../local/dynamo.js';

const T0_S = Date.UTC(2027, 0, 15, 8, 0, 0) / 1000;
const iso = (s: number) => new Date(s * 1000).toISOString();
const leaseId = (seed: string) => `L${base32(createHash('sha256').update(seed).digest(), 26)}`;

let dynamo: EmbeddedDynamo;
let raw: DynamoDBClient;
let s: DynamoLeaseStore;
const sent: string[] = [];
const all: Lease[] = [];

const PRINCIPALS = ['dev|alice', 'dev|bob', 'github|repo:acme/app'];
const GRANTS = ['reports-read', 'deploy'];
const STATUSES: LeaseStatus[] = ['active', 'active', 'revoked', 'pending', 'failed'];

beforeAll(async () => {
  dynamo = await startDynalite({});
  raw = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
  raw.middlewareStack.add((next, ctx) => (args) => (sent.push(`${ctx.commandName}:${(args.input as { IndexName?: string }).IndexName ?? ''}`), next(args)), { step: 'initialize' });
  const ddb = DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
  await ensureTable(raw, 'paging');
  s = new DynamoLeaseStore(ddb, 'paging', { pendingTimeoutSeconds: 300 });
  // 160 leases: the count the issue saw truncated at 100.
  for (let i = 0; i < 160; i++) {
    const id = leaseId(`page-${i}`);
    const principal = PRINCIPALS[i % 3];
    const [issuer, sub] = principal.split('|');
    const status = STATUSES[i % 5];
    const l: Lease = {
      leaseId: id, status: 'pending', principal, issuer, sub, grant: GRANTS[i % 2],
      roleArn: 'arn:aws:iam::123456789012:role/tvm/r', sessionName: `tvm-${id}`, sourceIdentity: `${issuer}.${sub}`.replace(/[^\w+=,.@-]/g, '-'),
      context: i % 4 === 0 ? { task: `task-${i % 8}` } : {}, decision: ['p'], tokenSha256: 'a'.repeat(64), durationSeconds: 900,
      issuedAt: iso(T0_S + i * 60), expiresAt: iso(T0_S + i * 60 + 900), ttl: T0_S + 90 * 86400,
      events: [{ at: iso(T0_S + i * 60), type: 'requested' }],
    };
    await s.createPending(l);
    if (status === 'failed') await s.fail(id, { at: l.issuedAt, type: 'failed' });
    else if (status !== 'pending') {
      await s.activate(id, `ASIA${i}`, l.expiresAt, { at: l.issuedAt, type: 'issued' });
      if (status === 'revoked') await s.transition(id, ['active'], 'revoked', { revokedAt: l.issuedAt }, { at: l.issuedAt, type: 'revoked' });
    }
    all.push({ ...l, status });
  }
});
afterAll(async () => {
  raw?.destroy();
  await dynamo?.close();
});

/** Pages through `query` with `limit`, checking `next` is given exactly when more follow. */
async function drain(query: LeaseQuery, limit: number): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let next: string | undefined;
  let pages = 0;
  do {
    const page = await s.page({ ...query, limit, next });
    pages++;
    ids.push(...page.leases.map((l) => l.leaseId));
    if (page.next) expect(page.leases).toHaveLength(limit);
    next = page.next;
  } while (next && pages < 500);
  return { ids, pages };
}

const expected = (q: LeaseQuery) =>
  all
    .filter(
      (l) =>
        (q.principal === undefined || l.principal === q.principal) &&
        (q.grant === undefined || l.grant === q.grant) &&
        (q.issuer === undefined || l.issuer === q.issuer) &&
        (q.task === undefined || l.context.task === q.task) &&
        (q.status === undefined || l.status === q.status) &&
        (!q.live || l.status === 'pending' || l.status === 'active') &&
        (q.since === undefined || l.issuedAt >= q.since) &&
        (q.until === undefined || l.issuedAt <= q.until),
    )
    .map((l) => l.leaseId);

describe('page', () => {
  it('160 leases at the default page of 100: a first page with a cursor, then the other 60 and none', async () => {
    const first = await s.page({});
    expect(first.leases).toHaveLength(100);
    expect(first.next).toEqual(expect.any(String));
    const second = await s.page({ next: first.next });
    expect(second.leases).toHaveLength(60);
    expect(second.next).toBeUndefined();
    expect(new Set([...first.leases, ...second.leases].map((l) => l.leaseId)).size).toBe(160);
  });

  it('a page that ends exactly at the last lease has no cursor', async () => {
    const page = await s.page({ limit: 160 });
    expect(page.leases).toHaveLength(160);
    expect(page.next).toBeUndefined();
  });

  it.each<[string, LeaseQuery, number]>([
    ['everything', {}, 7],
    ['by principal', { principal: 'dev|alice' }, 4],
    ['by principal and grant', { principal: 'dev|bob', grant: 'deploy' }, 3],
    ['by principal, status and a time window', { principal: 'dev|alice', status: 'active', since: iso(T0_S + 1200), until: iso(T0_S + 6000) }, 2],
    ['by principal since', { principal: 'github|repo:acme/app', since: iso(T0_S + 3000) }, 5],
    ['by grant', { grant: 'deploy' }, 9],
    ['by issuer', { issuer: 'github' }, 4],
    ['by task', { task: 'task-4' }, 2],
    ['by a settled status', { status: 'revoked' }, 6],
    ['live', { live: true }, 5],
    ['active', { status: 'active' }, 5],
    ['live for one principal', { principal: 'dev|alice', live: true }, 3],
    ['live since', { live: true, since: iso(T0_S + 4000) }, 3],
    ['live for one task', { live: true, task: 'task-0' }, 1],
  ])('%s: paging returns every matching lease exactly once', async (_n, query, limit) => {
    const want = expected(query);
    expect(want.length).toBeGreaterThan(0);
    const { ids } = await drain(query, limit);
    expect(ids.length).toBe(new Set(ids).size);
    expect([...ids].sort()).toEqual([...want].sort());
  });

  it('by principal: newest first across pages, through the principal index (no scan)', async () => {
    sent.length = 0;
    const { ids } = await drain({ principal: 'dev|bob' }, 6);
    const issued = ids.map((id) => all.find((l) => l.leaseId === id)!.issuedAt);
    expect(issued).toEqual([...issued].sort().reverse());
    expect(sent.every((c) => c === 'QueryCommand:principal')).toBe(true);
  });

  it('live leases come from the due index (no scan)', async () => {
    sent.length = 0;
    await drain({ live: true, grant: 'deploy' }, 10);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((c) => c === 'QueryCommand:due')).toBe(true);
  });

  it.each([['active'], ['pending']] as [LeaseStatus][])('%s leases come from the due index too (no scan)', async (status) => {
    sent.length = 0;
    const { ids } = await drain({ status }, 10);
    expect(ids.length).toBe(all.filter((l) => l.status === status).length);
    expect(sent.every((c) => c === 'QueryCommand:due')).toBe(true);
  });

  it('a scanned listing answers each page newest first', async () => {
    const page = await s.page({ status: 'revoked', limit: 50 });
    const issued = page.leases.map((l) => l.issuedAt);
    expect(issued).toHaveLength(all.filter((l) => l.status === 'revoked').length);
    expect(issued).toEqual([...issued].sort().reverse());
  });

  it.each([
    ['not base64 JSON', '!!!'],
    ['made for another listing', Buffer.from(JSON.stringify({ i: 'p', k: { pk: 'x', principal: 'a', issuedAt: 'b' } })).toString('base64url')],
    ['a key that is not a lease key', Buffer.from(JSON.stringify({ i: 's', k: { pk: { S: 'x' } } })).toString('base64url')],
  ])('a cursor %s is a 400 bad_cursor', async (_n, next) => {
    const e = await s.page({ next }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TvmError);
    expect((e as TvmError).reason).toBe('bad_cursor');
  });

  it('list collects pages up to its limit (no silent cap at one page)', async () => {
    expect(await s.list({ limit: 1000 })).toHaveLength(160);
  });
});
