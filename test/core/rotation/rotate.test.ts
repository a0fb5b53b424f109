/**
 * Rotation (`core/rotation`) on in-memory ports: what each use case leaves in the secret store,
 * at the vendor and in tvm's record, on the happy paths and on each failure a port can answer.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { KeyRejected, LockLost, SecretStoreError, UpstreamUnavailable, VendorRefused } from '../../../functions/core/errors.js';
import {
  failureReason,
  isConfiguredValue,
  keyNameFor,
  NOT_CONFIGURED,
  parseVendorKey,
  ROTATION_STEPS,
  rotateIfDue,
  rotateVendorKey,
  runRotationStep,
  runScheduledRotations,
  vendorStatus,
} from '../../../functions/core/rotate-vendor-key.js';
import { LOCK_MARGIN_MS, ROTATE_FUNCTION_TIMEOUT_SECONDS, rotationLockTtlMs } from '../../../functions/core/rotation/lock.js';
import { AWSCURRENT, AWSPENDING, AWSPREVIOUS, emptyVendorState } from '../../../functions/core/vendor-ports.js';
import { HOUR, LOCK_TTL, MINUTE, rig, type Rig, T0 } from './fakes.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** A rig whose first key (k1, version tok-1) is current, rotated at T0. */
async function seeded(opts: Parameters<typeof rig>[0] = {}): Promise<Rig> {
  const r = rig(opts);
  await rotateIfDue(r.deps(), r.target);
  r.keys.calls.length = 0;
  r.audit.length = 0;
  return r;
}

describe('what a vendor secret holds', () => {
  it('keyNameFor names the key after the vendor and the rotation token', () => {
    expect(keyNameFor('acme', 'tok-9')).toBe('tvm-acme-tok-9');
  });

  it.each<[string, string | undefined]>([
    ['no value', undefined],
    ['an empty value', ''],
    ['the placeholder', NOT_CONFIGURED],
    ['not JSON', 'keyId=k1'],
    ['JSON null', 'null'],
    ['a JSON string', '"k1"'],
    ['no keyId', '{"key":"s"}'],
    ['an empty keyId', '{"keyId":"","key":"s"}'],
    ['a numeric keyId', '{"keyId":1,"key":"s"}'],
    ['no key', '{"keyId":"k1"}'],
    ['an empty key', '{"keyId":"k1","key":""}'],
    ['a numeric key', '{"keyId":"k1","key":7}'],
  ])('parseVendorKey: %s is not a key', (_label, value) => {
    expect(parseVendorKey(value)).toBeUndefined();
  });

  it('parseVendorKey keeps only the key id and the key', () => {
    expect(parseVendorKey('{"keyId":"k1","key":"s","extra":"x"}')).toEqual({ keyId: 'k1', key: 's' });
  });

  it.each<[string | undefined, boolean]>([
    [undefined, false],
    ['', false],
    ['   ', false],
    [NOT_CONFIGURED, false],
    [` ${NOT_CONFIGURED}\n`, false],
    ['{"apiKey":"a"}', true],
    ['x', true],
  ])('isConfiguredValue(%j) → %s', (value, want) => {
    expect(isConfiguredValue(value)).toBe(want);
  });

  it('the steps are Secrets Manager’s four, in its order', () => {
    expect(ROTATION_STEPS).toEqual(['createSecret', 'setSecret', 'testSecret', 'finishSecret']);
  });

  it('failureReason: a TvmError’s reason, anything else a bare "error" (never its message)', () => {
    expect(failureReason(new KeyRejected(403))).toBe('key_rejected_403');
    expect(failureReason(new Error('key sk-123 leaked in a message'))).toBe('error');
    expect(failureReason('boom')).toBe('error');
  });
});

describe('the lock TTL', () => {
  it('is the invocation’s remaining time plus the margin, else the function’s whole timeout plus the margin', () => {
    expect(LOCK_MARGIN_MS).toBe(10_000);
    expect(rotationLockTtlMs(5000)).toBe(15_000);
    expect(rotationLockTtlMs(0)).toBe(10_000);
    expect(rotationLockTtlMs()).toBe(ROTATE_FUNCTION_TIMEOUT_SECONDS * 1000 + 10_000);
    expect(rotationLockTtlMs()).toBe(310_000);
  });
});

