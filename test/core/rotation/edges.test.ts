/**
 * Rotation edge cases the use-case tests do not reach: stale or missing records, a store that
 * fails once mid-step, Secrets Manager moving AWSCURRENT back, and retirement's own guards
 * (`revokeRetired`, which the use cases call after settling).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { KeyRejected, SecretStoreError, Throttled, UpstreamUnavailable } from '../../../functions/core/errors.js';
import { NOT_CONFIGURED, rotateIfDue, rotateVendorKey, runRotationStep, runScheduledRotations } from '../../../functions/core/rotate-vendor-key.js';
import { revokeRetired } from '../../../functions/core/rotation/retirement.js';
import { Run } from '../../../functions/core/rotation/run.js';
import { AWSCURRENT, AWSPENDING, AWSPREVIOUS, type SecretStore, type VendorState } from '../../../functions/core/vendor-ports.js';
import { HOUR, MINUTE, rig, type Rig, SECRET_ID, T0 } from './fakes.js';

const iso = (ms: number) => new Date(ms).toISOString();

async function seeded(opts: Parameters<typeof rig>[0] = {}): Promise<Rig> {
  const r = rig(opts);
  await rotateIfDue(r.deps(), r.target);
  r.keys.calls.length = 0;
  return r;
}

async function patch(r: Rig, over: Partial<VendorState>): Promise<void> {
  r.state.states.set('acme', { ...(await r.st()), ...over });
}

/** The rig's secret store, with `method` failing the first time `when` holds for its arguments. */
function failingOnce(r: Rig, method: 'versions' | 'updateStage' | 'putValue', when: (...a: unknown[]) => boolean = () => true): SecretStore {
  let failed = false;
  return Object.assign(Object.create(r.secrets) as SecretStore, {
    [method]: async (...a: unknown[]) => {
      if (!failed && when(...a)) {
        failed = true;
        throw new SecretStoreError('InternalServiceError');
      }
      return (r.secrets[method] as (...x: unknown[]) => Promise<unknown>).apply(r.secrets, a);
    },
  });
}

describe('the step a failure is recorded under', () => {
  let r: Rig;
  beforeEach(async () => {
    r = await seeded();
  });

  it('settle: the store failing before anything else', async () => {
    await expect(rotateIfDue(r.deps({ secrets: failingOnce(r, 'versions') }), r.target)).rejects.toMatchObject({ awsName: 'InternalServiceError' });
    expect((await r.st()).lastError).toEqual({ at: iso(T0), step: 'settle', reason: 'secret_store_error' });
  });

  it('start: the very first write failing (once) in an incident', async () => {
    await rotateVendorKey(r.deps(), r.target, {}); // k1 retiring: the incident brings it forward first
    let saves = 0;
    const state = Object.assign(Object.create(r.state) as typeof r.state, {
      save: async (...a: Parameters<typeof r.state.save>) => {
        if (saves++ === 0) throw new Error('store blip');
        return r.state.save(...a);
      },
    });
    await expect(rotateVendorKey(r.deps({ state }), r.target, { revokePrevious: true })).rejects.toThrow('store blip');
    expect((await r.st()).lastError).toEqual({ at: iso(T0), step: 'start', reason: 'error' });
  });

  it('finishSecret: moving AWSCURRENT fails after the key was tested in the same step', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    const secrets = failingOnce(r, 'updateStage', (_id, stage) => stage === AWSCURRENT);
    await expect(runRotationStep(r.deps({ secrets }), r.target, 'finishSecret', 'sm-1')).rejects.toMatchObject({ awsName: 'InternalServiceError' });
    const st = await r.st();
    expect(st.lastError).toMatchObject({ step: 'finishSecret' });
    expect(st.retiring).toEqual([{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 + 15 * MINUTE) }]);
    // The retry finds k1 already recorded as retiring: it is not recorded twice, and keeps its time.
    r.clock.t = T0 + MINUTE;
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect((await r.current())!.key.keyId).toBe('k2');
    expect((await r.st()).retiring).toEqual([{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 + 15 * MINUTE) }]);
    r.clock.t = T0 + HOUR;
    expect((await rotateIfDue(r.deps(), r.target)).revoked).toEqual(['k1']);
  });

  it('finishSecret: an unknown token', async () => {
    await expect(runRotationStep(r.deps(), r.target, 'finishSecret', 'nope')).rejects.toThrow();
    expect((await r.st()).lastError).toMatchObject({ step: 'finishSecret', reason: 'secret_store_error' });
  });
});

