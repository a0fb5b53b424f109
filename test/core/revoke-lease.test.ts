/**
 * revoke-lease.ts beyond the happy paths of revoke.test.ts: what a deny entry carries, what a
 * fallback records (metric, audit, every lease it killed — and only those surely issued before it),
 * retries when a lease moved meanwhile, and the self-revoke's Cedar request and audit record.
 */
import { describe, expect, it } from 'vitest';
import type { IssuerConfig } from '../../functions/core/config.js';
import type { AuthzRequest, DenyOutcome, Lease } from '../../functions/core/ports.js';
import {
  noteFallback,
  principalScope,
  recordFallbackKills,
  recordRevocation,
  revokeLease,
  revokeOwnLease,
  sessionDenyFor,
} from '../../functions/core/revoke-lease.js';
import type { VerifiedToken } from '../../functions/core/verify-token.js';
import { fixedClock, makeLease, memoryAudit, memoryCounter, MemoryLeaseStore, MemoryRevoker, T0 } from './revoke-fakes.js';

const ROLE = 'arn:aws:iam::123456789012:role/tvm/reports-read';
const OTHER = 'arn:aws:iam::123456789012:role/tvm/deploy';
const iso = (ms: number) => new Date(ms).toISOString();

function setup() {
  const clock = fixedClock();
  return { clock, leases: new MemoryLeaseStore(), revoker: new MemoryRevoker(clock), audit: memoryAudit(), metrics: memoryCounter() };
}

describe('sessionDenyFor and principalScope', () => {
  it('denies the session by name until it expires, issued only once STS answered, with its principal', () => {
    const active = makeLease({ expiresAt: '2030-01-01T00:15:00.900Z' });
    expect(sessionDenyFor(active)).toEqual({
      kind: 'session',
      sessionName: active.sessionName,
      expiresAt: Date.UTC(2030, 0, 1, 0, 15) / 1000,
      issued: true,
      sourceIdentity: 'dev.alice',
    });
    expect(sessionDenyFor({ ...active, status: "pending" })).toMatchObject({ issued: false });
    expect(principalScope(active)).toEqual({ kind: 'principal', sourceIdentity: 'dev.alice' });
  });
});

describe('noteFallback', () => {
  it('counts the fallback and audits it with the role, the cutoff and the cause', () => {
    const d = setup();
    noteFallback(d, ROLE, 1893456001, { leaseId: 'L1', by: 'admin' });
    expect(d.metrics.counts).toEqual({ RevocationFallback: 1 });
    expect(d.audit.events).toEqual([{ type: 'revocation_fallback', fields: { roleArn: ROLE, issuedBefore: 1893456001, leaseId: 'L1', by: 'admin' } }]);
    noteFallback({ audit: d.audit }, ROLE, undefined, {});
    expect(d.audit.events).toHaveLength(2);
  });
});