describe('the first key', () => {
  it('a vendor with no key yet gets one at once: created, tested, made current, recorded', async () => {
    const r = rig();
    const out = await rotateIfDue(r.deps(), r.target);
    expect(out).toEqual({ vendor: 'acme', outcome: 'rotated', keyId: 'k1', previousKeyId: undefined, revoked: [] });
    expect(r.keys.calls).toEqual(['create tvm-acme-tok-1', 'test k1']);
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT] });
    expect((await r.current())!.key).toEqual({ keyId: 'k1', key: 'secret-k1-tvm-acme-tok-1' });
    const st = await r.st();
    expect(st).toMatchObject({ vendor: 'acme', currentKeyId: 'k1', lastRotatedAt: iso(T0), nextDueAt: iso(T0 + 24 * HOUR), retiring: [], unresolved: [] });
    expect(st.inflight).toBeUndefined();
    expect(st.lastError).toBeUndefined();
    expect(st.events.map((e) => [e.type, e.keyId, e.at])).toEqual([
      ['rotation_started', undefined, iso(T0)],
      ['key_created', 'k1', iso(T0)],
      ['key_tested', 'k1', iso(T0)],
      ['rotated', 'k1', iso(T0)],
    ]);
    expect(st.events[0]).toMatchObject({ by: 'schedule', reason: 'scheduled' });
    expect(st.events[3].detail).toBeUndefined();
  });

  it('every event is also an audit line named vendor_<type>, carrying the vendor and never a key', async () => {
    const r = rig();
    await rotateIfDue(r.deps(), r.target);
    expect(r.audit.map((a) => a.type)).toEqual(['vendor_rotation_started', 'vendor_key_created', 'vendor_key_tested', 'vendor_rotated']);
    expect(r.audit[0].fields).toEqual({ vendor: 'acme', type: 'rotation_started', by: 'schedule', reason: 'scheduled' });
    expect(r.audit[1].fields).toEqual({ vendor: 'acme', type: 'key_created', keyId: 'k1' });
    expect(JSON.stringify(r.audit)).not.toContain('secret-k1');
    expect(JSON.stringify(await r.st())).not.toContain('secret-k1');
  });
});

