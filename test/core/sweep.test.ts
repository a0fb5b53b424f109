import { describe, expect, it } from 'vitest';
import { PRUNE_MARGIN_SECONDS } from '../../functions/core/deny-policy.js';
import type { Lease } from '../../functions/core/ports.js';
import { revokeLease } from '../../functions/core/revoke-lease.js';
import { sweepLeases } from '../../functions/core/sweep-leases.js';
import { fixedClock, makeLease, memoryAudit, memoryCounter, MemoryLeaseStore, MemoryRevoker } from './revoke-fakes.js';

function setup() {
  const clock = fixedClock();
  const leases = new MemoryLeaseStore(300);
  const revoker = new MemoryRevoker(clock);
  return { clock, leases, revoker, audit: memoryAudit(), metrics: memoryCounter() };
}

/** 25 active leases expiring at +900 s, 5 at +3600 s, 4 pending since t0, 3 revoked. */
async function world(d: ReturnType<typeof setup>) {
  const soon = Array.from({ length: 25 }, () => makeLease({}, d.clock));
  const later = Array.from({ length: 5 }, () => makeLease({ expiresAt: new Date(d.clock.now() + 3600_000).toISOString() }, d.clock));
  const pending = Array.from({ length: 4 }, () => makeLease({ status: 'pending' }, d.clock));
  const revoked = Array.from({ length: 3 }, () => makeLease({}, d.clock));
  d.leases.put(...soon, ...later, ...pending, ...revoked);
  for (const l of revoked) await revokeLease(d, l, { by: 'admin', reason: 'r' });
  return { soon, later, pending, revoked };
}

function snapshot(d: ReturnType<typeof setup>): Record<string, string> {
  return Object.fromEntries([...d.leases.items.values()].map((l: Lease) => [l.leaseId, l.status]));
}

