/**
 * The DynamoDB lease store against real dynalite with the stack's table definition: conditional
 * writes guard every state change; the sparse due index pages across shards without loss or
 * repetition; listings by principal, status and grant.
 */
import { createHash } from 'node:crypto';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUE_SHARDS, dueShardOf, DynamoLeaseStore } from '../../functions/adapters/dynamodb-lease-store.js';
import { base32 } from '../../functions/adapters/random-ids.js';
import { LEASE_ID } from '../../functions/core/lease.js';
import type { Lease, LeaseStatus } from '../../functions/core/ports.js';
import { ensureTable, startDynalite, type EmbeddedDynamo } from '../../local/dynamo.js';

const T0 = Date.UTC(2027, 0, 15, 8, 0, 0);
const T0_S = T0 / 1000;
const PENDING_TIMEOUT = 300;
const iso = (epochS: number) => new Date(epochS * 1000).toISOString();

let dynamo: EmbeddedDynamo;
let raw: DynamoDBClient;
let ddb: DynamoDBDocumentClient;

beforeAll(async () => {
  dynamo = await startDynalite({});
  raw = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
  ddb = DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
});
afterAll(async () => {
  raw?.destroy();
  await dynamo?.close();
});

async function store(table: string): Promise<DynamoLeaseStore> {
  await ensureTable(raw, table);
  return new DynamoLeaseStore(ddb, table, { pendingTimeoutSeconds: PENDING_TIMEOUT });
}

/** Deterministic, well-spread lease ids in tvm's format. */
const leaseId = (seed: string) => `L${base32(createHash('sha256').update(seed).digest(), 26)}`;

function lease(id: string, over: Partial<Lease> = {}): Lease {
  const issuedAtS = over.issuedAt ? Date.parse(over.issuedAt) / 1000 : T0_S;
  return {
    leaseId: id,
    status: 'pending',
    principal: 'dev|agent-1',
    issuer: 'dev',
    sub: 'agent-1',
    grant: 'reports-read',
    roleArn: 'arn:aws:iam::123456789012:role/tvm/reports-read',
    sessionName: `tvm-${id}`,
    sourceIdentity: 'dev.agent-1',
    context: { task: 'nightly' },
    decision: ['dev-agents-read-reports'],
    tokenSha256: 'a'.repeat(64),
    durationSeconds: 900,
    issuedAt: iso(issuedAtS),
    expiresAt: iso(issuedAtS + 900),
    ttl: issuedAtS + 900 + 90 * 86400,
    events: [{ at: iso(issuedAtS), type: 'requested', by: 'dev|agent-1' }],
    ...over,
  };
}

async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).name;
  }
  throw new Error('expected a failure');
}

