/**
 * The sweep's promise, over random worlds and random faults: every lease due when the sweep runs
 * ends in its end state exactly once (an active one expired, a pending one failed with its session
 * denied), no lease that was not due is touched, and the reports of the runs it took count each
 * due lease once — however the pages fall and whatever failed along the way.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PRUNE_MARGIN_SECONDS } from '../../functions/core/deny-policy.js';
import type { Lease } from '../../functions/core/ports.js';
import { sweepLeases } from '../../functions/core/sweep-leases.js';
import { fixedClock, makeLease, memoryAudit, memoryCounter, MemoryLeaseStore, MemoryRevoker, T0 } from './revoke-fakes.js';

const PENDING_TIMEOUT = 300;
const ROLES = ['arn:aws:iam::123456789012:role/tvm/a', 'arn:aws:iam::123456789012:role/tvm/b', 'arn:aws:iam::123456789012:role/tvm/c'];

const leaseSpec = fc.record({
  status: fc.constantFrom<'pending' | 'active' | 'revoked' | 'expired'>('pending', 'active', 'active', 'revoked', 'expired'),
  /** Seconds before the sweep the lease was issued. */
  age: fc.integer({ min: 0, max: 2000 }),
  duration: fc.constantFrom(900, 1800, 3600),
  role: fc.integer({ min: 0, max: ROLES.length - 1 }),
});

describe('sweepLeases: every due lease ends once', () => {
  it('over random leases, page sizes and faults', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(leaseSpec, { maxLength: 40 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 4 }),
        fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
        fc.array(fc.nat(), { maxLength: 3 }),
        fc.boolean(),
        async (specs, pageSize, concurrency, failPage, failPicks, denyFailsOnce) => {
          const now = T0 + 5000_000;
          const clock = fixedClock(now);
          const leases = new MemoryLeaseStore(PENDING_TIMEOUT);
          const revoker = new MemoryRevoker(clock);
          const audit = memoryAudit();
          const all: Lease[] = specs.map((s) => {
            const issued = now - s.age * 1000;
            return makeLease({ status: s.status, roleArn: ROLES[s.role], issuedAt: new Date(issued).toISOString(), expiresAt: new Date(issued + s.duration * 1000).toISOString() });
          });
          leases.put(...all);
          const nowS = Math.floor(now / 1000);
          const dueExpire = all.filter((l) => l.status === 'active' && Math.floor(Date.parse(l.expiresAt) / 1000) <= nowS);
          const dueSettle = all.filter((l) => l.status === 'pending' && Math.floor(Date.parse(l.issuedAt) / 1000) + PENDING_TIMEOUT <= nowS);
          const due = new Set([...dueExpire, ...dueSettle].map((l) => l.leaseId));

          // Faults: one page read fails, a few lease writes fail once, one deny write fails once.
          const failing = new Set(failPicks.map((i) => all[i % Math.max(1, all.length)]?.leaseId).filter(Boolean));
          leases.failOn = { listDueCall: failPage, transition: (id) => failing.delete(id) };
          const deny = revoker.deny.bind(revoker);
          let denyFails = denyFailsOnce;
          revoker.deny = async (...a) => {
            if (denyFails) {
              denyFails = false;
              throw new Error('injected IAM failure');
            }
            return deny(...a);
          };

          let expired = 0;
          let settled = 0;
          let clean = false;
          for (let run = 0; run < 6 && !clean; run++) {
            const r = await sweepLeases({ leases, revoker, clock, audit, metrics: memoryCounter() }, { pageSize, concurrency });
            expired += r.expired;
            settled += r.settled;
            expect(r.revokedWhileSettling).toBe(0);
            clean = r.complete && r.errors === 0;
          }
          expect(clean).toBe(true);

          expect(expired).toBe(dueExpire.length);
          expect(settled).toBe(dueSettle.length);
          for (const l of all) {
            const now = leases.items.get(l.leaseId)!;
            const ends = now.events.filter((e) => e.type === 'expired' || e.type === 'settled');
            if (!due.has(l.leaseId)) {
              expect([l.leaseId, now.status, ends.length]).toEqual([l.leaseId, l.status, 0]);
              continue;
            }
            expect(ends).toHaveLength(1);
            if (l.status === 'active') expect(now).toMatchObject({ status: 'expired' });
            else {
              expect(now).toMatchObject({ status: 'failed', revokeReason: 'pending_timeout', revokedBy: 'tvm:sweep' });
              // Denied, unless its session has expired anyway (an entry for it would be pruned at once).
              const sessionOver = Math.floor(Date.parse(l.expiresAt) / 1000) + PRUNE_MARGIN_SECONDS <= nowS;
              expect([l.leaseId, revoker.denies(l) || sessionOver]).toEqual([l.leaseId, true]);
            }
          }
          // A rerun (no faults left) finds nothing to do.
          leases.failOn = {};
          const again = await sweepLeases({ leases, revoker, clock, audit, metrics: memoryCounter() }, { pageSize });
          expect(again).toMatchObject({ expired: 0, settled: 0, errors: 0, complete: true });
        },
      ),
      { numRuns: 150 },
    );
  });
});
