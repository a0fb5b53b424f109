/**
 * revokeLeases on the paths revoke-bulk.test.ts leaves out: what a principal's deny entries are,
 * a dry run by lease id, a lease the index still lists after it ended, a record that fails after
 * its deny landed, what a fallback records, and the audit event of each kind of call.
 */
import { describe, expect, it } from 'vitest';
import { issuedBeforeCutoff } from '../../functions/core/deny-policy.js';
import type { DenyOutcome, Lease } from '../../functions/core/ports.js';
import { type BulkRevokeDeps, denyEntriesFor, forEachLimited, queryFor, revokeLeases } from '../../functions/core/revoke-bulk.js';
import { fixedClock, makeLease, memoryAudit, memoryCounter, MemoryLeaseStore, MemoryRevoker, T0 } from './revoke-fakes.js';

const READ = 'arn:aws:iam::123456789012:role/tvm/reports-read';
const DEPLOY = 'arn:aws:iam::123456789012:role/tvm/deploy';
const actor = { by: 'arn:aws:iam::1:user/oncall', reason: 'incident' };
const CONFIG = { grants: [{ name: 'reports-read' }, { name: 'deploy' }], issuers: [{ name: 'dev' }, { name: 'github' }] } as never;

function deps(): BulkRevokeDeps & { clock: ReturnType<typeof fixedClock>; leases: MemoryLeaseStore; revoker: MemoryRevoker; audit: ReturnType<typeof memoryAudit>; metrics: ReturnType<typeof memoryCounter> } {
  const clock = fixedClock();
  return { clock, leases: new MemoryLeaseStore(), revoker: new MemoryRevoker(clock), audit: memoryAudit(), metrics: memoryCounter(), config: CONFIG };
}

describe('denyEntriesFor', () => {
  it("by principal: one SourceIdentity entry per principal until its latest session expires; pending sessions by name", () => {
    const clock = fixedClock();
    const a1 = makeLease({ principal: 'dev|alice', expiresAt: new Date(T0 + 900_000).toISOString() }, clock);
    const a2 = makeLease({ principal: 'dev|alice', expiresAt: new Date(T0 + 3600_000).toISOString() }, clock);
    const a3 = makeLease({ principal: 'dev|alice', expiresAt: new Date(T0 + 1800_000).toISOString() }, clock);
    const p = makeLease({ principal: 'dev|alice', status: 'pending' }, clock);
    const now = T0 / 1000 + 5;
    expect(denyEntriesFor([a1, a2, p, a3], now, true)).toEqual([
      { kind: 'session', sessionName: p.sessionName, expiresAt: T0 / 1000 + 900, issued: false, sourceIdentity: 'dev.alice' },
      { kind: 'source', sourceIdentity: 'dev.alice', issuedBefore: issuedBeforeCutoff(now), expiresAt: T0 / 1000 + 3600 },
    ]);
    expect(denyEntriesFor([a1, p], now, false).map((e) => e.kind === 'session' && e.sessionName)).toEqual([a1.sessionName, p.sessionName]);
  });
});

describe('forEachLimited', () => {
  it('runs every item once with at most `limit` in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const seen: number[] = [];
    await forEachLimited([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await Promise.resolve();
      await Promise.resolve();
      seen.push(n);
      inFlight--;
    });
    expect(seen.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(most).toBe(3);
    await forEachLimited([], 4, async () => {
      throw new Error('never');
    });
  });
});

describe('queryFor', () => {
  it.each([
    [{ principal: 'github|repo:acme/app:ref:refs/heads/main' }, { principal: 'github|repo:acme/app:ref:refs/heads/main', live: true }],
    [{ grant: 'deploy' }, { grant: 'deploy', live: true }],
    [{ issuer: 'github' }, { issuer: 'github', live: true }],
    [{ task: 'INC-1' }, { task: 'INC-1', live: true }],
    [{ all: true as const }, { live: true }],
  ])('%j → %j', (selector, query) => {
    expect(queryFor(CONFIG, selector)).toStrictEqual(query);
  });

  it.each([['dev|'], ['|alice'], ['dev alice|x'], ['dev|\u00a0'], ['devalice'], ['dev|alice\nmallory']])('refuses the principal %j, naming it', (principal) => {
    expect(() => queryFor(CONFIG, { principal })).toThrow(
      expect.objectContaining({ code: 'invalid_request', reason: 'bad_principal', detail: { principal }, message: 'Invalid field: principal.' }),
    );
  });

  it('names what it did not find', () => {
    expect(() => queryFor(CONFIG, { principal: 'gitlab|x' })).toThrow(expect.objectContaining({ reason: 'unknown_issuer', detail: { issuer: 'gitlab' } }));
    expect(() => queryFor(CONFIG, { grant: 'x' })).toThrow(expect.objectContaining({ reason: 'unknown_grant', detail: { grant: 'x' } }));
    expect(() => queryFor(CONFIG, { issuer: 'x' })).toThrow(expect.objectContaining({ reason: 'unknown_issuer', detail: { issuer: 'x' } }));
  });
});

