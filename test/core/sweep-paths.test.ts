/**
 * sweepLeases on the paths sweep.test.ts leaves out: the report and audit event of a run, each
 * kind of error with what it names, pruning across pages and its failures, a fallback while
 * settling, a lease that moved under the sweep, and the deadline.
 */
import { describe, expect, it } from 'vitest';
import { sweepLeases } from '../../functions/core/sweep-leases.js';
import type { DenyOutcome } from '../../functions/core/ports.js';
import { fixedClock, makeLease, memoryAudit, memoryCounter, MemoryLeaseStore, MemoryRevoker, T0 } from './revoke-fakes.js';

const READ = 'arn:aws:iam::123456789012:role/tvm/reports-read';
const DEPLOY = 'arn:aws:iam::123456789012:role/tvm/deploy';

function setup() {
  const clock = fixedClock();
  return { clock, leases: new MemoryLeaseStore(300), revoker: new MemoryRevoker(clock), audit: memoryAudit(), metrics: memoryCounter() };
}
const events = (d: ReturnType<typeof setup>, type: string) => d.audit.events.filter((e) => e.type === type).map((e) => e.fields);

describe('sweepLeases: the report', () => {
  it('says when it judged, how long it took, and audits the whole report', async () => {
    const d = setup();
    const l = makeLease({}, d.clock);
    d.leases.put(l);
    d.clock.advance(900);
    // A clock that moves 2 s each time it is read: the duration is the span of the run.
    let reads = 0;
    const start = d.clock.now();
    const clock = { now: () => start + 2000 * reads++ };
    const r = await sweepLeases({ ...d, clock });
    expect(r.at).toBe(new Date(start).toISOString());
    expect(r.durationMs).toBe(2000 * (reads - 1));
    expect(r.durationMs).toBeGreaterThan(0);
    expect(r).toMatchObject({ expired: 1, settled: 0, revokedWhileSettling: 0, rolesPruned: 0, entriesPruned: 0, fallbacksDropped: 0, pages: 1, errors: 0, complete: true });
    expect(events(d, 'sweep')).toEqual([{ ...r }]);
    expect(events(d, 'lease_expired')).toEqual([{ leaseId: l.leaseId, principal: 'dev|alice', grant: 'reports-read', expiresAt: l.expiresAt }]);
    const now = (await d.leases.get(l.leaseId))!;
    expect(now.events.at(-1)).toEqual({ at: new Date(start + 2000).toISOString(), type: 'expired', by: 'tvm:sweep' });
  });

  it('expires a lease exactly at its expiry second, not before', async () => {
    const d = setup();
    const l = makeLease({ expiresAt: new Date(T0 + 900_500).toISOString() }, d.clock);
    d.leases.put(l);
    d.leases.listDue = async () => ({ leases: [structuredClone(l)], cursor: undefined }); // an index that lists it early
    d.clock.advance(899);
    expect((await sweepLeases(d)).expired).toBe(0);
    d.clock.advance(1);
    expect((await sweepLeases(d)).expired).toBe(1);
  });

  it('reads the due index 100 leases a page by default, at the time of the run', async () => {
    const d = setup();
    d.leases.put(...Array.from({ length: 150 }, () => makeLease({}, d.clock)));
    d.clock.advance(901);
    const asked: [number, string | undefined, number | undefined][] = [];
    const listDue = d.leases.listDue.bind(d.leases);
    d.leases.listDue = (dueBy, cursor, limit) => (asked.push([dueBy, cursor, limit]), listDue(dueBy, cursor, limit));
    const r = await sweepLeases(d);
    expect(r).toMatchObject({ expired: 150, pages: 2 });
    expect(asked.map(([by, c, limit]) => [by, c === undefined, limit])).toEqual([
      [T0 / 1000 + 901, true, 100],
      [T0 / 1000 + 901, false, 100],
    ]);
  });

  it('counts a lease revoked between the listing and its expiry neither as expired nor as an error', async () => {
    const d = setup();
    const l = makeLease({}, d.clock);
    d.leases.put({ ...l, status: 'revoked' });
    d.leases.listDue = async () => ({ leases: [structuredClone(l)], cursor: undefined });
    d.clock.advance(901);
    expect(await sweepLeases(d)).toMatchObject({ expired: 0, errors: 0 });
    expect(events(d, 'lease_expired')).toEqual([]);
  });
});

