import { describe, expect, it } from 'vitest';
import { memoryMetrics } from '../../functions/shared/metrics.js';
import type { Runtime } from '../../functions/shared/runtime.js';
import { createSweepHandler } from '../../functions/sweep/handler.js';
import { fixedClock, makeLease, memoryAudit, MemoryLeaseStore, MemoryRevoker } from '../core/revoke-fakes.js';
import { httpEvent } from '../helpers/events.js';

function runtime() {
  const clock = fixedClock();
  const leases = new MemoryLeaseStore();
  leases.put(makeLease({}, clock));
  clock.advance(1000);
  const audit = memoryAudit();
  const metrics = memoryMetrics();
  const rt = { leases, revoker: new MemoryRevoker(clock), clock, audit, metrics, logger: { error: () => undefined } } as unknown as Runtime;
  return { rt, audit, metrics };
}

describe('sweep handler', () => {
  it('a scheduled event runs the sweep and answers the report', async () => {
    const { rt, metrics } = runtime();
    const report = await createSweepHandler(rt)({ source: 'aws.scheduler' });
    expect(report).toMatchObject({ expired: 1, complete: true });
    expect(metrics.counts).toMatchObject({ SweepSettled: 0, SweepErrors: 0 });
  });

  it('POST /v1/admin/sweep runs it for an admin and answers 200 with the report', async () => {
    const { rt } = runtime();
    const res = (await createSweepHandler(rt)(httpEvent('POST /v1/admin/sweep', { admin: true }))) as { statusCode: number; body: string };
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ expired: 1 });
  });

  it('answers 401 without the admin identity and does nothing', async () => {
    const { rt, audit } = runtime();
    const res = (await createSweepHandler(rt)(httpEvent('POST /v1/admin/sweep'))) as { statusCode: number; body: string };
    expect(res.statusCode).toBe(401);
    expect(JSON.parse(res.body).error).toBe('invalid_token');
    expect(audit.events.find((e) => e.type === 'sweep')).toBeUndefined();
  });

  it('answers 404 for another route', async () => {
    const { rt } = runtime();
    const res = (await createSweepHandler(rt)(httpEvent('GET /v1/admin/sweep', { admin: true }))) as { statusCode: number };
    expect(res.statusCode).toBe(404);
  });
});