describe('rotateVendorKey (rotate now)', () => {
  let r: Rig;
  beforeEach(async () => {
    r = await seeded();
  });

  it('makes a new key current; the old one becomes AWSPREVIOUS and retires after the overlap', async () => {
    r.clock.t = T0 + HOUR;
    const out = await rotateVendorKey(r.deps(), r.target, { reason: 'test', by: 'admin' });
    expect(out).toEqual({ vendor: 'acme', outcome: 'rotated', keyId: 'k2', previousKeyId: 'k1', revoked: [] });
    expect(await r.versions()).toEqual({ 'tok-1': [AWSPREVIOUS], 'tok-2': [AWSCURRENT] });
    expect(r.keys.live()).toEqual(['k1', 'k2']);
    const st = await r.st();
    expect(st).toMatchObject({ currentKeyId: 'k2', lastRotatedAt: iso(T0 + HOUR), nextDueAt: iso(T0 + 25 * HOUR) });
    expect(st.retiring).toEqual([{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 + HOUR + 15 * MINUTE) }]);
    expect(st.events.at(-1)).toEqual({ at: iso(T0 + HOUR), type: 'rotated', keyId: 'k2', detail: { previousKeyId: 'k1' } });
    expect(st.events.find((e) => e.type === 'rotation_started' && e.at === iso(T0 + HOUR))).toMatchObject({ by: 'admin', reason: 'test' });
    // The inflight record (the key's name) existed before the vendor was asked, and is gone once finished.
    expect(st.inflight).toBeUndefined();
  });

  it('an incident (revokePrevious) revokes every retired key at once, and the record says so', async () => {
    await rotateVendorKey(r.deps(), r.target, {}); // k2 current, k1 retiring
    r.keys.calls.length = 0;
    const out = await rotateVendorKey(r.deps(), r.target, { reason: 'leak', revokePrevious: true, by: 'admin' });
    expect(out).toMatchObject({ outcome: 'rotated', keyId: 'k3', previousKeyId: 'k2' });
    expect(out.revoked.sort()).toEqual(['k1', 'k2']);
    expect(r.keys.live()).toEqual(['k3']);
    expect(await r.versions()).toEqual({ 'tok-1': [], 'tok-2': [], 'tok-3': [AWSCURRENT] });
    const st = await r.st();
    expect(st.retiring).toEqual([]);
    const revokes = st.events.filter((e) => e.type === 'key_revoked');
    expect(revokes.map((e) => [e.keyId, e.reason])).toEqual(
      expect.arrayContaining([
        ['k1', 'revoke_now'],
        ['k2', 'revoke_now'],
      ]),
    );
  });

  it('without revokePrevious, nothing is revoked even when retired keys are overdue', async () => {
    await rotateVendorKey(r.deps(), r.target, {});
    r.clock.t += HOUR;
    const out = await rotateVendorKey(r.deps(), r.target, {});
    expect(out.revoked).toEqual([]);
    expect(r.keys.live()).toEqual(['k1', 'k2', 'k3']);
  });

  it('the incident skips the overlap of the key it replaces even if the run crashes before revoking it', async () => {
    r.keys.fail('revoke', new UpstreamUnavailable('vendor_503'));
    await expect(rotateVendorKey(r.deps(), r.target, { revokePrevious: true })).rejects.toMatchObject({ reason: 'vendor_503' });
    const st = await r.st();
    expect(st.currentKeyId).toBe('k2');
    expect(st.retiring).toEqual([{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0) }]);
    expect(st.lastError).toEqual({ at: iso(T0), step: 'revokePrevious', reason: 'vendor_503' });
    // The next scheduled run (no force) revokes it: its revokeAfter is already past.
    const next = await rotateIfDue(r.deps(), r.target);
    expect(next).toMatchObject({ outcome: 'not_due', revoked: ['k1'] });
    expect((await r.st()).events.at(-1)).toMatchObject({ type: 'key_revoked', keyId: 'k1', reason: 'overlap_passed' });
  });

  it('an incident brings forward keys still waiting out an earlier overlap (recorded before anything else)', async () => {
    await rotateVendorKey(r.deps(), r.target, {}); // k1 retiring until T0+15m
    r.clock.t = T0 + 5 * MINUTE;
    r.keys.fail('create', new UpstreamUnavailable('vendor_500'));
    await expect(rotateVendorKey(r.deps(), r.target, { revokePrevious: true })).rejects.toMatchObject({ reason: 'vendor_500' });
    expect((await r.st()).retiring).toEqual([{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 + 5 * MINUTE) }]);
  });

  it('refuses a vendor whose management credential is not set (400), before any lock or vendor call', async () => {
    r.configured.value = false;
    const before = await r.st();
    const err = await rotateVendorKey(r.deps(), r.target, { reason: 'try' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'invalid_request', reason: 'vendor_not_configured', message: "The vendor's management credential is not set.", detail: { vendor: 'acme' } });
    expect(r.keys.calls).toEqual([]);
    expect(r.state.locks.size).toBe(0);
    expect(await r.st()).toEqual(before);
  });

  it('is refused (429 rotation_in_progress) while another run holds the lock; the lock is released after a run', async () => {
    expect(await r.state.acquire('acme', 'someone-else', T0, T0 + LOCK_TTL)).toBe(true);
    await expect(rotateVendorKey(r.deps(), r.target, {})).rejects.toMatchObject({ code: 'throttled', reason: 'rotation_in_progress', detail: { vendor: 'acme' } });
    expect(r.keys.calls).toEqual([]);
    await r.state.release('acme', 'someone-else');
    await rotateVendorKey(r.deps(), r.target, {});
    expect(r.state.locks.size).toBe(0);
  });

  it('the lock lasts lockTtlMs from the start of the run: a crashed run blocks others exactly that long', async () => {
    r.clock.t = T0 + HOUR;
    let crashed!: () => void;
    const hung = new Promise<void>((res) => (crashed = res));
    const keys = Object.assign(Object.create(r.keys) as typeof r.keys, {
      create: async () => {
        crashed();
        return new Promise<never>(() => undefined);
      },
    });
    void rotateVendorKey(r.deps({ keys }), r.target, {});
    await hung;
    r.clock.t = T0 + HOUR + LOCK_TTL;
    await expect(rotateIfDue(r.deps(), r.target)).rejects.toMatchObject({ reason: 'rotation_in_progress' });
    r.clock.t = T0 + HOUR + LOCK_TTL + 1;
    await expect(rotateVendorKey(r.deps(), r.target, {})).resolves.toMatchObject({ outcome: 'rotated' });
  });

  it('a release that fails does not turn a finished rotation into a failure', async () => {
    const state = Object.assign(Object.create(r.state) as typeof r.state, {
      release: async () => {
        throw new Error('network');
      },
    });
    await expect(rotateVendorKey(r.deps({ state }), r.target, {})).resolves.toMatchObject({ outcome: 'rotated', keyId: 'k2' });
  });
});