describe('state changes', () => {
  let s: DynamoLeaseStore;
  beforeAll(async () => {
    s = await store('leases-state');
  });

  it('createPending then get answers the lease as written, without index attributes', async () => {
    const l = lease(leaseId('create'));
    expect(l.leaseId).toMatch(LEASE_ID);
    await s.createPending(l);
    expect(await s.get(l.leaseId)).toEqual(l);
  });

  it('createPending refuses an existing id', async () => {
    const l = lease(leaseId('dup'));
    await s.createPending(l);
    expect(await errorName(s.createPending({ ...l, principal: 'dev|other' }))).toBe('ConditionalCheckFailedException');
    expect((await s.get(l.leaseId))!.principal).toBe('dev|agent-1');
  });

  it('get answers undefined for an unknown id', async () => {
    expect(await s.get(leaseId('nobody'))).toBeUndefined();
  });

  it('activate moves pending → active once, with the key id, the real expiry and the event', async () => {
    const l = lease(leaseId('activate'));
    await s.createPending(l);
    const event = { at: iso(T0_S + 1), type: 'issued', by: 'dev|agent-1', detail: { accessKeyId: 'ASIA1' } };
    const active = await s.activate(l.leaseId, 'ASIA1', iso(T0_S + 901), event);
    expect(active).toEqual({ ...l, status: 'active', accessKeyId: 'ASIA1', expiresAt: iso(T0_S + 901), events: [...l.events, event] });
    expect(await s.get(l.leaseId)).toEqual(active);
    expect(await errorName(s.activate(l.leaseId, 'ASIA2', iso(T0_S + 901), event))).toBe('ConditionalCheckFailedException');
    expect((await s.get(l.leaseId))!.accessKeyId).toBe('ASIA1');
  });

  it('activate refuses an unknown lease and a failed one', async () => {
    const event = { at: iso(T0_S), type: 'issued' };
    expect(await errorName(s.activate(leaseId('ghost'), 'ASIA1', iso(T0_S + 900), event))).toBe('ConditionalCheckFailedException');
    const l = lease(leaseId('failed-then-activate'));
    await s.createPending(l);
    await s.fail(l.leaseId, { at: iso(T0_S), type: 'failed', reason: 'sts_throttled' });
    expect(await errorName(s.activate(l.leaseId, 'ASIA1', iso(T0_S + 900), event))).toBe('ConditionalCheckFailedException');
    expect(await s.get(l.leaseId)).toMatchObject({ status: 'failed', events: [{ type: 'requested' }, { type: 'failed', reason: 'sts_throttled' }] });
  });

  it('fail leaves an active lease alone', async () => {
    const l = lease(leaseId('fail-active'));
    await s.createPending(l);
    await s.activate(l.leaseId, 'ASIA1', l.expiresAt, { at: iso(T0_S), type: 'issued' });
    await s.fail(l.leaseId, { at: iso(T0_S), type: 'failed' });
    expect(await s.get(l.leaseId)).toMatchObject({ status: 'active', events: [{ type: 'requested' }, { type: 'issued' }] });
  });

  it('transition is guarded by the from-states and sets only the given fields', async () => {
    const l = lease(leaseId('revoke'));
    await s.createPending(l);
    await s.activate(l.leaseId, 'ASIA1', l.expiresAt, { at: iso(T0_S), type: 'issued' });
    const event = { at: iso(T0_S + 60), type: 'revoked', by: 'admin', reason: 'incident' };
    const revoked = await s.transition(l.leaseId, ['active'], 'revoked', { revokedAt: iso(T0_S + 60), revokeReason: 'incident', revokedBy: 'admin', }, event);
    expect(revoked).toMatchObject({ status: 'revoked', revokedAt: iso(T0_S + 60), revokeReason: 'incident', revokedBy: 'admin', accessKeyId: 'ASIA1' });
    expect(revoked!.events.at(-1)).toEqual(event);
    // A second revocation finds it no longer live: nothing changes, no second event.
    expect(await s.transition(l.leaseId, ['active'], 'revoked', { revokedAt: iso(T0_S + 120) }, event)).toBeUndefined();
    expect(await s.get(l.leaseId)).toEqual(revoked);
  });

  it.each([
    [['pending'], 'revoked'],
    [['pending', 'active'], 'revoked'],
    [['active'], 'failed'],
    [['revoked'], 'expired'],
    [['pending'], 'active'],
    [[], 'failed'],
  ] as [LeaseStatus[], LeaseStatus][])('refuses a move core/lease.ts does not allow (%j → %s) and writes nothing', async (from, to) => {
    const l = lease(leaseId(`illegal-${from.join('-')}-${to}`));
    await s.createPending(l);
    const before = await s.get(l.leaseId);
    await expect(s.transition(l.leaseId, from, to, {}, { at: iso(T0_S), type: to })).rejects.toThrow(/illegal lease transition/);
    expect(await s.get(l.leaseId)).toEqual(before);
  });

  it('transition answers undefined for an unknown lease and does not create one', async () => {
    const id = leaseId('never-created');
    expect(await s.transition(id, ['active'], 'revoked', {}, { at: iso(T0_S), type: 'revoked' })).toBeUndefined();
    expect(await s.get(id)).toBeUndefined();
  });

  it.each([
    ['pending', 'failed', ['pending']],
    ['active', 'expired', ['active']],
    ['active', 'revoked', ['active']],
  ] as [LeaseStatus, LeaseStatus, LeaseStatus[]][])('a %s lease moved to %s leaves the due index', async (from, to, guard) => {
    const fresh = await store(`leases-leave-${from}-${to}`);
    const l = lease(leaseId(`${from}-${to}`));
    await fresh.createPending(l);
    if (from === 'active') await fresh.activate(l.leaseId, 'ASIA1', l.expiresAt, { at: iso(T0_S), type: 'issued' });
    expect((await fresh.listLive()).leases.map((x) => x.leaseId)).toEqual([l.leaseId]);
    expect(await fresh.transition(l.leaseId, guard, to, {}, { at: iso(T0_S), type: to })).toMatchObject({ status: to });
    expect((await fresh.listLive()).leases).toEqual([]);
    expect((await fresh.listDue(T0_S + 10 * 86400)).leases).toEqual([]);
  });

  it('stores no secret: the item holds the key id only', async () => {
    const out = await raw.send(new ScanCommand({ TableName: 'leases-state' }));
    const text = JSON.stringify(out.Items);
    expect(text).toContain('ASIA1');
    expect(text).not.toMatch(/secret|sessionToken/i);
  });
});