describe('sweepLeases: errors name what failed', () => {
  it('a failed expiry names the lease and the error', async () => {
    const d = setup();
    const l = makeLease({}, d.clock);
    d.leases.put(l);
    d.clock.advance(901);
    d.leases.failOn = { transition: () => true };
    const r = await sweepLeases(d);
    expect(r).toMatchObject({ errors: 1, complete: true });
    expect(events(d, 'sweep_error')).toEqual([{ what: 'expire', error: 'injected transition failure', leaseId: l.leaseId }]);
    expect(d.metrics.counts).toEqual({ SweepSettled: 0, SweepErrors: 1 });
  });

  it('a failure that is not even an Error is counted and named, and the run goes on (no metrics configured)', async () => {
    const d = setup();
    const a = makeLease({}, d.clock);
    const b = makeLease({}, d.clock);
    d.leases.put(a, b);
    d.clock.advance(901);
    const transition = d.leases.transition.bind(d.leases);
    d.leases.transition = async (id, ...rest) => {
      if (id === a.leaseId) throw undefined;
      return transition(id, ...rest);
    };
    const r = await sweepLeases({ clock: d.clock, leases: d.leases, revoker: d.revoker, audit: d.audit });
    expect(r).toMatchObject({ expired: 1, errors: 1, complete: true });
    expect(events(d, 'sweep_error')).toEqual([{ what: 'expire', error: undefined, leaseId: a.leaseId }]);
  });

  it('an unreadable page ends the run incomplete, named as a page error', async () => {
    const d = setup();
    d.leases.failOn = { listDueCall: 1 };
    const r = await sweepLeases(d);
    expect(r).toMatchObject({ errors: 1, complete: false, pages: 0 });
    expect(events(d, 'sweep_error')).toEqual([{ what: 'page', error: 'injected page failure' }]);
  });

  it('a failed deny while settling names the role and how many leases wait', async () => {
    const d = setup();
    d.leases.put(makeLease({ status: 'pending' }, d.clock), makeLease({ status: 'pending' }, d.clock));
    d.clock.advance(400);
    d.revoker.failDeny = true;
    await sweepLeases(d);
    expect(events(d, 'sweep_error')).toEqual([{ what: 'settle_deny', error: 'injected IAM failure', roleArn: READ, leases: 2 }]);
  });

  it('a failed settle record names the lease; its session stays denied', async () => {
    const d = setup();
    const p = makeLease({ status: 'pending' }, d.clock);
    d.leases.put(p);
    d.clock.advance(400);
    d.leases.failOn = { transition: () => true };
    expect(await sweepLeases(d)).toMatchObject({ settled: 0, errors: 1 });
    expect(events(d, 'sweep_error')).toEqual([{ what: 'settle', error: 'injected transition failure', leaseId: p.leaseId }]);
    expect(d.revoker.denies(p)).toBe(true);
  });

  it('a failed prune names the role and the others are still pruned', async () => {
    const d = setup();
    const a = makeLease({}, d.clock);
    const b = makeLease({ roleArn: DEPLOY, grant: 'deploy' }, d.clock);
    await d.revoker.deny(READ, [{ kind: 'session', sessionName: a.sessionName, expiresAt: T0 / 1000 + 10, issued: true }]);
    await d.revoker.deny(DEPLOY, [{ kind: 'session', sessionName: b.sessionName, expiresAt: T0 / 1000 + 10, issued: true }]);
    d.clock.advance(100);
    const prune = d.revoker.prune.bind(d.revoker);
    d.revoker.prune = async (role, now) => {
      if (role === READ) throw new Error('IAM says no');
      return prune(role, now);
    };
    const r = await sweepLeases(d);
    expect(r).toMatchObject({ rolesPruned: 1, entriesPruned: 1, errors: 1, complete: true });
    expect(events(d, 'sweep_error')).toEqual([{ what: 'prune', error: 'IAM says no', roleArn: READ }]);
  });

  it('a failure recording what a fallback killed is named and does not stop the run', async () => {
    const d = setup();
    const p = makeLease({ status: 'pending' }, d.clock);
    d.leases.put(p);
    d.clock.advance(400);
    d.revoker.deny = async () => ({ fallback: true, fallbackIssuedBefore: T0 / 1000 + 400, policyChars: 0 });
    d.leases.listLive = async () => {
      throw new Error('index down');
    };
    const r = await sweepLeases(d);
    expect(r).toMatchObject({ settled: 1, errors: 1, complete: true });
    expect(events(d, 'sweep_error')).toEqual([{ what: 'settle_fallback', error: 'index down', roleArn: READ }]);
  });
});

