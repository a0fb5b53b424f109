/**
 * A rotation with a deadline (the admin route's): no port call starts that could end past it;
 * stopping is no failure, and what was asked is recorded so the scheduled run does it as asked.
 */
import { describe, expect, it } from 'vitest';
import { rotateIfDue, rotateVendorKey } from '../../../functions/core/rotate-vendor-key.js';
import { AWSCURRENT } from '../../../functions/core/vendor-ports.js';
import { HOUR, rig, T0 } from './fakes.js';

/** A rig whose vendor calls each take `ms` of the clock. */
function slow(ms: number) {
  const r = rig();
  for (const op of ['create', 'test', 'revoke'] as const) {
    const real = r.keys[op].bind(r.keys) as (...a: unknown[]) => Promise<unknown>;
    (r.keys as unknown as Record<string, unknown>)[op] = async (...a: unknown[]) => {
      r.clock.t += ms;
      return real(...a);
    };
  }
  return r;
}

describe('a rotation with a deadline', () => {
  it('that cannot start its own rotation in time records it; the scheduled run rotates as asked (an incident: the replaced key revoked at once)', async () => {
    const r = slow(12_000);
    await rotateIfDue(r.deps(), r.target); // k1 current
    // A crashed run left a key at the vendor it never stored: settle finds it by name and
    // revokes it first (12 s), which leaves no room to create the new key.
    const planted = r.keys.plant('tvm-acme-crashed');
    const st0 = await r.st();
    st0.inflight = { token: 'tok-crashed', keyName: 'tvm-acme-crashed', startedAt: new Date(T0).toISOString() };
    await r.state.acquire('acme', 'seed', r.clock.now(), r.clock.now() + 1000);
    await r.state.save(st0, 'seed', r.clock.now());
    await r.state.release('acme', 'seed');
    r.clock.t = T0 + HOUR;
    const deadline = { atMs: r.clock.now() + 20_000, vendorCallMs: 10_000, secretsCallMs: 0 };
    const out = await rotateVendorKey(r.deps({ deadline }), r.target, { reason: 'leaked', by: 'admin', revokePrevious: true });
    expect(r.clock.now()).toBeLessThanOrEqual(deadline.atMs);
    expect(out).toMatchObject({ outcome: 'deferred', complete: false, keyId: 'k1', remaining: ['rotate', 'revoke_retired'], revoked: [planted] });
    const st = await r.st();
    expect(st.requested).toEqual({ at: new Date(r.clock.now()).toISOString(), reason: 'leaked', by: 'admin', revokePrevious: true });
    expect(st.lastError).toBeUndefined();
    expect(st.events.at(-1)).toMatchObject({ type: 'rotation_deferred', reason: 'deadline' });

    // Not due for a day, yet the schedule rotates: it was asked; and as an incident.
    const scheduled = await rotateIfDue(r.deps(), r.target);
    expect(scheduled.outcome).toBe('rotated');
    expect(scheduled.revoked).toEqual(['k1']);
    expect(r.keys.live()).toEqual([scheduled.keyId]);
    expect((await r.st()).requested).toBeUndefined();
    expect(Object.values(await r.versions()).filter((s) => s.includes(AWSCURRENT))).toHaveLength(1);
    // Done once: the next run leaves it alone.
    expect((await rotateIfDue(r.deps(), r.target)).outcome).toBe('not_due');
  });

  it('without a deadline nothing changes: the same slow rotation runs to its end', async () => {
    const r = slow(12_000);
    await rotateIfDue(r.deps(), r.target);
    const out = await rotateVendorKey(r.deps(), r.target, { reason: 'leaked', revokePrevious: true });
    expect(out).toMatchObject({ outcome: 'rotated', revoked: ['k1'] });
  });
});