describe('failures: the current key stays, the failure is recorded, the next run carries on', () => {
  let r: Rig;
  beforeEach(async () => {
    r = await seeded();
    r.clock.t = T0 + 24 * HOUR; // due
  });

  it('the vendor fails to create: lastError names the step, the event carries it, nothing is left pending', async () => {
    r.keys.fail('create', new UpstreamUnavailable('vendor_500'));
    await expect(rotateIfDue(r.deps(), r.target)).rejects.toMatchObject({ reason: 'vendor_500' });
    const st = await r.st();
    expect(st.lastError).toEqual({ at: iso(T0 + 24 * HOUR), step: 'createSecret', reason: 'vendor_500' });
    expect(st.events.at(-1)).toEqual({ at: iso(T0 + 24 * HOUR), type: 'rotation_failed', reason: 'vendor_500', detail: { step: 'createSecret' } });
    expect(r.audit.at(-1)).toEqual({ type: 'vendor_rotation_failed', fields: { vendor: 'acme', type: 'rotation_failed', reason: 'vendor_500', detail: { step: 'createSecret' } } });
    expect((await r.current())!.key.keyId).toBe('k1');
    // The rotation was recorded before the vendor was asked: the next run looks for its key by name.
    expect(st.inflight).toMatchObject({ token: 'tok-2', keyName: 'tvm-acme-tok-2', startedAt: iso(T0 + 24 * HOUR), reason: 'scheduled', by: 'schedule' });
    r.keys.calls.length = 0;
    const next = await rotateIfDue(r.deps(), r.target);
    expect(next).toMatchObject({ outcome: 'rotated', keyId: 'k2', previousKeyId: 'k1' });
    expect(r.keys.calls[0]).toBe('list tvm-acme-tok-2');
    const after = await r.st();
    expect(after.lastError).toBeUndefined();
    expect(after.events.some((e) => e.type === 'rotation_abandoned' && e.reason === 'key_not_created')).toBe(true);
  });

  it('the store refuses the new key: the key is taken back at the vendor at once', async () => {
    const secrets = Object.assign(Object.create(r.secrets) as typeof r.secrets, {
      putValue: async () => {
        throw new SecretStoreError('InternalServiceError');
      },
    });
    await expect(rotateIfDue(r.deps({ secrets }), r.target)).rejects.toMatchObject({ awsName: 'InternalServiceError' });
    expect(r.keys.calls).toEqual(['create tvm-acme-tok-2', 'revoke k2']);
    expect(r.keys.live()).toEqual(['k1']);
    expect((await r.st()).lastError).toMatchObject({ step: 'createSecret', reason: 'secret_store_error' });
  });

  it('…and if taking it back fails too, the store’s error is what is answered (the name finds the key later)', async () => {
    const secrets = Object.assign(Object.create(r.secrets) as typeof r.secrets, {
      putValue: async () => {
        throw new SecretStoreError('InternalServiceError');
      },
    });
    r.keys.fail('revoke', new UpstreamUnavailable('vendor_502'));
    await expect(rotateIfDue(r.deps({ secrets }), r.target)).rejects.toMatchObject({ awsName: 'InternalServiceError' });
    expect(r.keys.live()).toEqual(['k1', 'k2']);
    const next = await rotateIfDue(r.deps(), r.target);
    expect(next).toMatchObject({ outcome: 'rotated', keyId: 'k3', revoked: ['k2'] });
    expect(r.keys.live()).toEqual(['k1', 'k3']);
    expect((await r.st()).events.find((e) => e.type === 'orphan_revoked')).toMatchObject({ keyId: 'k2' });
  });

  it('the vendor rejects the new key on test: it is revoked and unlabelled, the rotation is not left in flight', async () => {
    r.keys.fail('test', new KeyRejected(403));
    const err = await rotateIfDue(r.deps(), r.target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyRejected);
    expect(r.keys.live()).toEqual(['k1']);
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT], 'tok-2': [] });
    const st = await r.st();
    expect(st.inflight).toBeUndefined();
    expect(st.currentKeyId).toBe('k1');
    expect(st.events.find((e) => e.type === 'rotation_rolled_back')).toEqual({ at: iso(T0 + 24 * HOUR), type: 'rotation_rolled_back', keyId: 'k2', reason: 'key_rejected_403' });
    expect(st.lastError).toMatchObject({ step: 'rollback', reason: 'key_rejected_403' });
  });

  it('the vendor fails the test otherwise (5xx): the pending key is kept for the next run, not revoked', async () => {
    r.keys.fail('test', new UpstreamUnavailable('vendor_503'));
    await expect(rotateIfDue(r.deps(), r.target)).rejects.toMatchObject({ reason: 'vendor_503' });
    expect(r.keys.live()).toEqual(['k1', 'k2']);
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT], 'tok-2': [AWSPENDING] });
    expect((await r.st()).lastError).toMatchObject({ step: 'testSecret', reason: 'vendor_503' });
    const next = await rotateIfDue(r.deps(), r.target);
    expect(next).toMatchObject({ outcome: 'resumed', keyId: 'k2', previousKeyId: 'k1' });
  });

  it('a failure of another kind is recorded as "error", never with its message', async () => {
    r.keys.fail('create', new Error('vendor said: your key sk-live-123 is bad'));
    await expect(rotateIfDue(r.deps(), r.target)).rejects.toThrow('sk-live-123');
    const st = await r.st();
    expect(st.lastError).toMatchObject({ reason: 'error' });
    expect(JSON.stringify(st)).not.toContain('sk-live-123');
  });

  it('a run that lost its lock writes nothing more, not even its failure', async () => {
    const state = Object.assign(Object.create(r.state) as typeof r.state, {
      save: async () => {
        throw new LockLost('acme');
      },
    });
    const before = await r.st();
    r.audit.length = 0;
    await expect(rotateIfDue(r.deps({ state }), r.target)).rejects.toBeInstanceOf(LockLost);
    expect(await r.st()).toEqual(before);
    // Not even an audit line saying it failed: the vendor is another run's now.
    expect(r.audit.map((a) => a.type)).not.toContain('vendor_rotation_failed');
  });

  it('a failure whose record cannot be written is still answered as the original failure', async () => {
    let saves = 0;
    const state = Object.assign(Object.create(r.state) as typeof r.state, {
      save: async (...a: Parameters<typeof r.state.save>) => {
        if (++saves > 1) throw new Error('store down');
        return r.state.save(...a);
      },
    });
    r.keys.fail('create', new VendorRefused('create', 400));
    await expect(rotateIfDue(r.deps({ state }), r.target)).rejects.toMatchObject({ reason: 'vendor_refused_create_400' });
  });
});

