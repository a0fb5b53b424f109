/**
 * Every admin route answers within API Gateway's 29 s: POST /v1/admin/sweep stops at its own
 * budget, not at the 5-minute function's, and answers what it did and that more remains.
 */
import { describe, expect, it } from 'vitest';
import { memoryMetrics } from '../../functions/shared/metrics.js';
import type { SweepRuntime } from '../../functions/shared/runtime.js';
import { ADMIN_SWEEP_BUDGET_MS, createSweepHandler } from '../../functions/sweep/handler.js';
import { fixedClock, makeLease, memoryAudit, MemoryLeaseStore, MemoryRevoker } from '../core/revoke-fakes.js';
import { httpEvent } from '../helpers/events.js';

/** 1,000 due leases, and a store whose every expiry costs 50 ms of the clock (5 s a page of 100). */
function slowRuntime() {
  const clock = fixedClock();
  const leases = new MemoryLeaseStore();
  for (let i = 0; i < 1000; i++) leases.put(makeLease({}, clock));
  clock.advance(1000);
  const transition = leases.transition.bind(leases);
  leases.transition = async (...args: Parameters<typeof transition>) => {
    clock.advance(0.05);
    return transition(...args);
  };
  const rt = { leases, revoker: new MemoryRevoker(clock), clock, audit: memoryAudit(), metrics: memoryMetrics(), logger: { error: () => undefined } };
  return { rt: rt as unknown as SweepRuntime, clock };
}

/** The Lambda context of a 5-minute function just invoked. */
const fiveMinutes = { getRemainingTimeInMillis: () => 300_000 };

describe('POST /v1/admin/sweep within the gateway timeout', () => {
  it('stops at its budget (well under 29 s) and answers what it did and that more remains', async () => {
    const { rt, clock } = slowRuntime();
    const started = clock.now();
    const res = (await createSweepHandler(rt)(httpEvent('POST /v1/admin/sweep', { admin: true }), fiveMinutes)) as { statusCode: number; body: string };
    expect(res.statusCode).toBe(200);
    const report = JSON.parse(res.body);
    // The sweep looks at its deadline between pages: at most one page past the budget.
    expect(clock.now() - started).toBeLessThanOrEqual(ADMIN_SWEEP_BUDGET_MS + 5_000);
    expect(ADMIN_SWEEP_BUDGET_MS + 5_000).toBeLessThan(29_000);
    expect(report.complete).toBe(false);
    expect(report.expired).toBeGreaterThan(0);
    expect(report.expired).toBeLessThan(1000);
  });

  it('the scheduled run keeps the function-length deadline', async () => {
    const { rt } = slowRuntime();
    const report = (await createSweepHandler(rt)({ source: 'aws.scheduler' }, fiveMinutes)) as { expired: number; complete: boolean };
    expect(report).toMatchObject({ expired: 1000, complete: true });
  });
});