describe('recordRevocation', () => {
  it('records who, why and when; the event carries the detail only when there is one', async () => {
    const d = setup();
    const a = makeLease({}, d.clock);
    const b = makeLease({}, d.clock);
    d.leases.put(a, b);
    d.clock.advance(7);
    const plain = await recordRevocation(d, a, { by: 'admin', reason: 'r1' });
    expect(plain.changed).toBe(true);
    expect(plain.lease.events.at(-1)).toEqual({ at: iso(T0 + 7000), type: 'revoked', by: 'admin', reason: 'r1' });
    const withDetail = await recordRevocation(d, b, { by: 'admin', reason: 'r2' }, { fallback: 'role' });
    expect(withDetail.lease.events.at(-1)).toEqual({ at: iso(T0 + 7000), type: 'revoked', by: 'admin', reason: 'r2', detail: { fallback: 'role' } });
    expect(d.audit.events).toEqual([
      { type: 'lease_revoked', fields: { leaseId: a.leaseId, principal: 'dev|alice', grant: 'reports-read', roleArn: ROLE, status: 'revoked', by: 'admin', reason: 'r1' } },
      { type: 'lease_revoked', fields: { leaseId: b.leaseId, principal: 'dev|alice', grant: 'reports-read', roleArn: ROLE, status: 'revoked', by: 'admin', reason: 'r2', fallback: 'role' } },
    ]);
  });

  it("a settlement is audited as lease_settled and its event is 'settled'", async () => {
    const d = setup();
    const p = makeLease({ status: 'pending' }, d.clock);
    d.leases.put(p);
    const out = await recordRevocation(d, p, { by: 'tvm:sweep', reason: 'pending_timeout' }, {}, 'settled');
    expect(out.lease).toMatchObject({ status: 'failed', revokeReason: 'pending_timeout', revokedBy: 'tvm:sweep', revokedAt: iso(T0) });
    expect(out.lease.events.at(-1)!.type).toBe('settled');
    expect(d.audit.events.map((e) => [e.type, e.fields.status])).toEqual([['lease_settled', 'failed']]);
  });

  it('follows a lease that moved meanwhile: a pending lease activated before the write is recorded revoked', async () => {
    const d = setup();
    const p = makeLease({ status: 'pending' }, d.clock);
    d.leases.put({ ...p, status: 'active' });
    const out = await recordRevocation(d, p, { by: 'admin', reason: 'r' });
    expect(out).toMatchObject({ changed: true, lease: { status: 'revoked' } });
  });

  it('answers a lease that reached an end state meanwhile as it is, unchanged, and writes nothing more', async () => {
    const d = setup();
    const a = makeLease({}, d.clock);
    d.leases.put({ ...a, status: 'expired' });
    const out = await recordRevocation(d, a, { by: 'admin', reason: 'r' });
    expect(out).toEqual({ lease: { ...a, status: 'expired' }, changed: false });
    expect(d.audit.events).toEqual([]);
  });

  it('gives up after three moves under it, answering the lease as last read, and NotFound when it vanished', async () => {
    const d = setup();
    const a = makeLease({}, d.clock);
    d.leases.put(a);
    let transitions = 0;
    // Another writer keeps moving the lease between active and pending under every attempt.
    d.leases.transition = async () => {
      transitions++;
      return undefined;
    };
    const flip = d.leases.get.bind(d.leases);
    let reads = 0;
    d.leases.get = async (id) => {
      reads++;
      const l = (await flip(id))!;
      return { ...l, status: reads % 2 ? 'pending' : 'active' };
    };
    const out = await recordRevocation(d, a, { by: 'admin', reason: 'r' });
    expect(transitions).toBe(3);
    expect(out).toEqual({ lease: { ...a, status: 'pending' }, changed: false });

    const gone = setup();
    const g = makeLease({}, gone.clock);
    await expect(recordRevocation(gone, g, { by: 'admin', reason: 'r' })).rejects.toMatchObject({ code: 'not_found', reason: 'lease_not_found', detail: { leaseId: g.leaseId } });
  });
});