describe('rotateIfDue (the schedule)', () => {
  let r: Rig;
  beforeEach(async () => {
    r = await seeded();
  });

  it('is not due before nextDueAt, due at it', async () => {
    r.clock.t = T0 + 24 * HOUR - 1;
    expect(await rotateIfDue(r.deps(), r.target)).toEqual({ vendor: 'acme', outcome: 'not_due', keyId: 'k1', previousKeyId: undefined, revoked: [] });
    expect(r.keys.calls).toEqual([]);
    r.clock.t = T0 + 24 * HOUR;
    expect(await rotateIfDue(r.deps(), r.target)).toMatchObject({ outcome: 'rotated', keyId: 'k2', previousKeyId: 'k1' });
  });

  it('rotates when the record has no due time or no current key', async () => {
    const st = await r.st();
    r.state.states.set('acme', { ...st, nextDueAt: undefined });
    expect(await rotateIfDue(r.deps(), r.target)).toMatchObject({ outcome: 'rotated', keyId: 'k2' });
    r.state.states.set('acme', { ...(await r.st()), currentKeyId: undefined });
    // settle first puts the current key back on the record; the due check sees it (not due).
    expect(await rotateIfDue(r.deps(), r.target)).toMatchObject({ outcome: 'not_due', keyId: 'k2' });
  });

  it('revokes retired keys once their overlap has passed, and only then', async () => {
    await rotateVendorKey(r.deps(), r.target, {}); // k1 retiring until T0+15m
    r.clock.t = T0 + 15 * MINUTE - 1;
    expect((await rotateIfDue(r.deps(), r.target)).revoked).toEqual([]);
    r.clock.t = T0 + 15 * MINUTE;
    const out = await rotateIfDue(r.deps(), r.target);
    expect(out).toEqual({ vendor: 'acme', outcome: 'not_due', keyId: 'k2', previousKeyId: undefined, revoked: ['k1'] });
    expect(r.keys.live()).toEqual(['k2']);
    // AWSPREVIOUS leaves the revoked key's version.
    expect(await r.versions()).toEqual({ 'tok-1': [], 'tok-2': [AWSCURRENT] });
    const st = await r.st();
    expect(st.retiring).toEqual([]);
    expect(st.events.at(-1)).toEqual({ at: iso(T0 + 15 * MINUTE), type: 'key_revoked', keyId: 'k1', reason: 'overlap_passed' });
  });

  it('a retired key whose version no longer holds AWSPREVIOUS is revoked without touching the labels', async () => {
    await rotateVendorKey(r.deps(), r.target, {}); // k1 (tok-1) retiring
    await rotateVendorKey(r.deps(), r.target, {}); // k2 (tok-2) retiring, AWSPREVIOUS moved to tok-2
    expect(await r.versions()).toEqual({ 'tok-1': [], 'tok-2': [AWSPREVIOUS], 'tok-3': [AWSCURRENT] });
    r.clock.t = T0 + HOUR;
    const out = await rotateIfDue(r.deps(), r.target);
    expect(out.revoked).toEqual(['k1', 'k2']);
    expect(await r.versions()).toEqual({ 'tok-1': [], 'tok-2': [], 'tok-3': [AWSCURRENT] });
  });

  it('one retired key failing to revoke does not stop the others; the first failure is answered, the rest retried next run', async () => {
    await rotateVendorKey(r.deps(), r.target, {});
    await rotateVendorKey(r.deps(), r.target, {});
    r.clock.t = T0 + HOUR;
    r.keys.fail('revoke', new UpstreamUnavailable('vendor_502'));
    await expect(rotateIfDue(r.deps(), r.target)).rejects.toMatchObject({ reason: 'vendor_502' });
    expect(r.keys.live()).toEqual(['k1', 'k3']);
    const st = await r.st();
    expect(st.retiring.map((x) => x.keyId)).toEqual(['k1']);
    expect(st.lastError).toMatchObject({ step: 'revokePrevious', reason: 'vendor_502' });
    expect((await rotateIfDue(r.deps(), r.target)).revoked).toEqual(['k1']);
    expect(r.keys.live()).toEqual(['k3']);
  });

  it('never revokes the current key, even when it is (wrongly) recorded as retiring: it is taken off the list', async () => {
    const st = await r.st();
    r.state.states.set('acme', { ...st, retiring: [{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0) }] });
    r.clock.t = T0 + HOUR;
    const out = await rotateIfDue(r.deps(), r.target);
    expect(out.revoked).toEqual([]);
    expect(r.keys.live()).toEqual(['k1']);
    expect((await r.st()).retiring).toEqual([]);
  });

  it('does nothing for a vendor that is not configured: no lock, no vendor call, no write', async () => {
    r.configured.value = false;
    r.clock.t = T0 + 48 * HOUR;
    const before = await r.st();
    expect(await rotateIfDue(r.deps(), r.target)).toEqual({ vendor: 'acme', outcome: 'not_configured', revoked: [] });
    expect(r.keys.calls).toEqual([]);
    expect(await r.st()).toEqual(before);
  });
});