describe('records that do not match the store', () => {
  let r: Rig;
  beforeEach(async () => {
    r = await seeded();
  });

  it('a pending key with no record of its rotation (the record was lost) is still tested and finished', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await patch(r, { inflight: undefined });
    expect(await rotateIfDue(r.deps(), r.target)).toMatchObject({ outcome: 'resumed', keyId: 'k2', previousKeyId: 'k1' });
    expect(r.keys.calls).toEqual(['create tvm-acme-sm-1', 'test k2']);
    expect((await r.st()).retiring).toEqual([{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 + 15 * MINUTE) }]);
  });

  it('a record of another rotation is left for its own cleanup: not cleared by this token’s test, rollback or finish', async () => {
    const other = { token: 'other', keyName: 'tvm-acme-other', startedAt: iso(T0), revokePrevious: true, testedKeyId: 'k2' };
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await patch(r, { inflight: other });
    await runRotationStep(r.deps(), r.target, 'testSecret', 'sm-1');
    expect((await r.st()).inflight).toEqual(other);
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    const st = await r.st();
    expect(st.inflight).toEqual(other);
    // Not an incident: the other record's revokePrevious does not apply to this rotation.
    expect(st.retiring).toEqual([{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 + 15 * MINUTE) }]);

    // A rejected key rolled back under another token leaves the other record too.
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-2');
    await patch(r, { inflight: other });
    r.keys.fail('test', new KeyRejected(401));
    await expect(runRotationStep(r.deps(), r.target, 'testSecret', 'sm-2')).rejects.toThrow();
    expect((await r.st()).inflight).toEqual(other);
  });

  it('a recorded test under the same token but for another key does not let an untested key through', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await patch(r, { inflight: { ...(await r.st()).inflight!, testedKeyId: 'someone-else' } });
    r.keys.calls.length = 0;
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect(r.keys.calls).toEqual(['test k2']);
  });

  it('a finishSecret retried on the version already current asks nothing of the vendor and records nothing new', async () => {
    for (const step of ['createSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(r.deps(), r.target, step, 'sm-1');
    const before = await r.st();
    r.keys.calls.length = 0;
    r.clock.t = T0 + MINUTE;
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect(r.keys.calls).toEqual([]);
    expect(await r.st()).toEqual(before);
  });

  it('a record with no rotation time gets one when its current key is finished again', async () => {
    await patch(r, { lastRotatedAt: undefined });
    await r.secrets.updateStage(SECRET_ID, AWSPENDING, 'tok-1', undefined);
    r.clock.t = T0 + MINUTE;
    await rotateIfDue(r.deps(), r.target);
    const st = await r.st();
    expect(st.lastRotatedAt).toBe(iso(T0 + MINUTE));
    expect(st.nextDueAt).toBe(iso(T0 + MINUTE + 24 * HOUR));
  });

  it('AWSPENDING on the current version: taken off, nothing rotated, nothing recorded as resumed or rotated', async () => {
    await r.secrets.updateStage(SECRET_ID, AWSPENDING, 'tok-1', undefined);
    const before = await r.st();
    r.clock.t = T0 + MINUTE;
    await rotateIfDue(r.deps(), r.target);
    const st = await r.st();
    expect(st.events).toEqual(before.events);
    expect(st.lastRotatedAt).toBe(before.lastRotatedAt);
  });

  it('the current key recorded as retiring (an interrupted move) is taken off the list before it can retire again with a fresh overlap', async () => {
    await patch(r, { retiring: [{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 - HOUR) }] });
    r.clock.t = T0 + HOUR;
    await rotateVendorKey(r.deps(), r.target, {});
    expect((await r.st()).retiring).toEqual([{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 + HOUR + 15 * MINUTE) }]);
  });

  it('a current version holding no key (the placeholder a new secret starts with) is not finished', async () => {
    const q = rig();
    await q.secrets.putValue(SECRET_ID, 'seed', NOT_CONFIGURED, [AWSCURRENT]);
    await expect(runRotationStep(q.deps(), q.target, 'finishSecret', 'seed')).rejects.toMatchObject({
      awsName: 'ResourceNotFoundException',
      detail: { step: 'finishSecret', reason: 'current_version_empty' },
    });
  });

  it('AWSCURRENT moved (by hand) onto the empty version RotateSecret made: finishSecret says the current version is empty', async () => {
    await r.secrets.startRotation(SECRET_ID, 'sm-1');
    await r.secrets.updateStage(SECRET_ID, AWSCURRENT, 'sm-1', 'tok-1');
    await expect(runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1')).rejects.toMatchObject({
      awsName: 'ResourceNotFoundException',
      detail: { step: 'finishSecret', reason: 'current_version_empty' },
    });
  });

  it('Secrets Manager moving AWSCURRENT back to the previous version: that key is current again and no longer retiring', async () => {
    await rotateVendorKey(r.deps(), r.target, {}); // k2 current, k1 (tok-1) retiring
    r.clock.t = T0 + MINUTE;
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'tok-1');
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT], 'tok-2': [AWSPREVIOUS] });
    const st = await r.st();
    expect(st.currentKeyId).toBe('k1');
    expect(st.retiring).toEqual([{ keyId: 'k2', versionId: 'tok-2', revokeAfter: iso(T0 + 16 * MINUTE) }]);
    r.clock.t = T0 + HOUR;
    expect((await rotateIfDue(r.deps(), r.target)).revoked).toEqual(['k2']);
    expect(r.keys.live()).toEqual(['k1']);
  });
});