describe('listDue and listLive page across shards', () => {
  let s: DynamoLeaseStore;
  const due = new Set<string>();
  const live = new Set<string>();
  const DUE_BY = T0_S + 1000;

  beforeAll(async () => {
    s = await store('leases-due');
    // 60 leases: pending ones are due PENDING_TIMEOUT after issue, active ones at expiry; settled ones never.
    for (let i = 0; i < 60; i++) {
      const id = leaseId(`due-${i}`);
      const issuedAtS = T0_S + (i % 5) * 300 - 600; // T0-600 … T0+600
      const l = lease(id, { issuedAt: iso(issuedAtS), expiresAt: iso(issuedAtS + 900) });
      await s.createPending(l);
      const kind = i % 4;
      if (kind === 0) {
        live.add(id);
        if (issuedAtS + PENDING_TIMEOUT <= DUE_BY) due.add(id);
        continue;
      }
      const expiresAtS = issuedAtS + (kind === 1 ? 900 : 3600);
      await s.activate(id, `ASIA${i}`, iso(expiresAtS), { at: iso(issuedAtS), type: 'issued' });
      if (kind === 3) {
        await s.transition(id, ['active'], 'revoked', { revokedAt: iso(issuedAtS + 1) }, { at: iso(issuedAtS + 1), type: 'revoked' });
        continue;
      }
      live.add(id);
      if (expiresAtS <= DUE_BY) due.add(id);
    }
  });

  it('the fixture spreads over many shards and has due and not-due leases', () => {
    const shards = new Set([...live].map(dueShardOf));
    expect(shards.size).toBeGreaterThan(DUE_SHARDS / 2);
    expect(due.size).toBeGreaterThan(5);
    expect(live.size - due.size).toBeGreaterThan(5);
  });

  async function drain(page: (cursor?: string) => Promise<{ leases: Lease[]; cursor?: string }>, limit: number) {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const out = await page(cursor);
      expect(out.leases.length).toBeLessThanOrEqual(limit);
      seen.push(...out.leases.map((l) => l.leaseId));
      cursor = out.cursor;
      pages++;
      expect(pages).toBeLessThan(200);
    } while (cursor);
    return { seen, pages };
  }

  it.each([[1], [2], [3], [100]])('listDue with limit %s returns every due lease exactly once', async (limit) => {
    const { seen } = await drain((c) => s.listDue(DUE_BY, c, limit), limit);
    expect(seen.length).toBe(new Set(seen).size);
    expect(new Set(seen)).toEqual(due);
  });

  it('listDue answers due leases with their state and no index attributes', async () => {
    const { leases } = await s.listDue(DUE_BY, undefined, 100);
    for (const l of leases) {
      expect(['pending', 'active']).toContain(l.status);
      expect(l).not.toHaveProperty('pk');
      expect(l).not.toHaveProperty('dueAt');
      expect(l).not.toHaveProperty('dueShard');
    }
  });

  it('listDue before anything is due answers nothing and no cursor', async () => {
    expect(await s.listDue(T0_S - 10 * 86400, undefined, 2)).toEqual({ leases: [] });
  });

  it.each([[2], [7]])('listLive with limit %s returns every live lease exactly once', async (limit) => {
    const { seen } = await drain((c) => s.listLive(c, limit), limit);
    expect(seen.length).toBe(new Set(seen).size);
    expect(new Set(seen)).toEqual(live);
  });
});