describe('recordFallbackKills', () => {
  const actor = { by: 'admin', reason: 'incident' };
  const fallback = (issuedBefore: number, kind?: 'role' | 'principal'): DenyOutcome => ({ fallback: true, fallbackKind: kind, fallbackIssuedBefore: issuedBefore, policyChars: 0 });

  /** Leases issued at T0+0, +10, +20 s on ROLE (alice, bob, alice) and one on OTHER. */
  function world() {
    const d = setup();
    const at = (s: number, over: Partial<Lease>) => {
      d.clock.set(T0 + s * 1000);
      return makeLease(over, d.clock);
    };
    const a0 = at(0, { principal: 'dev|alice' });
    const b10 = at(10, { principal: 'dev|bob' });
    const a20 = at(20, { principal: 'dev|alice' });
    const other = at(0, { principal: 'dev|alice', roleArn: OTHER, grant: 'deploy' });
    const gone = at(0, { principal: 'dev|alice', status: 'expired' });
    d.leases.put(a0, b10, a20, other, gone);
    return { d, a0, b10, a20, other, gone };
  }
  const statuses = async (d: ReturnType<typeof setup>, ls: Lease[]) => Promise.all(ls.map(async (l) => (await d.leases.get(l.leaseId))!.status));

  it('role-wide (the default kind): every live lease of the role issued before the cutoff, across pages, with the fallback named', async () => {
    const w = world();
    // Pages of one lease: the kills must follow the cursor.
    const listLive = w.d.leases.listLive.bind(w.d.leases);
    w.d.leases.listLive = (cursor?: string) => listLive(cursor, 1);
    const moved = await recordFallbackKills(w.d, ROLE, fallback(T0 / 1000 + 11), actor);
    expect(moved).toBe(2);
    expect(await statuses(w.d, [w.a0, w.b10, w.a20, w.other, w.gone])).toEqual(['revoked', 'revoked', 'active', 'active', 'expired']);
    const a0 = (await w.d.leases.get(w.a0.leaseId))!;
    expect(a0).toMatchObject({ revokeReason: 'fallback:role', revokedBy: 'admin' });
    expect(a0.events.at(-1)!.detail).toEqual({ fallback: 'role', issuedBefore: '2030-01-01T00:00:11Z', trigger: 'incident' });
  });

  it('a session issued exactly at the cutoff is not killed (TokenIssueTime before it is)', async () => {
    const w = world();
    expect(await recordFallbackKills(w.d, ROLE, fallback(T0 / 1000 + 10), actor)).toBe(1);
    expect(await statuses(w.d, [w.a0, w.b10])).toEqual(['revoked', 'active']);
  });

  it("a principal's fallback kills only that principal's leases on the role, asking the store for them alone", async () => {
    const w = world();
    const queries = w.d.leases.queries;
    expect(await recordFallbackKills(w.d, ROLE, fallback(T0 / 1000 + 30, 'principal'), actor, 'dev|alice')).toBe(2);
    expect(await statuses(w.d, [w.a0, w.b10, w.a20, w.other])).toEqual(['revoked', 'active', 'revoked', 'active']);
    expect(queries.map((q) => ({ principal: q.principal, live: q.live }))).toEqual([{ principal: 'dev|alice', live: true }]);
    expect((await w.d.leases.get(w.a0.leaseId))!.revokeReason).toBe('fallback:principal');
  });

  it('judges by the time STS answered (the issued event), not the request: a lease issued after the cutoff lives', async () => {
    const w = world();
    const late = makeLease({ principal: 'dev|carol', issuedAt: iso(T0), events: [{ at: iso(T0), type: 'requested' }, { at: iso(T0 + 15_000), type: 'issued' }] });
    const pending = makeLease({ principal: 'dev|dave', status: 'pending', issuedAt: iso(T0), events: [{ at: iso(T0), type: 'requested' }] });
    w.d.leases.put(late, pending);
    await recordFallbackKills(w.d, ROLE, fallback(T0 / 1000 + 11), actor);
    expect(await statuses(w.d, [late, pending])).toEqual(['active', 'failed']);
  });

  it.each([
    ['no fallback', { fallback: false, fallbackIssuedBefore: T0 / 1000 + 99, policyChars: 0 }, 'dev|alice'],
    ['a fallback without a cutoff', { fallback: true, policyChars: 0 }, 'dev|alice'],
    ['a principal fallback without the principal', { fallback: true, fallbackKind: 'principal', fallbackIssuedBefore: T0 / 1000 + 99, policyChars: 0 }, undefined],
  ] as const)('%s kills nothing', async (_label, out, principal) => {
    const w = world();
    expect(await recordFallbackKills(w.d, ROLE, out as DenyOutcome, actor, principal)).toBe(0);
    expect(await statuses(w.d, [w.a0, w.b10, w.a20])).toEqual(['active', 'active', 'active']);
    // Not even a listing: a principal's fallback without the principal must not read every live lease.
    expect(w.d.leases.queries).toEqual([]);
  });

  it('counts only the leases it moved (one already revoked is not counted again)', async () => {
    const w = world();
    const stale = { ...w.a0 };
    await revokeLease(w.d, w.a0, actor);
    // The listing answers the lease as live (an index lagging the write): it is not moved twice.
    w.d.leases.listLive = async () => ({ leases: [stale, w.b10], cursor: undefined });
    expect(await recordFallbackKills(w.d, ROLE, fallback(T0 / 1000 + 99), actor)).toBe(1);
  });
});