describe('incidents', () => {
  let r: Rig;
  beforeEach(async () => {
    r = await seeded();
  });

  it('the incident is recorded with the rotation: a rerun that finishes it still skips the overlap', async () => {
    r.keys.fail('test', new UpstreamUnavailable('vendor_503'));
    await expect(rotateVendorKey(r.deps(), r.target, { revokePrevious: true, reason: 'leak' })).rejects.toThrow();
    expect((await r.st()).inflight).toMatchObject({ token: 'tok-2', revokePrevious: true, reason: 'leak' });
    r.clock.t = T0 + MINUTE;
    const out = await rotateIfDue(r.deps(), r.target);
    expect(out).toMatchObject({ outcome: 'resumed', keyId: 'k2', revoked: ['k1'] });
    expect(r.keys.live()).toEqual(['k2']);
  });

  it('only an incident brings retiring keys forward: a plain rotate-now leaves their overlap alone', async () => {
    await rotateVendorKey(r.deps(), r.target, {}); // k1 retiring until T0+15m
    r.clock.t = T0 + 5 * MINUTE;
    await rotateVendorKey(r.deps(), r.target, {});
    expect((await r.st()).retiring).toEqual([
      { keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 + 15 * MINUTE) },
      { keyId: 'k2', versionId: 'tok-2', revokeAfter: iso(T0 + 20 * MINUTE) },
    ]);
  });

  it('an incident brings forward only the keys still waiting; one already due keeps its time', async () => {
    await patch(r, {
      retiring: [
        { keyId: 'k0', versionId: 'v0', revokeAfter: iso(T0 - HOUR) },
        { keyId: 'kw', versionId: 'vw', revokeAfter: iso(T0 + HOUR) },
      ],
    });
    r.keys.fail('create');
    await expect(rotateVendorKey(r.deps(), r.target, { revokePrevious: true })).rejects.toThrow();
    expect((await r.st()).retiring).toEqual([
      { keyId: 'k0', versionId: 'v0', revokeAfter: iso(T0 - HOUR) },
      { keyId: 'kw', versionId: 'vw', revokeAfter: iso(T0) },
    ]);
  });
});

describe('revokeRetired', () => {
  it('never revokes the current key: it is dropped from the list instead', async () => {
    const r = await seeded();
    const st = await r.st();
    const run = new Run(r.deps(), r.target, { ...st, retiring: [{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 - HOUR) }] });
    expect(await r.state.acquire('acme', run.deps.owner, T0, T0 + HOUR)).toBe(true);
    await revokeRetired(run, true);
    expect(r.keys.calls).toEqual([]);
    expect(run.st.retiring).toEqual([]);
    expect((await r.st()).retiring).toEqual([]);
    expect(run.revoked).toEqual([]);
  });

  it('a retired key whose version is gone from the store (pruned) is still revoked', async () => {
    const r = await seeded();
    const old = r.keys.plant('tvm-acme-old');
    const st = await r.st();
    const run = new Run(r.deps(), r.target, { ...st, retiring: [{ keyId: old, versionId: 'pruned', revokeAfter: iso(T0 - HOUR) }] });
    await r.state.acquire('acme', run.deps.owner, T0, T0 + HOUR);
    await revokeRetired(run, false);
    expect(run.revoked).toEqual([old]);
    expect(r.keys.live()).toEqual(['k1']);
  });
});

