import { describe, expect, it } from 'vitest';
import type { IssuerConfig } from '../../functions/core/config.js';
import type { AuthzRequest, Decision } from '../../functions/core/ports.js';
import { revokeLeases } from '../../functions/core/revoke-bulk.js';
import { revokeLease, revokeOwnLease } from '../../functions/core/revoke-lease.js';
import type { VerifiedToken } from '../../functions/core/verify-token.js';
import { fixedClock, makeLease, memoryAudit, memoryCounter, MemoryLeaseStore, MemoryRevoker } from './revoke-fakes.js';

function setup(budget?: number) {
  const clock = fixedClock();
  const leases = new MemoryLeaseStore();
  const revoker = new MemoryRevoker(clock, budget);
  const audit = memoryAudit();
  const metrics = memoryCounter();
  const asked: AuthzRequest[] = [];
  let allow = true;
  const policy = {
    decide(r: AuthzRequest): Decision {
      asked.push(r);
      return { allow, policyIds: allow ? ['self-revoke'] : [], errors: [] };
    },
  };
  const config = { grants: [{ name: 'reports-read' }, { name: 'deploy' }], issuers: [{ name: 'dev' }, { name: 'github' }] } as never;
  return { clock, leases, revoker, audit, metrics, policy, config, asked, deny: () => void (allow = false) };
}

function who(principal: string): VerifiedToken {
  const [issuer, sub] = principal.split('|');
  return {
    principal,
    issuer: { name: issuer } as IssuerConfig,
    iss: 'http://127.0.0.1/issuer',
    sub,
    claims: { sub },
    exp: 0,
    tokenSha256: 'h',
  };
}

describe('revokeLease', () => {
  it('denies the session, then records revoked with when, who and why', async () => {
    const d = setup();
    const lease = makeLease({}, d.clock);
    d.leases.put(lease);
    d.clock.advance(10);
    const out = await revokeLease(d, lease, { by: 'dev|alice', reason: 'task done' });
    expect(out.changed).toBe(true);
    expect(out.lease).toMatchObject({ status: 'revoked', revokedAt: '2030-01-01T00:00:10.000Z', revokeReason: 'task done', revokedBy: 'dev|alice' });
    expect(out.lease.events.at(-1)).toMatchObject({ type: 'revoked', by: 'dev|alice', reason: 'task done' });
    expect(d.revoker.denies(lease)).toBe(true);
    expect(d.audit.events.map((e) => e.type)).toEqual(['lease_revoked']);
  });

  it('is idempotent: a second call answers the same lease and writes nothing', async () => {
    const d = setup();
    const lease = makeLease({}, d.clock);
    d.leases.put(lease);
    const first = await revokeLease(d, lease, { by: 'a', reason: 'r' });
    const second = await revokeLease(d, first.lease, { by: 'a', reason: 'r' });
    expect(second).toEqual({ lease: first.lease, changed: false });
    expect(d.revoker.calls).toHaveLength(1);
  });

  it('leaves the lease active when the deny cannot be written (nothing is recorded revoked that still works)', async () => {
    const d = setup();
    const lease = makeLease({}, d.clock);
    d.leases.put(lease);
    d.revoker.failDeny = true;
    await expect(revokeLease(d, lease, { by: 'a', reason: 'r' })).rejects.toThrow('injected IAM failure');
    expect((await d.leases.get(lease.leaseId))!.status).toBe('active');
  });

  it('moves a pending lease to failed (its credentials never leave) and denies the possible session', async () => {
    const d = setup();
    const lease = makeLease({ status: 'pending' }, d.clock);
    d.leases.put(lease);
    const out = await revokeLease(d, lease, { by: 'admin', reason: 'r' });
    expect(out.lease.status).toBe('failed');
    expect(d.revoker.calls[0].entries[0]).toMatchObject({ kind: 'session', issued: false });
  });

  it('counts and audits the fallback when the role runs out of room', async () => {
    const d = setup(600);
    const many = Array.from({ length: 20 }, () => makeLease({}, d.clock));
    d.leases.put(...many);
    for (const l of many) await revokeLease(d, l, { by: 'admin', reason: 'r' });
    expect(d.metrics.counts.RevocationFallback).toBe(1);
    expect(d.audit.events.filter((e) => e.type === 'revocation_fallback')).toHaveLength(1);
    for (const l of many) expect(d.revoker.denies(l)).toBe(true);
    const revoked = await Promise.all(many.map((l) => d.leases.get(l.leaseId)));
    expect(revoked.every((l) => l!.status === 'revoked')).toBe(true);
  });
});