describe('sweepLeases: settling', () => {
  it('a settle deny that needed no fallback notes none', async () => {
    const d = setup();
    d.leases.put(makeLease({ status: 'pending' }, d.clock));
    d.clock.advance(400);
    expect((await sweepLeases(d)).settled).toBe(1);
    expect(events(d, 'revocation_fallback')).toEqual([]);
  });

  it('denies the pending leases of each role in one call', async () => {
    const d = setup();
    const ps = [makeLease({ status: 'pending' }, d.clock), makeLease({ status: 'pending', roleArn: DEPLOY }, d.clock), makeLease({ status: 'pending' }, d.clock)];
    d.leases.put(...ps);
    d.clock.advance(400);
    expect((await sweepLeases(d)).settled).toBe(3);
    const calls = d.revoker.calls.map((c) => [c.roleArn, c.entries.map((e) => (e.kind === 'session' ? e.sessionName : '')).sort()] as const);
    expect(calls.sort()).toEqual(
      [
        [READ, [ps[0].sessionName, ps[2].sessionName].sort()],
        [DEPLOY, [ps[1].sessionName]],
      ].sort(),
    );
  });

  it('on a fallback: notes it for the sweep, and records the live leases it killed', async () => {
    const d = setup();
    const active = makeLease({}, d.clock);
    const p = makeLease({ status: 'pending' }, d.clock);
    d.leases.put(active, p);
    d.clock.advance(400);
    const out: DenyOutcome = { fallback: true, fallbackIssuedBefore: T0 / 1000 + 400, policyChars: 0 };
    d.revoker.deny = async () => out;
    const r = await sweepLeases(d);
    expect(r).toMatchObject({ settled: 1, errors: 0 });
    expect(events(d, 'revocation_fallback')).toEqual([{ roleArn: READ, issuedBefore: T0 / 1000 + 400, by: 'tvm:sweep', leases: 1 }]);
    expect(d.metrics.counts.RevocationFallback).toBe(1);
    expect((await d.leases.get(active.leaseId))!).toMatchObject({ status: 'revoked', revokeReason: 'fallback:role', revokedBy: 'tvm:sweep' });
  });

  it('a pending lease that ended meanwhile is neither settled nor counted', async () => {
    const d = setup();
    const p = makeLease({ status: 'pending' }, d.clock);
    d.leases.put({ ...p, status: 'failed' });
    d.leases.listDue = async () => ({ leases: [structuredClone(p)], cursor: undefined });
    d.clock.advance(400);
    expect(await sweepLeases(d)).toMatchObject({ settled: 0, revokedWhileSettling: 0, errors: 0 });
  });
});

describe('sweepLeases: pruning', () => {
  it('pages through the prunable roles, counts entries, and audits a dropped fallback', async () => {
    const d = setup();
    const roles = [READ, DEPLOY, 'arn:aws:iam::123456789012:role/tvm/third'];
    for (const [i, role] of roles.entries()) {
      await d.revoker.deny(role, [{ kind: 'session', sessionName: `tvm-s${i}`, expiresAt: T0 / 1000 + 10, issued: true }]);
    }
    d.revoker.states.get(DEPLOY)!.fallback = { issuedBefore: T0 / 1000, expiresAt: T0 / 1000 + 10, engagedAt: T0 / 1000 };
    d.clock.advance(100);
    const all = (await d.revoker.listPrunable(d.clock.now() / 1000)).roleArns;
    expect(all).toHaveLength(3);
    // One role a page.
    d.revoker.listPrunable = async (_dueBy: number, cursor?: string) => {
      const i = cursor ? Number(cursor) : 0;
      return { roleArns: all.slice(i, i + 1), ...(i + 1 < all.length ? { cursor: String(i + 1) } : {}) };
    };
    const r = await sweepLeases(d);
    expect(r).toMatchObject({ rolesPruned: 3, entriesPruned: 3, fallbacksDropped: 1 });
    expect(events(d, 'revocation_fallback_dropped')).toEqual([{ roleArn: DEPLOY }]);
  });
});

describe('sweepLeases: the deadline', () => {
  it('starts no page once the deadline has come, and every page before it', async () => {
    const d = setup();
    d.leases.put(...Array.from({ length: 4 }, () => makeLease({}, d.clock)));
    d.clock.advance(901);
    const at = d.clock.now();
    expect(await sweepLeases(d, { deadlineMs: at + 1, pageSize: 2 })).toMatchObject({ complete: true, pages: 2, expired: 4 });
    d.leases.put(...Array.from({ length: 4 }, () => makeLease({ expiresAt: new Date(T0).toISOString() }, d.clock)));
    // The second page starts after the deadline: the clock moved past it during the first.
    const listDue = d.leases.listDue.bind(d.leases);
    d.leases.listDue = async (...a) => {
      const page = await listDue(...a);
      d.clock.advance(1);
      return page;
    };
    expect(await sweepLeases(d, { deadlineMs: at + 1000, pageSize: 2 })).toMatchObject({ complete: false, pages: 1, expired: 2 });
  });
});
