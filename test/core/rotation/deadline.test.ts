/**
 * A rotation with a deadline (the admin route's): no port call starts that could end past it;
 * stopping is no failure, and what was asked is recorded so the scheduled run does it as asked.
 */
import { describe, expect, it } from 'vitest';
import { rotateIfDue, rotateVendorKey, runRotationStep } from '../../../functions/core/rotate-vendor-key.js';
import { AWSCURRENT } from '../../../functions/core/vendor-ports.js';
import { HOUR, rig, T0, type Rig } from './fakes.js';

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

/** Records, as a crashed run would leave it, a rotation in flight under `keyName`. */
async function crashedInflight(r: Rig, keyName: string): Promise<void> {
  const st = await r.st();
  st.inflight = { token: 'tok-crashed', keyName, startedAt: new Date(T0).toISOString() };
  await r.state.acquire('acme', 'seed', r.clock.now(), r.clock.now() + 1000);
  await r.state.save(st, 'seed', r.clock.now());
  await r.state.release('acme', 'seed');
}

describe('a rotation with a deadline', () => {
  it('that cannot start its own rotation in time records it; the scheduled run rotates as asked (an incident: the replaced key revoked at once)', async () => {
    const r = slow(12_000);
    await rotateIfDue(r.deps(), r.target); // k1 current
    // A crashed run left a key at the vendor it never stored: settle finds it by name and
    // revokes it first (12 s), which leaves no room to create the new key.
    const planted = r.keys.plant('tvm-acme-crashed');
    await crashedInflight(r, 'tvm-acme-crashed');
    r.clock.t = T0 + HOUR;
    const deadline = { atMs: r.clock.now() + 20_000, vendorCallMs: 10_000, secretsCallMs: 0 };
    const out = await rotateVendorKey(r.deps({ deadline }), r.target, { reason: 'leaked', by: 'admin', revokePrevious: true });
    expect(r.clock.now()).toBeLessThanOrEqual(deadline.atMs);
    expect(out).toMatchObject({ outcome: 'deferred', complete: false, keyId: 'k1', remaining: ['rotate', 'revoke_retired'], revoked: [planted] });
    const st = await r.st();
    expect(st.requested).toEqual({ at: new Date(r.clock.now()).toISOString(), reason: 'leaked', by: 'admin', revokePrevious: true });
    expect(st.lastError).toBeUndefined();
    expect(st.events.at(-1)).toMatchObject({ type: 'rotation_deferred', reason: 'deadline', detail: { remaining: ['rotate', 'revoke_retired'], stoppedBefore: 'vendor.create' } });

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

  it('that comes once the new key is current, before the replaced key is revoked: the rotation stands, only the revocation is left (no second rotation asked)', async () => {
    const r = slow(12_000);
    await rotateIfDue(r.deps(), r.target); // k1 current
    // create (12 s) and test (12 s) start in time; revoke would start at 24 s and could end at 34 s.
    const deadline = { atMs: r.clock.now() + 30_000, vendorCallMs: 10_000, secretsCallMs: 0 };
    const out = await rotateVendorKey(r.deps({ deadline }), r.target, { reason: 'leaked', by: 'admin', revokePrevious: true });
    expect(out).toMatchObject({ outcome: 'deferred', complete: false, remaining: ['revoke_retired'], revoked: [] });
    expect(out.keyId).not.toBe('k1');
    expect((await r.current())?.key.keyId).toBe(out.keyId);
    const st = await r.st();
    expect(st.requested).toBeUndefined();
    expect(st.inflight).toBeUndefined();
    expect(st.lastError).toBeUndefined();
    expect(st.retiring.map((x) => x.keyId)).toEqual(['k1']);
    expect(st.events.at(-1)).toMatchObject({ type: 'rotation_deferred', detail: { remaining: ['revoke_retired'], stoppedBefore: 'vendor.revoke' } });
    expect(r.keys.live().sort()).toEqual(['k1', out.keyId].sort());

    // The scheduled run revokes k1 at once (an incident's retired key is due) and rotates nothing.
    const scheduled = await rotateIfDue(r.deps(), r.target);
    expect(scheduled).toMatchObject({ outcome: 'not_due', revoked: ['k1'] });
    expect(r.keys.live()).toEqual([out.keyId]);
  });

  it('of a plain rotation that cannot start: the rotation is asked of the schedule, nothing to revoke', async () => {
    const r = slow(12_000);
    await rotateIfDue(r.deps(), r.target); // k1 current
    const deadline = { atMs: r.clock.now() + 5_000, vendorCallMs: 10_000, secretsCallMs: 0 };
    const out = await rotateVendorKey(r.deps({ deadline }), r.target, { reason: 'routine', by: 'ops' });
    expect(out).toMatchObject({ outcome: 'deferred', keyId: 'k1', remaining: ['rotate'], revoked: [] });
    const st = await r.st();
    expect(st.requested).toEqual({ at: new Date(r.clock.now()).toISOString(), reason: 'routine', by: 'ops' });
    expect(st.inflight).toBeUndefined();
    expect(st.events.at(-1)).toMatchObject({ type: 'rotation_deferred', detail: { remaining: ['rotate'], stoppedBefore: 'vendor.create' } });
    expect(r.keys.live()).toEqual(['k1']);
  });

  it('that stops before a Secrets Manager call names that call', async () => {
    const r = slow(0);
    await rotateIfDue(r.deps(), r.target);
    // The vendor calls are instant; every Secrets Manager call is budgeted at a minute, so none starts.
    const deadline = { atMs: r.clock.now() + 30_000, vendorCallMs: 0, secretsCallMs: 60_000 };
    const out = await rotateVendorKey(r.deps({ deadline }), r.target, { reason: 'routine' });
    expect(out).toMatchObject({ outcome: 'deferred', keyId: 'k1' });
    const event = (await r.st()).events.at(-1)!;
    expect(event).toMatchObject({ type: 'rotation_deferred' });
    expect(String((event.detail as { stoppedBefore: string }).stoppedBefore)).toMatch(/^secrets\.[a-zA-Z]+$/);
  });

  it('that comes after a first rotation (nothing to retire) as the incident looks for keys to revoke: deferred with nothing remaining', async () => {
    // Every Secrets Manager call takes 1 ms of the clock; a dry run finds when the last one starts
    // (revokeRetired reading AWSCURRENT), and the deadline is set to refuse exactly that call.
    const timed = () => {
      const r = slow(12_000);
      const starts: number[] = [];
      const secrets = new Proxy(r.secrets, {
        get(target, prop) {
          const value = Reflect.get(target, prop) as unknown;
          if (typeof value !== 'function') return value;
          return (...a: unknown[]) => {
            starts.push(r.clock.now());
            r.clock.t += 1;
            return (value as (...x: unknown[]) => unknown).apply(target, a);
          };
        },
      });
      return { r, starts, deps: (over = {}) => r.deps({ secrets, ...over }) };
    };
    const dry = timed();
    expect(await rotateVendorKey(dry.deps(), dry.r.target, { revokePrevious: true })).toMatchObject({ outcome: 'rotated', revoked: [] });
    const { r, deps } = timed();
    // The last call (its start + 1 ms > atMs) is refused; every earlier one ends in time.
    const deadline = { atMs: dry.starts.at(-1)!, vendorCallMs: 0, secretsCallMs: 1 };
    const out = await rotateVendorKey(deps({ deadline }), r.target, { revokePrevious: true });
    expect(out).toMatchObject({ outcome: 'deferred', remaining: [], revoked: [] });
    expect((await r.current())?.key.keyId).toBe(out.keyId);
    const st = await r.st();
    expect([st.requested, st.inflight, st.retiring]).toEqual([undefined, undefined, []]);
    expect(st.events.at(-1)).toMatchObject({ type: 'rotation_deferred', detail: { remaining: [], stoppedBefore: 'secrets.getValue' } });
  });

  it('on a vendor that cannot list its keys, changes nothing the deadline leaves room for: the crashed rotation is recorded unresolved and the rotation runs', async () => {
    const r = rig({ listable: false });
    await rotateIfDue(r.deps(), r.target);
    await crashedInflight(r, 'tvm-acme-crashed');
    r.clock.t = T0 + HOUR;
    const deadline = { atMs: r.clock.now() + 60_000, vendorCallMs: 1_000, secretsCallMs: 1_000 };
    const out = await rotateVendorKey(r.deps({ deadline }), r.target, { reason: 'routine' });
    expect(out).toMatchObject({ outcome: 'rotated' });
    expect((await r.st()).unresolved.map((u) => u.keyName)).toEqual(['tvm-acme-crashed']);
  });

  it('a rotation it left to the schedule is still asked after Secrets Manager retries finishSecret on the current version', async () => {
    const r = slow(12_000);
    await rotateIfDue(r.deps(), r.target);
    const currentToken = (await r.current())!.versionId;
    const deadline = { atMs: r.clock.now() + 5_000, vendorCallMs: 10_000, secretsCallMs: 0 };
    expect(await rotateVendorKey(r.deps({ deadline }), r.target, { reason: 'routine', by: 'ops' })).toMatchObject({ outcome: 'deferred', remaining: ['rotate'] });
    // A retried finishSecret of the rotation that made k1: nothing moves, nothing asked is dropped.
    await runRotationStep(r.deps(), r.target, 'finishSecret', currentToken);
    expect((await r.current())?.key.keyId).toBe('k1');
    expect((await r.st()).requested).toMatchObject({ reason: 'routine', by: 'ops' });
    const scheduled = await rotateIfDue(r.deps(), r.target);
    expect(scheduled.outcome).toBe('rotated');
    expect(scheduled.keyId).not.toBe('k1');
  });
});