describe('revokeOwnLease', () => {
  it.each([
    ['an unknown lease', 'Lunknownaaaaaaaaaaaaaaaaaaa', 'dev|alice'],
    ["another principal's lease", undefined, 'dev|mallory'],
  ])('answers not_found for %s', async (_label, id, principal) => {
    const d = setup();
    const lease = makeLease({ principal: 'dev|alice' }, d.clock);
    d.leases.put(lease);
    await expect(revokeOwnLease(d, { who: who(principal), leaseId: id ?? lease.leaseId })).rejects.toMatchObject({ code: 'not_found' });
    expect((await d.leases.get(lease.leaseId))!.status).toBe('active');
    expect(d.asked).toHaveLength(0);
  });

  it('asks Cedar for action revoke on the lease grant, and refuses on deny', async () => {
    const d = setup();
    const lease = makeLease({ principal: 'dev|alice', context: { task: 't1' } }, d.clock);
    d.leases.put(lease);
    d.deny();
    await expect(revokeOwnLease(d, { who: who('dev|alice'), leaseId: lease.leaseId, sourceIp: '127.0.0.1' })).rejects.toMatchObject({ code: 'access_denied' });
    expect(d.asked[0]).toMatchObject({ action: 'revoke', resource: { type: 'Grant', id: 'reports-read' }, context: { task: 't1', sourceIp: '127.0.0.1' } });
  });

  it('revokes its own lease', async () => {
    const d = setup();
    const lease = makeLease({ principal: 'dev|alice' }, d.clock);
    d.leases.put(lease);
    const out = await revokeOwnLease(d, { who: who('dev|alice'), leaseId: lease.leaseId });
    expect(out.lease).toMatchObject({ status: 'revoked', revokedBy: 'dev|alice', revokeReason: 'self-revoke' });
  });
});