describe('list', () => {
  let s: DynamoLeaseStore;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    s = await store('leases-list');
    const rows: [string, string, string, LeaseStatus, number][] = [
      ['a1', 'dev|alice', 'reports-read', 'active', 0],
      ['a2', 'dev|alice', 'deploy', 'revoked', 60],
      ['a3', 'dev|alice', 'reports-read', 'pending', 120],
      ['b1', 'github|repo:acme/app', 'deploy', 'active', 30],
      ['b2', 'github|repo:acme/app', 'deploy', 'failed', 90],
      ['c1', 'dev|carol', 'reports-read', 'active', 150],
    ];
    for (const [key, principal, grant, status, offset] of rows) {
      const id = leaseId(`list-${key}`);
      ids[key] = id;
      const [issuer, sub] = principal.split('|');
      const l = lease(id, { principal, issuer, sub, grant, issuedAt: iso(T0_S + offset) });
      await s.createPending(l);
      if (status === 'pending') continue;
      if (status === 'failed') {
        await s.fail(id, { at: l.issuedAt, type: 'failed' });
        continue;
      }
      await s.activate(id, `ASIA-${key}`, l.expiresAt, { at: l.issuedAt, type: 'issued' });
      if (status === 'revoked') await s.transition(id, ['active'], 'revoked', { revokedAt: l.issuedAt }, { at: l.issuedAt, type: 'revoked' });
    }
  });

  const keysOf = (leases: Lease[]) => leases.map((l) => Object.keys(ids).find((k) => ids[k] === l.leaseId));

  it.each([
    ['by principal, newest first', { principal: 'dev|alice' }, ['a3', 'a2', 'a1']],
    ['by principal and status', { principal: 'dev|alice', status: 'active' as const }, ['a1']],
    ['by principal and grant', { principal: 'dev|alice', grant: 'deploy' }, ['a2']],
    ['by principal, limited', { principal: 'dev|alice', limit: 2 }, ['a3', 'a2']],
    ['by an unknown principal', { principal: 'dev|nobody' }, []],
    ['everything, newest first', {}, ['c1', 'a3', 'b2', 'a2', 'b1', 'a1']],
    ['by grant', { grant: 'deploy' }, ['b2', 'a2', 'b1']],
    ['by issuer', { issuer: 'github' }, ['b2', 'b1']],
    ['by a settled status', { status: 'revoked' as const }, ['a2']],
    ['by failed', { status: 'failed' as const }, ['b2']],
    ['by grant and a settled status', { grant: 'deploy', status: 'failed' as const }, ['b2']],
  ])('%s', async (_name, query, want) => {
    expect(keysOf(await s.list(query))).toEqual(want);
  });

  it.each([
    ['active', { status: 'active' as const }, ['a1', 'b1', 'c1']],
    ['pending', { status: 'pending' as const }, ['a3']],
    ['active for one grant', { status: 'active' as const, grant: 'reports-read' }, ['a1', 'c1']],
  ])('by live status %s (through the due index)', async (_name, query, want) => {
    expect(keysOf(await s.list(query)).sort()).toEqual(want);
  });

  it('a live-status listing is answered newest first, whatever shards its leases sit in', async () => {
    // The due index answers them in shard order, not newest first: the order is list's own work.
    expect(keysOf((await s.page({ status: 'active' })).leases)).not.toEqual(['c1', 'b1', 'a1']);
    expect(keysOf(await s.list({ status: 'active' }))).toEqual(['c1', 'b1', 'a1']);
  });

  it.each([
    ['by principal up to a time', { principal: 'dev|alice', until: iso(T0_S + 60) }, ['a2', 'a1']],
    ['by principal, grant and status (two filters)', { principal: 'dev|alice', grant: 'deploy', status: 'revoked' as const }, ['a2']],
    ['everything up to a time', { until: iso(T0_S + 60) }, ['a2', 'b1', 'a1']],
  ])('%s', async (_name, query, want) => {
    expect(keysOf(await s.list(query))).toEqual(want);
  });

  it('a limit caps a live-status listing', async () => {
    expect(await s.list({ status: 'active', limit: 2 })).toHaveLength(2);
  });
});