describe('runScheduledRotations', () => {
  it('runs every vendor; one failing, busy or without secrets does not stop the others', async () => {
    const a = await seeded({ vendor: { name: 'a' } });
    const b = await seeded({ vendor: { name: 'b' } });
    const c = await seeded({ vendor: { name: 'c' } });
    const d = rig({ vendor: { name: 'd' } });
    for (const x of [a, b, c]) x.clock.t = T0 + 24 * HOUR;
    b.keys.fail('create', new UpstreamUnavailable('vendor_500'));
    await c.state.acquire('c', 'other', T0 + 24 * HOUR, T0 + 25 * HOUR);
    const e = rig({ vendor: { name: 'e' } });
    await e.state.acquire('e', 'other', T0, T0 + HOUR);
    const lockLost = Object.assign(Object.create(e.state) as typeof e.state, {
      acquire: async () => {
        throw new LockLost('e');
      },
    });
    const rigs: Record<string, { rig: Rig; over?: object } | undefined> = { a: { rig: a }, b: { rig: b }, c: { rig: c }, nosecret: undefined, d: { rig: d }, e: { rig: e, over: { state: lockLost } } };
    const vendors = [a.vendor, b.vendor, c.vendor, { ...a.vendor, name: 'nosecret' }, d.vendor, e.vendor];
    const results = await runScheduledRotations(vendors, (v) => {
      const x = rigs[v.name];
      return x && { deps: x.rig.deps(x.over), target: x.rig.target };
    });
    expect(results).toEqual([
      { vendor: 'a', outcome: 'rotated', keyId: 'k2', previousKeyId: 'k1', revoked: [] },
      { vendor: 'b', outcome: 'failed', reason: 'vendor_500' },
      { vendor: 'c', outcome: 'busy', reason: 'rotation_in_progress' },
      { vendor: 'nosecret', outcome: 'failed', reason: 'vendor_secret_not_configured' },
      { vendor: 'd', outcome: 'rotated', keyId: 'k1', previousKeyId: undefined, revoked: [] },
      // Throttled, but not because another rotation holds the lock: a failure.
      { vendor: 'e', outcome: 'failed', reason: 'lock_lost' },
    ]);
  });
});