describe('revokeLeases', () => {
  it('a dry run by lease id lists a live lease and not an ended one, and writes nothing', async () => {
    const d = deps();
    const live = makeLease({ status: 'pending' }, d.clock);
    const active = makeLease({}, d.clock);
    const ended = makeLease({ status: 'revoked' }, d.clock);
    d.leases.put(live, active, ended);
    expect(await revokeLeases(d, { leaseId: live.leaseId }, actor, { dryRun: true })).toEqual({ revoked: 0, leaseIds: [live.leaseId], fallbacks: 0, dryRun: true });
    expect(await revokeLeases(d, { leaseId: active.leaseId }, actor, { dryRun: true })).toEqual({ revoked: 0, leaseIds: [active.leaseId], fallbacks: 0, dryRun: true });
    expect(await revokeLeases(d, { leaseId: ended.leaseId }, actor, { dryRun: true })).toEqual({ revoked: 0, leaseIds: [], fallbacks: 0, dryRun: true });
    expect(d.revoker.calls).toEqual([]);
    expect((await d.leases.get(live.leaseId))!.status).toBe('pending');
  });

  it('skips a lease the live index still lists after it ended: no deny is written for it', async () => {
    const d = deps();
    const live = makeLease({}, d.clock);
    const ended = makeLease({ status: 'expired' }, d.clock);
    const failed = makeLease({ status: 'failed', roleArn: DEPLOY }, d.clock);
    d.leases.put(live, ended, failed);
    d.leases.page = async () => ({ leases: [live, ended, failed].map((l) => structuredClone(l)), next: undefined });
    const out = await revokeLeases(d, { all: true }, actor);
    expect(out).toEqual({ revoked: 1, leaseIds: [live.leaseId], fallbacks: 0 });
    expect(d.revoker.calls.map((c) => [c.roleArn, c.entries.length])).toEqual([[READ, 1]]);
  });

  it('does not list a lease that another call revoked between the page and the record', async () => {
    const d = deps();
    const mine = makeLease({}, d.clock);
    const theirs = makeLease({}, d.clock);
    d.leases.put(mine, { ...theirs, status: 'revoked' });
    d.leases.page = async () => ({ leases: [structuredClone(mine), structuredClone(theirs)], next: undefined });
    expect(await revokeLeases(d, { all: true }, actor)).toEqual({ revoked: 1, leaseIds: [mine.leaseId], fallbacks: 0 });
  });

  it('pages 100 leases at a time by default', async () => {
    const d = deps();
    d.leases.put(...Array.from({ length: 101 }, () => makeLease({}, d.clock)));
    const out = await revokeLeases(d, { all: true }, actor);
    expect(out.revoked).toBe(101);
    expect(d.leases.queries.map((q) => q.limit)).toEqual([100, 100]);
    expect(d.revoker.calls.map((c) => c.entries.length)).toEqual([100, 1]);
  });

  it('a lease denied but not recorded is named record_failed; the others are recorded', async () => {
    const d = deps();
    const ok = makeLease({}, d.clock);
    const stuck = makeLease({}, d.clock);
    d.leases.put(ok, stuck);
    d.leases.failOn = { transition: (id) => id === stuck.leaseId };
    const out = await revokeLeases(d, { grant: 'reports-read' }, actor);
    expect(out).toEqual({ revoked: 1, leaseIds: [ok.leaseId], fallbacks: 0, failed: [{ roleArn: READ, leaseIds: [stuck.leaseId], reason: 'record_failed' }] });
    expect(d.revoker.denies(stuck)).toBe(true);
    expect(d.audit.events.at(-1)).toEqual({
      type: 'bulk_revoke',
      fields: { selector: { grant: 'reports-read' }, by: actor.by, reason: 'incident', revoked: 1, leaseIds: [ok.leaseId], fallbacks: 0, failed: out.failed },
    });
  });

  it('a failed deny is audited with the role, how many leases, who, why and the error', async () => {
    const d = deps();
    d.leases.put(makeLease({}, d.clock), makeLease({}, d.clock));
    d.revoker.failDeny = true;
    const out = await revokeLeases(d, { all: true }, actor);
    expect(out.revoked).toBe(0);
    expect(d.audit.events[0]).toEqual({ type: 'revoke_failed', fields: { roleArn: READ, leases: 2, by: actor.by, reason: 'incident', error: 'injected IAM failure' } });
  });

  it('on a fallback: notes it once per page and role, records each lease with its kind, then kills the rest of the role — after the pages', async () => {
    const d = deps();
    d.clock.set(T0);
    const bystander = makeLease({ principal: 'dev|bob' }, d.clock);
    const targets = [makeLease({ principal: 'dev|alice' }, d.clock), makeLease({ principal: 'dev|alice' }, d.clock)];
    d.leases.put(bystander, ...targets);
    d.clock.advance(5);
    const outcome: DenyOutcome = { fallback: true, fallbackIssuedBefore: T0 / 1000 + 5, policyChars: 0 };
    d.revoker.deny = async () => outcome;
    const out = await revokeLeases(d, { principal: 'dev|alice' }, actor);
    expect(out).toMatchObject({ revoked: 2, fallbacks: 1 });
    expect(out.leaseIds.sort()).toEqual(targets.map((l) => l.leaseId).sort());
    for (const t of targets) {
      const now = (await d.leases.get(t.leaseId))!;
      expect(now).toMatchObject({ status: 'revoked', revokeReason: 'incident' });
      expect(now.events.at(-1)!.detail).toEqual({ fallback: 'role' });
    }
    expect((await d.leases.get(bystander.leaseId))!).toMatchObject({ status: 'revoked', revokeReason: 'fallback:role' });
    expect(d.metrics.counts.RevocationFallback).toBe(1);
    expect(d.audit.events.find((e) => e.type === 'revocation_fallback')!.fields).toEqual({ roleArn: READ, issuedBefore: T0 / 1000 + 5, by: actor.by, leases: 2 });
  });

  it("records a principal fallback's kind on the leases it recorded", async () => {
    const d = deps();
    const l = makeLease({}, d.clock);
    d.leases.put(l);
    d.revoker.deny = async () => ({ fallback: true, fallbackKind: 'principal', fallbackIssuedBefore: T0 / 1000 + 1, policyChars: 0 });
    await revokeLeases(d, { grant: 'reports-read' }, actor);
    expect((await d.leases.get(l.leaseId))!.events.at(-1)!.detail).toEqual({ fallback: 'principal' });
  });

  it('a bulk dry run lists the live leases of every page, writes nothing, and is audited as a dry run', async () => {
    const d = deps();
    const ls: Lease[] = [makeLease({}, d.clock), makeLease({ roleArn: DEPLOY, grant: 'deploy' }, d.clock), makeLease({ status: 'pending' }, d.clock)];
    d.leases.put(...ls, makeLease({ status: 'expired' }, d.clock));
    const out = await revokeLeases(d, { all: true }, actor, { dryRun: true, pageSize: 2 });
    expect(out.leaseIds.sort()).toEqual(ls.map((l) => l.leaseId).sort());
    expect(out).toMatchObject({ revoked: 0, fallbacks: 0, dryRun: true });
    expect(out).not.toHaveProperty('failed');
    expect(d.revoker.calls).toEqual([]);
    expect(d.audit.events).toEqual([{ type: 'bulk_revoke_dry_run', fields: { selector: { all: true }, by: actor.by, reason: 'incident', revoked: 0, leaseIds: out.leaseIds, fallbacks: 0 } }]);
  });

  it('a real run is not marked dry and audits bulk_revoke without a failed list when nothing failed', async () => {
    const d = deps();
    const l = makeLease({}, d.clock);
    d.leases.put(l);
    const out = await revokeLeases(d, { issuer: 'dev' }, actor, { dryRun: false });
    expect(out).toEqual({ revoked: 1, leaseIds: [l.leaseId], fallbacks: 0 });
    expect(d.audit.events.at(-1)).toEqual({ type: 'bulk_revoke', fields: { selector: { issuer: 'dev' }, by: actor.by, reason: 'incident', revoked: 1, leaseIds: [l.leaseId], fallbacks: 0 } });
  });

  it('by lease id: a revocation that fell back counts one fallback; an unknown id is named', async () => {
    const d = deps();
    const l = makeLease({}, d.clock);
    d.leases.put(l);
    d.revoker.deny = async () => ({ fallback: true, fallbackIssuedBefore: T0 / 1000 + 1, policyChars: 0 });
    expect(await revokeLeases(d, { leaseId: l.leaseId }, actor)).toEqual({ revoked: 1, leaseIds: [l.leaseId], fallbacks: 1 });
    await expect(revokeLeases(d, { leaseId: 'Lnope' }, actor)).rejects.toMatchObject({ reason: 'lease_not_found', detail: { leaseId: 'Lnope' } });
  });
});