describe('runScheduledRotations: busy means another rotation holds the lock, nothing else', () => {
  it('a throttled store is a failure', async () => {
    const r = await seeded();
    r.clock.t = T0 + 25 * HOUR;
    const secrets = Object.assign(Object.create(r.secrets) as SecretStore, {
      versions: async () => {
        throw new Throttled('secrets_throttled');
      },
    });
    expect(await runScheduledRotations([r.vendor], () => ({ deps: r.deps({ secrets }), target: r.target }))).toEqual([{ vendor: 'acme', outcome: 'failed', reason: 'secrets_throttled' }]);
  });
});

describe('survivors of the mutation run, pinned', () => {
  it('a first rotation over the placeholder a new key secret starts with: nothing to retire', async () => {
    const r = rig();
    await r.secrets.putValue(SECRET_ID, 'seed', NOT_CONFIGURED, [AWSCURRENT]);
    expect(await rotateIfDue(r.deps(), r.target)).toMatchObject({ outcome: 'rotated', keyId: 'k1', previousKeyId: undefined });
    expect(await r.versions()).toEqual({ seed: [AWSPREVIOUS], 'tok-1': [AWSCURRENT] });
    expect((await r.st()).retiring).toEqual([]);
  });

  it('retirement with the placeholder current revokes what is due', async () => {
    const r = rig();
    await r.secrets.putValue(SECRET_ID, 'seed', NOT_CONFIGURED, [AWSCURRENT]);
    const old = r.keys.plant('tvm-acme-old');
    const run = new Run(r.deps(), r.target, { vendor: 'acme', retiring: [{ keyId: old, versionId: 'v0', revokeAfter: iso(T0 - HOUR) }], unresolved: [], events: [] });
    await r.state.acquire('acme', run.deps.owner, T0, T0 + HOUR);
    await revokeRetired(run, false);
    expect(run.revoked).toEqual([old]);
  });

  it('dropping the current key from the retiring list keeps the others', async () => {
    const r = await seeded();
    const st = await r.st();
    const later = { keyId: 'k9', versionId: 'v9', revokeAfter: iso(T0 + HOUR) };
    const run = new Run(r.deps(), r.target, { ...st, retiring: [{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 - HOUR) }, later] });
    await r.state.acquire('acme', run.deps.owner, T0, T0 + HOUR);
    await revokeRetired(run, false);
    expect(run.st.retiring).toEqual([later]);
    await r.state.release('acme', run.deps.owner);
    // settle does the same before any rotation
    await patch(r, { retiring: [{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 - HOUR) }, later] });
    await rotateIfDue(r.deps(), r.target);
    expect((await r.st()).retiring).toEqual([later]);
  });

  it('two lost rotations at a vendor that cannot list are both kept as unresolved', async () => {
    const q = await seeded({ listable: false });
    const a = { token: 'a', keyName: 'tvm-acme-a', startedAt: iso(T0) };
    const b = { token: 'b', keyName: 'tvm-acme-b', startedAt: iso(T0) };
    await patch(q, { inflight: a });
    await rotateIfDue(q.deps(), q.target);
    await patch(q, { inflight: b });
    await rotateIfDue(q.deps(), q.target);
    expect((await q.st()).unresolved).toEqual([a, b]);
  });

  it('a pending key with no record of its rotation that the vendor rejects is rolled back', async () => {
    const r = await seeded();
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await patch(r, { inflight: undefined });
    r.keys.fail('test', new KeyRejected(401));
    await expect(rotateIfDue(r.deps(), r.target)).rejects.toBeInstanceOf(KeyRejected);
    expect((await r.versions())['sm-1']).toEqual([]);
  });

  it('finishing the version already current clears a recorded failure', async () => {
    const r = await seeded();
    await patch(r, { lastError: { at: iso(T0), step: 'createSecret', reason: 'vendor_500' } });
    await r.secrets.updateStage(SECRET_ID, AWSPENDING, 'tok-1', undefined);
    await rotateIfDue(r.deps(), r.target);
    expect((await r.st()).lastError).toBeUndefined();
  });

  it('finishSecret’s refusals name Secrets Manager’s exception', async () => {
    const r = await seeded();
    await expect(runRotationStep(r.deps(), r.target, 'finishSecret', 'nope')).rejects.toMatchObject({ awsName: 'ResourceNotFoundException' });
    await r.secrets.startRotation(SECRET_ID, 'sm-1');
    await expect(runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1')).rejects.toMatchObject({ awsName: 'ResourceNotFoundException', detail: { reason: 'pending_version_empty' } });
  });
});