describe('vendorStatus', () => {
  it('shows key ids, times, the rotation in progress and what is unresolved, never a key', async () => {
    const r = await seeded({ listable: false });
    await rotateVendorKey(r.deps(), r.target, {});
    r.clock.t = T0 + 24 * HOUR + 1;
    r.keys.fail('create', new UpstreamUnavailable('vendor_500'));
    await expect(rotateIfDue(r.deps(), r.target)).rejects.toThrow();
    const status = await vendorStatus(r.deps(), r.vendor);
    const st = await r.st();
    expect(status).toEqual({
      name: 'acme',
      kind: 'http',
      configured: true,
      rotation: { every: '24h', overlap: '15m' },
      currentKeyId: 'k2',
      lastRotatedAt: iso(T0),
      nextDueAt: iso(T0 + 24 * HOUR),
      lastError: { at: iso(T0 + 24 * HOUR + 1), step: 'createSecret', reason: 'vendor_500' },
      rotationInProgress: true,
      retiring: [{ keyId: 'k1', revokeAfter: iso(T0 + 15 * MINUTE) }],
      unresolved: [],
      events: st.events,
    });
    // A vendor that cannot list: the next run cannot look the key up, so it is listed as unresolved.
    await rotateIfDue(r.deps(), r.target);
    expect((await vendorStatus(r.deps(), r.vendor)).unresolved).toEqual([{ keyName: 'tvm-acme-tok-3', startedAt: iso(T0 + 24 * HOUR + 1) }]);
    expect(JSON.stringify(await vendorStatus(r.deps(), r.vendor))).not.toContain('secret-');
  });

  it('a vendor never rotated and not configured', async () => {
    const r = rig();
    r.configured.value = false;
    expect(await vendorStatus(r.deps(), r.vendor)).toEqual({
      name: 'acme',
      kind: 'http',
      configured: false,
      rotation: { every: '24h', overlap: '15m' },
      currentKeyId: undefined,
      lastRotatedAt: undefined,
      nextDueAt: undefined,
      lastError: undefined,
      rotationInProgress: false,
      retiring: [],
      unresolved: [],
      events: [],
    });
  });
});

describe('the record keeps the latest 50 events', () => {
  it('drops the oldest once more than 50 are held', async () => {
    const r = await seeded();
    const st = await r.st();
    const old = Array.from({ length: 50 }, (_, i) => ({ at: iso(T0 - HOUR), type: `old_${i}` }));
    r.state.states.set('acme', { ...st, events: old });
    await rotateVendorKey(r.deps(), r.target, {});
    const events = (await r.st()).events;
    expect(events).toHaveLength(50);
    expect(events.at(-1)).toMatchObject({ type: 'rotated', keyId: 'k2' });
    expect(events[0].type).toBe('old_4'); // 50 old + 4 new: the 4 oldest went
  });
});

describe('emptyVendorState', () => {
  it('is a vendor with nothing recorded', () => {
    expect(emptyVendorState('x')).toEqual({ vendor: 'x', retiring: [], unresolved: [], events: [] });
  });
});