describe('cursors, guards and their messages', () => {
  let s: DynamoLeaseStore;
  beforeAll(async () => {
    s = await store('leases-guards');
  });
  const cursor = (i: string, k: unknown) => Buffer.from(JSON.stringify({ i, k })).toString('base64url');
  async function refusal(p: Promise<unknown>): Promise<{ name: string; reason?: string; message: string }> {
    const e = (await p.then(
      () => undefined,
      (x: unknown) => x,
    )) as (Error & { reason?: string }) | undefined;
    if (!e) throw new Error('expected a refusal');
    return { name: e.name, reason: e.reason, message: e.message };
  }
  const BAD_CURSOR = { name: 'InvalidRequest', reason: 'bad_cursor', message: 'Invalid field: next.' };

  it.each([
    ['a principal cursor whose pk is a number', { principal: 'dev|a' }, cursor('p', { pk: 5, principal: 'dev|a', issuedAt: iso(T0_S) })],
    ['a principal cursor with an object among its values', { principal: 'dev|a' }, cursor('p', { pk: 'L1', principal: { S: 'dev|a' }, issuedAt: iso(T0_S) })],
    ['a scan cursor with a boolean value', {}, cursor('s', { pk: 'L1', extra: true })],
    ['a due cursor naming shard 16 (there are 16: 0–15)', { live: true }, cursor('d', { pk: 'L1', dueShard: `due#${DUE_SHARDS}`, dueAt: 1 })],
    ['a due cursor naming shard -1', { live: true }, cursor('d', { pk: 'L1', dueShard: 'due#-1', dueAt: 1 })],
    ['a due cursor naming shard 1.5', { status: 'active' as const }, cursor('d', { pk: 'L1', dueShard: 'due#1.5', dueAt: 1 })],
    ['a due cursor naming no shard number', { status: 'pending' as const }, cursor('d', { pk: 'L1', dueShard: 'due#x', dueAt: 1 })],
  ])('%s is a 400 bad_cursor with its fixed message, before any read', async (_n, query, next) => {
    expect(await refusal(s.page({ ...query, next }))).toEqual(BAD_CURSOR);
  });

  it('createPending refuses a lease that is not pending, and writes nothing', async () => {
    const l = lease(leaseId('born-active'), { status: 'active' });
    expect(await refusal(s.createPending(l))).toEqual({ name: 'Error', reason: undefined, message: 'createPending: a new lease is pending, not active' });
    expect(await s.get(l.leaseId)).toBeUndefined();
  });

  it('get answers undefined for an item in the table that is not a lease (a rate counter)', async () => {
    await ddb.send(new PutCommand({ TableName: 'leases-guards', Item: { pk: 'rate#vend#dev|a#1800000000', count: 3, ttl: 1 } }));
    expect(await s.get('rate#vend#dev|a#1800000000')).toBeUndefined();
  });

  it.each([
    [[], 'failed', 'illegal lease transition: (none) → failed'],
    [['active'], 'failed', 'illegal lease transition: active → failed'],
    [['pending', 'active'], 'revoked', 'illegal lease transition: pending|active → revoked'],
    [['pending'], 'active', 'illegal lease transition: pending → active'],
  ] as [LeaseStatus[], LeaseStatus, string][])('an illegal move %j → %s is refused naming it', async (from, to, message) => {
    expect(await refusal(s.transition(leaseId('any'), from, to, {}, { at: iso(T0_S), type: to }))).toEqual({ name: 'Error', reason: undefined, message });
  });

  it('a transition with a field left undefined sets the others and not that one', async () => {
    const l = lease(leaseId('undefined-field'));
    await s.createPending(l);
    await s.activate(l.leaseId, 'ASIA1', l.expiresAt, { at: iso(T0_S), type: 'issued' });
    const out = await s.transition(l.leaseId, ['active'], 'revoked', { revokedAt: undefined, revokeReason: 'incident' }, { at: iso(T0_S), type: 'revoked' });
    expect(out).toMatchObject({ status: 'revoked', revokeReason: 'incident' });
    expect(out).not.toHaveProperty('revokedAt');
  });

  it('a store fault in a transition reaches the caller (it is not read as "not in that state")', async () => {
    const missing = new DynamoLeaseStore(ddb, 'no-such-table', { pendingTimeoutSeconds: PENDING_TIMEOUT });
    expect((await refusal(missing.transition(leaseId('x'), ['active'], 'revoked', {}, { at: iso(T0_S), type: 'revoked' }))).name).toBe('ResourceNotFoundException');
  });

  it('a live listing whose last lease is in the last shard ends without a cursor', async () => {
    const fresh = await store('leases-last-shard');
    let n = 0;
    while (dueShardOf(leaseId(`last-${n}`)) !== `due#${DUE_SHARDS - 1}`) n++;
    const l = lease(leaseId(`last-${n}`));
    await fresh.createPending(l);
    expect(await fresh.listLive()).toEqual({ leases: [expect.objectContaining({ leaseId: l.leaseId })], cursor: undefined });
    expect(await fresh.listDue(T0_S + 86400)).toEqual({ leases: [expect.objectContaining({ leaseId: l.leaseId })], cursor: undefined });
  });
});

