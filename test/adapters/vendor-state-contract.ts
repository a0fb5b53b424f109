/**
 * What every VendorStateStore must do, run against a real DynamoDB protocol (dynalite here, moto
 * in the conformance suite): the lock is exclusive until it expires, only its owner saves and
 * only while it holds, a release by another owner does nothing, the state round-trips.
 */
import { expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { emptyVendorState, type VendorState, type VendorStateStore } from '../../functions/core/vendor-ports.js';

const T0 = Date.parse('2031-03-01T00:00:00Z');

export function vendorStateStoreContract(store: () => VendorStateStore): void {
  it('a vendor never seen has no state', async () => {
    expect(await store().get(`v-${randomUUID()}`)).toBeUndefined();
  });

  it('the lock: one owner at a time until it expires; the owner may re-take it; release frees it only for its owner', async () => {
    const s = store();
    const v = `v-${randomUUID()}`;
    expect(await s.acquire(v, 'a', T0, T0 + 60_000)).toBe(true);
    expect(await s.acquire(v, 'b', T0 + 1000, T0 + 61_000)).toBe(false);
    expect(await s.acquire(v, 'a', T0 + 1000, T0 + 61_000)).toBe(true);
    await s.release(v, 'b'); // not b's: nothing happens
    expect(await s.acquire(v, 'b', T0 + 2000, T0 + 62_000)).toBe(false);
    // Expired: another owner takes it.
    expect(await s.acquire(v, 'b', T0 + 61_001, T0 + 121_001)).toBe(true);
    await s.release(v, 'b');
    expect(await s.acquire(v, 'c', T0 + 61_002, T0 + 121_002)).toBe(true);
  });

  it('save: the state round-trips for the lock owner; anyone else, or the owner after expiry, gets LockLost and writes nothing', async () => {
    const s = store();
    const v = `v-${randomUUID()}`;
    const st: VendorState = {
      ...emptyVendorState(v),
      currentKeyId: 'k1',
      nextDueAt: '2031-03-02T00:00:00.000Z',
      retiring: [{ keyId: 'k0', versionId: 'ver0', revokeAfter: '2031-03-01T00:15:00.000Z' }],
      inflight: { token: 't1', keyName: `tvm-${v}-t1`, startedAt: '2031-03-01T00:00:00.000Z', testedKeyId: 'k2' },
      events: [{ at: '2031-03-01T00:00:00.000Z', type: 'rotated', keyId: 'k1', detail: { previousKeyId: 'k0' } }],
    };
    await expect(s.save(st, 'a', T0)).rejects.toMatchObject({ name: 'LockLost', code: 'throttled', reason: 'lock_lost' });
    expect(await s.acquire(v, 'a', T0, T0 + 60_000)).toBe(true);
    await s.save(st, 'a', T0 + 1000);
    expect(await s.get(v)).toEqual(st);
    await expect(s.save({ ...st, currentKeyId: 'other' }, 'b', T0 + 1000)).rejects.toMatchObject({ name: 'LockLost' });
    // The owner's own lock has expired: its save is refused even though no one took the lock.
    await expect(s.save({ ...st, currentKeyId: 'late' }, 'a', T0 + 60_000)).rejects.toMatchObject({ name: 'LockLost' });
    expect((await s.get(v))!.currentKeyId).toBe('k1');
    await s.release(v, 'a');
    await expect(s.save({ ...st, currentKeyId: 'released' }, 'a', T0 + 2000)).rejects.toMatchObject({ name: 'LockLost' });
    expect((await s.get(v))!.currentKeyId).toBe('k1');
  });
}
