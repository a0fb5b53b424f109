/**
 * Every admin route answers within API Gateway's 29 s: POST /v1/admin/sweep and
 * POST /v1/admin/vendors/{name}/rotate stop at their own budget, not at the 5-minute function's,
 * and answer what they did and what remains; the scheduled run finishes it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { LocalSecretStore } from '../../functions/adapters/local-secret-store.js';
import { fetchVendorHttp, MANAGEMENT_TIMEOUT_MS } from '../../functions/adapters/http-vendor.js';
import type { VendorConfig } from '../../functions/core/vendor-config.js';
import { AWSCURRENT, type VendorHttp } from '../../functions/core/vendor-ports.js';
import { ADMIN_ROTATE_BUDGET_MS, createRotateHandler } from '../../functions/rotate/handler.js';
import type { RotateRuntime } from '../../functions/shared/runtime.js';
import { ACME_HTTP_CONFIG, HttpFake } from '../../local/vendor-fakes/http.js';
import { MemoryVendorStateStore, vendorConfig } from '../core/rotation/fakes.js';
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

describe('POST /v1/admin/vendors/{name}/rotate within the gateway timeout', () => {
  let fake: HttpFake | undefined;
  let fast = false;
  afterEach(async () => {
    fast = false;
    await fake?.close();
    fake = undefined;
  });

  /**
   * The acme vendor (a real HTTP fake on loopback) whose every key-management call takes its
   * whole timeout (10 s) on the controllable clock: a slow vendor, without a real sleep.
   */
  async function slowVendor() {
    fake = new HttpFake('acme');
    const url = await fake.start(0);
    const clock = { t: Date.parse('2030-01-01T00:00:00Z'), now: () => clock.t };
    const wire = fetchVendorHttp();
    const http: VendorHttp = {
      send: async (req) => {
        if (!fast) clock.t += MANAGEMENT_TIMEOUT_MS;
        return wire.send(req);
      },
    };
    const vendor = { ...vendorConfig({ baseUrl: url, rotation: { every: '24h', overlap: '15m' } }), http: ACME_HTTP_CONFIG } as VendorConfig;
    const secrets = new LocalSecretStore();
    const ids = { key: 'tvm/acme/key', management: 'tvm/acme/management' };
    await secrets.putValue(ids.management, 'm1', fake.managementSecret(), [AWSCURRENT]);
    const audit = memoryAudit();
    const rt = {
      config: { vendors: [vendor] },
      clock,
      audit,
      metrics: memoryMetrics(),
      logger: { error: () => undefined, info: () => undefined, warn: () => undefined },
      settings: { vendors: { secrets, secretIds: { acme: ids }, state: new MemoryVendorStateStore(), http } },
    } as unknown as RotateRuntime;
    return { rt, clock, fake, handler: createRotateHandler(rt) };
  }

  const rotate = (body: unknown) => httpEvent('POST /v1/admin/vendors/{name}/rotate', { admin: true, pathParameters: { name: 'acme' }, body });

  it('an incident rotation (create, test, revoke two keys: 40 s of vendor calls) answers by its budget what it did and what remains; the schedule finishes it', async () => {
    const { clock, fake, handler } = await slowVendor();
    // k1, then (a day later, due) k2 current with k1 retiring in its 15-minute overlap.
    await handler({ source: 'aws.scheduler' }, fiveMinutes);
    clock.t += 25 * 3600_000;
    await handler({ source: 'aws.scheduler' }, fiveMinutes);
    const [k1, k2] = [...fake.keys.values()].map((k) => k.id);
    expect(fake.revoked).toEqual([]);

    const started = clock.now();
    const res = (await handler(rotate({ reason: 'leaked', revokePrevious: true }), fiveMinutes)) as { statusCode: number; body: string };
    expect(clock.now() - started).toBeLessThanOrEqual(ADMIN_ROTATE_BUDGET_MS);
    expect(ADMIN_ROTATE_BUDGET_MS).toBeLessThan(29_000);
    expect(res.statusCode).toBe(200);
    const answer = JSON.parse(res.body);
    // Created and tested (20 s); making it current could outlast the budget: left to the schedule.
    expect(answer).toMatchObject({ vendor: 'acme', outcome: 'deferred', complete: false, keyId: k2, remaining: ['finish_rotation', 'revoke_retired'], revoked: [] });
    expect(answer.done).toEqual(['rotation_started', 'key_created', 'key_tested']);
    const k3 = [...fake.keys.keys()].find((id) => id !== k1 && id !== k2)!;
    expect(fake.revoked).toEqual([]);

    // The next scheduled run (no deadline) makes k3 current and revokes both replaced keys at
    // once (an incident: no overlap).
    await handler({ source: 'aws.scheduler' }, fiveMinutes);
    expect(fake.revoked.sort()).toEqual([k1, k2].sort());
    expect([...fake.keys.keys()]).toEqual([k3]);
    const vendors = JSON.parse(((await handler(httpEvent('GET /v1/admin/vendors', { admin: true }), fiveMinutes)) as { body: string }).body);
    expect(vendors.vendors[0]).toMatchObject({ currentKeyId: k3, retiring: [] });
  });

  it('a fast vendor: the same rotation finishes inside the budget and says complete', async () => {
    const { fake, handler, clock } = await slowVendor();
    await handler({ source: 'aws.scheduler' }, fiveMinutes);
    fast = true;
    const started = clock.now();
    const res = (await handler(rotate({ reason: 'leaked', revokePrevious: true }), fiveMinutes)) as { statusCode: number; body: string };
    expect(clock.now()).toBe(started);
    const answer = JSON.parse(res.body);
    expect(answer).toMatchObject({ outcome: 'rotated', complete: true });
    expect(answer.revoked).toHaveLength(1);
    expect(fake.keys.size).toBe(1);
  });
});