describe('a page cut short by its round limit (25 reads) resumes where it stopped', () => {
  // One principal: the newest lease on grant B, then 2,550 on grant A, then five older on B. A
  // listing of B reads 100 items a round (limit 3 → max(limit + 1, 100)): after 25 rounds it has
  // seen 2,500 items and found one, so it answers that one and a cursor.
  let s: DynamoLeaseStore;
  const A = 2550;
  const principal = 'dev|bulk';
  const b = Array.from({ length: 6 }, (_, i) => leaseId(`bulk-b-${i}`));
  beforeAll(async () => {
    s = await store('leases-rounds');
    const rows: [string, string, number][] = [[b[0], 'B', A + 10]];
    for (let i = 0; i < A; i++) rows.push([leaseId(`bulk-a-${i}`), 'A', A + 5 - i]);
    for (let i = 1; i < 6; i++) rows.push([b[i], 'B', -i]);
    for (let i = 0; i < rows.length; i += 32) {
      await Promise.all(
        rows.slice(i, i + 32).map(([id, grant, offset]) => s.createPending(lease(id, { principal, sub: 'bulk', grant, issuedAt: iso(T0_S + offset) }))),
      );
    }
  }, 120_000);

  it('page: the one lease found in 25 rounds, and a cursor', async () => {
    const first = await s.page({ principal, grant: 'B', limit: 3 });
    expect(first.leases.map((l) => l.leaseId)).toEqual([b[0]]);
    expect(first.next).toEqual(expect.any(String));
    const second = await s.page({ principal, grant: 'B', limit: 3, next: first.next });
    expect(second.leases.map((l) => l.leaseId)).toEqual([b[1], b[2], b[3]]);
    const third = await s.page({ principal, grant: 'B', limit: 3, next: second.next });
    expect(third).toEqual({ leases: [expect.objectContaining({ leaseId: b[4] }), expect.objectContaining({ leaseId: b[5] })] });
  });

  it('list goes on past a short page, asking each page only for what is still missing', async () => {
    expect((await s.list({ principal, grant: 'B', limit: 3 })).map((l) => l.leaseId)).toEqual([b[0], b[1], b[2]]);
  });
});