describe('revokeLeases (admin)', () => {
  function world() {
    const d = setup();
    const a1 = makeLease({ principal: 'dev|alice' }, d.clock);
    const a2 = makeLease({ principal: 'dev|alice', grant: 'deploy', roleArn: 'arn:aws:iam::123456789012:role/tvm/deploy' }, d.clock);
    const b1 = makeLease({ principal: 'dev|bob' }, d.clock);
    const g1 = makeLease({ principal: 'github|repo', issuer: 'github' }, d.clock);
    const gone = makeLease({ principal: 'dev|alice', status: 'expired' }, d.clock);
    d.leases.put(a1, a2, b1, g1, gone);
    return { d, a1, a2, b1, g1, gone };
  }

  it.each([
    ['principal', { principal: 'dev|alice' }, ['a1', 'a2']],
    ['grant', { grant: 'reports-read' }, ['a1', 'b1', 'g1']],
    ['issuer', { issuer: 'github' }, ['g1']],
    ['all', { all: true as const }, ['a1', 'a2', 'b1', 'g1']],
  ])('by %s revokes exactly the live leases it names', async (_label, selector, names) => {
    const w = world();
    const byName = { a1: w.a1, a2: w.a2, b1: w.b1, g1: w.g1 } as const;
    const out = await revokeLeases(w.d, selector, { by: 'admin', reason: 'incident' }, { pageSize: 2 });
    expect(out.revoked).toBe(names.length);
    for (const [name, lease] of Object.entries(byName)) {
      const now = (await w.d.leases.get(lease.leaseId))!;
      expect([name, now.status]).toEqual([name, names.includes(name) ? 'revoked' : 'active']);
      expect([name, w.d.revoker.denies(lease)]).toEqual([name, names.includes(name)]);
    }
    expect((await w.d.leases.get(w.gone.leaseId))!.status).toBe('expired');
    expect(w.d.audit.events.at(-1)).toMatchObject({ type: 'bulk_revoke', fields: { revoked: names.length, reason: 'incident' } });
  });

  it("denies a principal's sessions by SourceIdentity issued before now, so the principal can vend again", async () => {
    const w = world();
    await revokeLeases(w.d, { principal: 'dev|alice' }, { by: 'admin', reason: 'r' });
    const state = w.d.revoker.states.get(w.a1.roleArn)!;
    expect(Object.keys(state.sources)).toEqual(['dev.alice']);
    expect(state.sessions).toEqual({});
    w.d.clock.advance(5);
    const fresh = makeLease({ principal: 'dev|alice' }, w.d.clock);
    expect(w.d.revoker.denies(fresh)).toBe(false);
  });

  it('revokes one lease by id, and answers not_found for an unknown id', async () => {
    const w = world();
    expect(await revokeLeases(w.d, { leaseId: w.b1.leaseId }, { by: 'admin', reason: 'r' })).toMatchObject({ revoked: 1, fallbacks: 0 });
    expect(await revokeLeases(w.d, { leaseId: w.b1.leaseId }, { by: 'admin', reason: 'r' })).toMatchObject({ revoked: 0, fallbacks: 0 });
    await expect(revokeLeases(w.d, { leaseId: 'Lnopeaaaaaaaaaaaaaaaaaaaaaa' }, { by: 'admin', reason: 'r' })).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('fallbacks: whose sessions die, and every lease that dies is recorded', () => {
  const ROLE_BUDGET = 600; // about a dozen session entries: the loop overflows it quickly

  it("a workload that vends and self-revokes in a loop never kills another principal's session (the victim's lease stays active)", async () => {
    const d = setup(ROLE_BUDGET);
    const victim = makeLease({ principal: 'dev|victim' }, d.clock);
    d.leases.put(victim);
    // The attacker also holds one live lease it does not revoke: its own fallback may kill it.
    const attackerLive = makeLease({ principal: 'dev|mallory' }, d.clock);
    d.leases.put(attackerLive);
    d.clock.advance(1);
    let fallbacks = 0;
    for (let i = 0; i < 60; i++) {
      const l = makeLease({ principal: 'dev|mallory' }, d.clock);
      d.leases.put(l);
      const out = await revokeOwnLease(d, { who: who('dev|mallory'), leaseId: l.leaseId });
      expect(out.lease.status).toBe('revoked');
      if (out.lease.events.at(-1)!.detail?.fallback) fallbacks++;
      expect(d.revoker.denies(l)).toBe(true);
      expect(d.revoker.denies(victim)).toBe(false);
    }
    expect(fallbacks).toBeGreaterThan(2);
    expect(d.revoker.calls.every((c) => c.scope?.kind === 'principal')).toBe(true);
    expect((await d.leases.get(victim.leaseId))!.status).toBe('active');
    expect(d.revoker.states.get(victim.roleArn)!.fallback).toBeUndefined();
    // The attacker's own older session died with its fallback, and its lease says so.
    expect(d.revoker.denies(attackerLive)).toBe(true);
    const killed = (await d.leases.get(attackerLive.leaseId))!;
    expect(killed).toMatchObject({ status: 'revoked', revokeReason: 'fallback:principal', revokedBy: 'dev|mallory' });
    expect(killed.events.at(-1)).toMatchObject({ type: 'revoked', detail: { fallback: 'principal' } });
    expect(d.audit.events.filter((e) => e.type === 'revocation_fallback').every((e) => e.fields.fallback === 'principal')).toBe(true);
  });

  it("refuses a self-revoke rather than kill others' sessions when their entries hold the room", async () => {
    const d = setup(ROLE_BUDGET);
    const others = Array.from({ length: 30 }, (_, i) => makeLease({ principal: `dev|p${i}` }, d.clock));
    d.leases.put(...others);
    let refused = 0;
    for (const l of others) {
      try {
        await revokeOwnLease(d, { who: who(l.principal), leaseId: l.leaseId });
      } catch {
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
    expect(d.revoker.states.get(others[0].roleArn)!.fallback).toBeUndefined();
    // Every lease recorded revoked is denied; every refused one is still active and says so.
    for (const l of others) {
      const now = (await d.leases.get(l.leaseId))!;
      expect([l.leaseId, now.status]).toEqual([l.leaseId, d.revoker.denies(l) ? 'revoked' : 'active']);
    }
  });

  it("an admin's role-wide fallback records every live lease it killed as revoked, naming the fallback; later leases are untouched", async () => {
    const d = setup(ROLE_BUDGET);
    const bystanders = [makeLease({ principal: 'dev|bob' }, d.clock), makeLease({ principal: 'dev|carol', status: 'pending' }, d.clock)];
    const otherRole = makeLease({ principal: 'dev|bob', grant: 'deploy', roleArn: 'arn:aws:iam::123456789012:role/tvm/deploy' }, d.clock);
    const targets = Array.from({ length: 21 }, () => makeLease({ principal: 'dev|alice' }, d.clock));
    d.leases.put(...bystanders, otherRole, ...targets);
    d.clock.advance(2);
    for (const l of targets.slice(0, 20)) await revokeLease(d, l, { by: 'admin', reason: 'incident' });
    d.clock.advance(2);
    const after = makeLease({ principal: 'dev|dave' }, d.clock);
    d.leases.put(after);
    await revokeLease(d, targets[20], { by: 'admin', reason: 'incident' });
    expect(d.revoker.states.get(targets[0].roleArn)!.fallback).toBeDefined();
    const [bob, carol] = await Promise.all(bystanders.map((l) => d.leases.get(l.leaseId)));
    expect(bob).toMatchObject({ status: 'revoked', revokeReason: 'fallback:role', revokedBy: 'admin' });
    expect(bob!.events.at(-1)).toMatchObject({ detail: { fallback: 'role', trigger: 'incident' } });
    expect(carol).toMatchObject({ status: 'failed', revokeReason: 'fallback:role' });
    expect(d.revoker.denies(bystanders[0])).toBe(true);
    // Another role, and a session issued after the cutoff: untouched and still working.
    expect((await d.leases.get(otherRole.leaseId))!.status).toBe('active');
    expect((await d.leases.get(after.leaseId))!.status).toBe('active');
    expect(d.revoker.denies(after)).toBe(false);
    // Targets the fallback reached before their own turn say so; each is revoked and denied.
    const reasons = new Set<string>();
    for (const l of targets) {
      const now = (await d.leases.get(l.leaseId))!;
      expect(now.status).toBe('revoked');
      expect(d.revoker.denies(l)).toBe(true);
      reasons.add(now.revokeReason!);
    }
    expect([...reasons].sort()).toEqual(['fallback:role', 'incident']);
  });
});