describe('sweepLeases', () => {
  it('expires active leases past expiresAt, settles pending ones past the bound, and reports it', async () => {
    const d = setup();
    const w = await world(d);
    d.clock.advance(901);
    const report = await sweepLeases(d, { pageSize: 7 });
    expect(report).toMatchObject({ expired: 25, settled: 4, errors: 0, complete: true });
    for (const l of w.soon) expect(d.leases.items.get(l.leaseId)!.status).toBe('expired');
    for (const l of w.later) expect(d.leases.items.get(l.leaseId)!.status).toBe('active');
    for (const l of w.pending) {
      const now = d.leases.items.get(l.leaseId)!;
      expect(now.status).toBe('failed');
      expect(now.events.at(-1)).toMatchObject({ type: 'settled', by: 'tvm:sweep', reason: 'pending_timeout' });
      expect(d.revoker.denies(l)).toBe(true);
    }
    expect(d.leases.items.get(w.soon[0].leaseId)!.events.at(-1)).toMatchObject({ type: 'expired' });
    expect(d.audit.events.find((e) => e.type === 'sweep')!.fields).toMatchObject({ expired: 25, settled: 4 });
    expect(d.metrics.counts).toMatchObject({ SweepSettled: 4, SweepErrors: 0 });
  });

  it('settles pending leases only after the bound', async () => {
    const d = setup();
    const p = makeLease({ status: 'pending' }, d.clock);
    d.leases.put(p);
    d.clock.advance(299);
    expect((await sweepLeases(d)).settled).toBe(0);
    d.clock.advance(1);
    expect((await sweepLeases(d)).settled).toBe(1);
  });

  it('prunes deny entries once their sessions have expired, leaving the role empty', async () => {
    const d = setup();
    const w = await world(d);
    d.clock.advance(901);
    const first = await sweepLeases(d);
    expect(first.entriesPruned).toBe(0);
    // 3 revoked + 4 settled sessions, each denied until its latest possible expiry (+900 s) and the margin.
    expect(Object.keys(d.revoker.states.get(w.soon[0].roleArn)!.sessions)).toHaveLength(7);
    d.clock.advance(PRUNE_MARGIN_SECONDS);
    const second = await sweepLeases(d);
    expect(second).toMatchObject({ entriesPruned: 7, rolesPruned: 1 });
    expect(d.revoker.states.get(w.soon[0].roleArn)).toEqual({ sessions: {}, sources: {} });
  });

  it('is idempotent: a rerun changes nothing', async () => {
    const d = setup();
    await world(d);
    d.clock.advance(4000);
    await sweepLeases(d);
    const before = snapshot(d);
    const again = await sweepLeases(d);
    expect(again).toMatchObject({ expired: 0, settled: 0, entriesPruned: 0, rolesPruned: 0, errors: 0 });
    expect(snapshot(d)).toEqual(before);
  });

  it('after a failure between pages, a rerun reaches the same end state as an uninterrupted run', async () => {
    const clean = setup();
    const crashy = setup();
    // Same leases in both worlds.
    const w = await world(clean);
    crashy.leases.put(...[...clean.leases.items.values()].map((l) => structuredClone(l)));
    for (const [k, v] of clean.revoker.states) crashy.revoker.states.set(k, structuredClone(v));
    for (const d of [clean, crashy]) d.clock.advance(901);

    await sweepLeases(clean, { pageSize: 5 });
    crashy.leases.failOn = { listDueCall: 3 };
    const broken = await sweepLeases(crashy, { pageSize: 5 });
    expect(broken).toMatchObject({ complete: false, errors: 1 });
    expect(broken.expired + broken.settled).toBeGreaterThan(0);
    expect(crashy.metrics.counts.SweepErrors).toBe(1);
    const rerun = await sweepLeases(crashy, { pageSize: 5 });
    expect(rerun.complete).toBe(true);
    expect(broken.expired + rerun.expired).toBe(25);
    expect(broken.settled + rerun.settled).toBe(4);
    expect(snapshot(crashy)).toEqual(snapshot(clean));
    expect(crashy.revoker.states).toEqual(clean.revoker.states);
    void w;
  });

  it('counts a failed lease transition as an error and retries it on the next run', async () => {
    const d = setup();
    const w = await world(d);
    d.clock.advance(901);
    d.leases.failOn = { transition: (id) => id === w.soon[3].leaseId };
    const first = await sweepLeases(d);
    expect(first).toMatchObject({ expired: 24, errors: 1, complete: true });
    d.leases.failOn = {};
    expect((await sweepLeases(d)).expired).toBe(1);
  });

  it('leaves pending leases pending when their deny cannot be written', async () => {
    const d = setup();
    const p = makeLease({ status: 'pending' }, d.clock);
    d.leases.put(p);
    d.clock.advance(400);
    d.revoker.failDeny = true;
    expect(await sweepLeases(d)).toMatchObject({ settled: 0, errors: 1 });
    expect(d.leases.items.get(p.leaseId)!.status).toBe('pending');
  });

  it('records a pending lease activated during settlement as revoked (its session is denied)', async () => {
    const d = setup();
    const p = makeLease({ status: 'pending' }, d.clock);
    d.leases.put(p);
    d.clock.advance(400);
    const deny = d.revoker.deny.bind(d.revoker);
    d.revoker.deny = async (role, entries) => {
      const out = await deny(role, entries);
      d.leases.items.get(p.leaseId)!.status = 'active'; // vend's activate lands between deny and settle
      return out;
    };
    const report = await sweepLeases(d);
    expect(report).toMatchObject({ settled: 0, revokedWhileSettling: 1 });
    expect(d.leases.items.get(p.leaseId)!.status).toBe('revoked');
  });

  it('stops at the deadline and reports the run incomplete', async () => {
    const d = setup();
    await world(d);
    d.clock.advance(901);
    const report = await sweepLeases(d, { deadlineMs: d.clock.now() });
    expect(report).toMatchObject({ complete: false, pages: 0 });
  });
});