describe('revokeLease on a fallback', () => {
  it('notes the fallback with the lease and its kind, records the lease with it, then the others it killed', async () => {
    const d = setup();
    const victim = makeLease({ principal: 'dev|bob' }, d.clock);
    const target = makeLease({ principal: 'dev|alice' }, d.clock);
    d.leases.put(victim, target);
    d.clock.advance(2);
    d.revoker.deny = async () => ({ fallback: true, fallbackIssuedBefore: T0 / 1000 + 1, policyChars: 0 });
    const out = await revokeLease(d, target, { by: 'admin', reason: 'incident' });
    expect(out.lease).toMatchObject({ status: 'revoked', revokeReason: 'incident' });
    expect(out.lease.events.at(-1)!.detail).toEqual({ fallback: 'role' });
    expect(d.audit.events[0]).toEqual({ type: 'revocation_fallback', fields: { roleArn: ROLE, issuedBefore: T0 / 1000 + 1, leaseId: target.leaseId, by: 'admin', fallback: 'role' } });
    expect((await d.leases.get(victim.leaseId))!).toMatchObject({ status: 'revoked', revokeReason: 'fallback:role' });
  });

  it("with a principal's fallback, kills only that principal's other leases", async () => {
    const d = setup();
    const bob = makeLease({ principal: 'dev|bob' }, d.clock);
    const alice = makeLease({ principal: 'dev|alice' }, d.clock);
    const target = makeLease({ principal: 'dev|alice' }, d.clock);
    d.leases.put(bob, alice, target);
    d.clock.advance(2);
    d.revoker.deny = async () => ({ fallback: true, fallbackKind: 'principal', fallbackIssuedBefore: T0 / 1000 + 1, policyChars: 0 });
    await revokeLease(d, target, { by: 'dev|alice', reason: 'self-revoke' }, principalScope(target));
    expect((await d.leases.get(alice.leaseId))!.revokeReason).toBe('fallback:principal');
    expect((await d.leases.get(bob.leaseId))!.status).toBe('active');
    expect(d.audit.events[0].fields.fallback).toBe('principal');
  });

  it('a lease no longer live is answered as it is, without a deny', async () => {
    const d = setup();
    const done = makeLease({ status: 'failed' }, d.clock);
    expect(await revokeLease(d, done, { by: 'a', reason: 'r' })).toEqual({ lease: done, changed: false });
    expect(d.revoker.calls).toEqual([]);
  });

  it('denies by role scope unless told otherwise', async () => {
    const d = setup();
    const l = makeLease({}, d.clock);
    d.leases.put(l);
    await revokeLease(d, l, { by: 'a', reason: 'r' });
    expect(d.revoker.calls).toEqual([{ roleArn: ROLE, entries: [sessionDenyFor(l)], scope: { kind: 'role' } }]);
  });
});

describe('revokeOwnLease', () => {
  const who = (principal: string): VerifiedToken => {
    const [issuer, sub] = principal.split('|');
    return { principal, issuer: { name: issuer } as IssuerConfig, iss: 'http://127.0.0.1/issuer', sub, claims: { sub, team: 'blue' }, exp: 0, tokenSha256: 'h' };
  };

  it("asks Cedar with the principal's claims and the lease's context, records what it decided, and denies by the principal's scope", async () => {
    const d = setup();
    const asked: AuthzRequest[] = [];
    const policy = { decide: (r: AuthzRequest) => (asked.push(r), { allow: true, policyIds: ['self-revoke'], errors: [] }) };
    const lease = makeLease({ context: { task: 't1', tool: undefined } }, d.clock);
    d.leases.put(lease);
    const record: Record<string, unknown> = {};
    const out = await revokeOwnLease({ ...d, policy }, { who: who('dev|alice'), leaseId: lease.leaseId, reason: 'done' }, record);
    expect(asked).toEqual([
      {
        principal: { issuer: 'dev', iss: 'http://127.0.0.1/issuer', sub: 'alice', claims: { sub: 'alice', team: 'blue' } },
        action: 'revoke',
        resource: { type: 'Grant', id: 'reports-read' },
        context: { task: 't1' },
      },
    ]);
    expect(record).toEqual({ leaseId: lease.leaseId, grant: 'reports-read', decision: ['self-revoke'] });
    expect(out.lease).toMatchObject({ status: 'revoked', revokeReason: 'done', revokedBy: 'dev|alice' });
    expect(d.revoker.calls[0].scope).toEqual({ kind: 'principal', sourceIdentity: 'dev.alice' });
  });

  it('a refusal says why (policy_deny, or policy_error when a policy errored) and revokes nothing', async () => {
    for (const [errors, reason] of [[[], 'policy_deny'], [['boom'], 'policy_error']] as const) {
      const d = setup();
      const lease = makeLease({}, d.clock);
      d.leases.put(lease);
      const policy = { decide: () => ({ allow: false, policyIds: ['forbid-x'], errors: [...errors] }) };
      const record: Record<string, unknown> = {};
      await expect(revokeOwnLease({ ...d, policy }, { who: who('dev|alice'), leaseId: lease.leaseId }, record)).rejects.toMatchObject({
        code: 'access_denied',
        reason,
        detail: { policies: ['forbid-x'], errors: [...errors] },
      });
      expect(record.decision).toEqual(['forbid-x']);
      expect(d.revoker.calls).toEqual([]);
    }
  });

  it("another principal's lease is not found, named by the id asked for", async () => {
    const d = setup();
    const lease = makeLease({ principal: 'dev|alice' }, d.clock);
    d.leases.put(lease);
    const policy = { decide: () => ({ allow: true, policyIds: [], errors: [] }) };
    await expect(revokeOwnLease({ ...d, policy }, { who: who('dev|bob'), leaseId: lease.leaseId })).rejects.toMatchObject({ reason: 'lease_not_found', detail: { leaseId: lease.leaseId } });
  });
});
