/**
 * The rotation as Secrets Manager drives it (`runRotationStep`: one step per invocation, retried
 * with the same token) and what a run finds left by an earlier one (`settle`), on in-memory ports.
 * Secrets Manager's contract: each step is idempotent for its token; AWSCURRENT moves only in
 * finishSecret; RotateSecret creates an empty AWSPENDING version before createSecret runs.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { KeyRejected, UpstreamUnavailable } from '../../../functions/core/errors.js';
import { NOT_CONFIGURED, rotateIfDue, rotateVendorKey, runRotationStep } from '../../../functions/core/rotate-vendor-key.js';
import { AWSCURRENT, AWSPENDING, AWSPREVIOUS, type VendorState } from '../../../functions/core/vendor-ports.js';
import { HOUR, MINUTE, rig, type Rig, SECRET_ID, T0 } from './fakes.js';

const iso = (ms: number) => new Date(ms).toISOString();

async function seeded(opts: Parameters<typeof rig>[0] = {}): Promise<Rig> {
  const r = rig(opts);
  await rotateIfDue(r.deps(), r.target); // k1 current under tok-1
  r.keys.calls.length = 0;
  r.audit.length = 0;
  return r;
}

async function patch(r: Rig, over: Partial<VendorState>): Promise<void> {
  r.state.states.set('acme', { ...(await r.st()), ...over });
}

describe('the names Secrets Manager and an operator read', () => {
  it('the staging labels are Secrets Manager’s own (RotateSecret moves exactly these)', () => {
    expect([AWSCURRENT, AWSPENDING, AWSPREVIOUS]).toEqual(['AWSCURRENT', 'AWSPENDING', 'AWSPREVIOUS']);
  });

  it('the value of a secret nobody has set says so to whoever reads it', () => {
    expect(NOT_CONFIGURED).toBe('tvm:not-configured');
  });
});

describe('runRotationStep, configured vendor', () => {
  let r: Rig;
  beforeEach(async () => {
    r = await seeded();
  });

  it('setSecret does nothing at all: no lock, no store, no vendor', async () => {
    const before = await r.st();
    await runRotationStep(r.deps({ configured: async () => Promise.reject(new Error('must not be asked')) }), r.target, 'setSecret', 'tok-x');
    expect(r.keys.calls).toEqual([]);
    expect(r.state.locks.size).toBe(0);
    expect(await r.st()).toEqual(before);
  });

  it('createSecret stores a new key as AWSPENDING under the token, recorded as Secrets Manager’s; a retry changes nothing', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT], 'sm-1': [AWSPENDING] });
    expect(r.keys.calls).toEqual(['create tvm-acme-sm-1']);
    const st = await r.st();
    expect(st.inflight).toEqual({ token: 'sm-1', keyName: 'tvm-acme-sm-1', startedAt: iso(T0), reason: 'secretsmanager', by: 'secretsmanager' });
    expect(st.events.slice(-2).map((e) => [e.type, e.keyId, e.by, e.reason])).toEqual([
      ['rotation_started', undefined, 'secretsmanager', 'secretsmanager'],
      ['key_created', 'k2', undefined, undefined],
    ]);
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    expect(r.keys.calls).toEqual(['create tvm-acme-sm-1']);
    expect((await r.st()).events).toHaveLength(st.events.length);
    expect(r.state.locks.size).toBe(0);
  });

  it('createSecret fills the empty version RotateSecret made', async () => {
    await r.secrets.startRotation(SECRET_ID, 'sm-1');
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT], 'sm-1': [AWSPENDING] });
    expect((await r.secrets.getValue(SECRET_ID, { versionId: 'sm-1' }))!.value).toBe(JSON.stringify({ keyId: 'k2', key: 'secret-k2-tvm-acme-sm-1' }));
  });

  it('createSecret under a token whose version holds something else is refused (Secrets Manager cannot overwrite a version)', async () => {
    await r.secrets.putValue(SECRET_ID, 'sm-1', 'not a key', [AWSPENDING]);
    await expect(runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1')).rejects.toMatchObject({
      name: 'SecretStoreError',
      awsName: 'ResourceExistsException',
      detail: { awsName: 'ResourceExistsException', step: 'createSecret', reason: 'version_holds_other_data' },
    });
    expect(r.keys.calls).toEqual([]);
    expect((await r.st()).lastError).toMatchObject({ step: 'createSecret', reason: 'secret_store_error' });
  });

  it('a createSecret retried after a crash between the vendor’s create and the store takes that key back first', async () => {
    await patch(r, { inflight: { token: 'sm-1', keyName: 'tvm-acme-sm-1', startedAt: iso(T0) } });
    const orphan = r.keys.plant('tvm-acme-sm-1');
    r.keys.plant('tvm-acme-sm-10'); // another rotation's key, whose name only starts the same
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    expect(r.keys.calls).toEqual(['list tvm-acme-sm-1', `revoke ${orphan}`, 'create tvm-acme-sm-1']);
    expect(r.keys.live()).toEqual(['k1', 'k3', 'k4']);
    expect((await r.st()).events.find((e) => e.type === 'orphan_revoked')).toMatchObject({ keyId: orphan });
  });

  it('testSecret tests the pending key at the vendor and records it; a retry tests again (harmless)', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await runRotationStep(r.deps(), r.target, 'testSecret', 'sm-1');
    expect(r.keys.calls).toEqual(['create tvm-acme-sm-1', 'test k2']);
    const st = await r.st();
    expect(st.inflight?.testedKeyId).toBe('k2');
    expect(st.events.at(-1)).toMatchObject({ type: 'key_tested', keyId: 'k2' });
  });

  it('testSecret on an unknown token, or on an empty version, fails without calling the vendor', async () => {
    await expect(runRotationStep(r.deps(), r.target, 'testSecret', 'nope')).rejects.toMatchObject({ awsName: 'ResourceNotFoundException', detail: { step: 'testSecret', reason: 'no_such_version' } });
    await r.secrets.startRotation(SECRET_ID, 'sm-1');
    await expect(runRotationStep(r.deps(), r.target, 'testSecret', 'sm-1')).rejects.toMatchObject({ awsName: 'ResourceNotFoundException', detail: { step: 'testSecret', reason: 'pending_version_empty' } });
    expect(r.keys.calls).toEqual([]);
    expect((await r.versions())['sm-1']).toEqual([AWSPENDING]);
  });

  it('testSecret of the version already current passes without asking the vendor', async () => {
    await runRotationStep(r.deps(), r.target, 'testSecret', 'tok-1');
    expect(r.keys.calls).toEqual([]);
  });

  it('finishSecret makes the tested key current, retires the old one, and is idempotent', async () => {
    for (const step of ['createSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(r.deps(), r.target, step, 'sm-1');
    // The key testSecret recorded as tested is not tested again.
    expect(r.keys.calls).toEqual(['create tvm-acme-sm-1', 'test k2']);
    expect(await r.versions()).toEqual({ 'tok-1': [AWSPREVIOUS], 'sm-1': [AWSCURRENT] });
    const st = await r.st();
    expect(st).toMatchObject({ currentKeyId: 'k2', retiring: [{ keyId: 'k1', versionId: 'tok-1', revokeAfter: iso(T0 + 15 * MINUTE) }] });
    expect(st.inflight).toBeUndefined();
    const events = st.events.length;
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect(await r.versions()).toEqual({ 'tok-1': [AWSPREVIOUS], 'sm-1': [AWSCURRENT] });
    expect((await r.st()).events).toHaveLength(events + 0);
    expect((await r.st()).retiring).toHaveLength(1);
  });

  it('finishSecret also revokes retired keys whose overlap has passed', async () => {
    await rotateVendorKey(r.deps(), r.target, {}); // k1 retiring until T0+15m
    r.clock.t = T0 + HOUR;
    for (const step of ['createSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(r.deps(), r.target, step, 'sm-1');
    expect(r.keys.live()).toEqual(['k2', 'k3']);
  });

  it('finishSecret on a key nobody tested tests it first; a rejected key never becomes current', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    r.keys.fail('test', new KeyRejected(401));
    await expect(runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1')).rejects.toBeInstanceOf(KeyRejected);
    expect((await r.current())!.key.keyId).toBe('k1');
    expect(r.keys.live()).toEqual(['k1']);
    expect((await r.versions())['sm-1']).toEqual([]);
  });

  it('finishSecret tests an untested key once, then moves it', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect(r.keys.calls).toEqual(['create tvm-acme-sm-1', 'test k2']);
    expect((await r.current())!.key.keyId).toBe('k2');
  });

  it('a key recorded as tested under another token is tested again before it becomes current', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await runRotationStep(r.deps(), r.target, 'testSecret', 'sm-1');
    await patch(r, { inflight: { ...(await r.st()).inflight!, token: 'sm-other' } });
    r.keys.calls.length = 0;
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect(r.keys.calls[0]).toBe('test k2');
  });

  it('a recorded test of another key id does not count for this one', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await patch(r, { inflight: { ...(await r.st()).inflight!, testedKeyId: 'k1' } });
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect(r.keys.calls).toEqual(['create tvm-acme-sm-1', 'test k2']);
  });

  it('finishSecret on an unknown token or an empty version fails and AWSCURRENT stays', async () => {
    await expect(runRotationStep(r.deps(), r.target, 'finishSecret', 'nope')).rejects.toMatchObject({ detail: { step: 'finishSecret', reason: 'no_such_version' } });
    await r.secrets.startRotation(SECRET_ID, 'sm-1');
    await expect(runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1')).rejects.toMatchObject({ detail: { step: 'finishSecret', reason: 'pending_version_empty' } });
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT], 'sm-1': [AWSPENDING] });
  });

  it('an incident rotation recorded with the rotation keeps its zero overlap when another run finishes it', async () => {
    // rotate now with revokePrevious, crashed after the key was tested: the schedule finishes it.
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await patch(r, { inflight: { ...(await r.st()).inflight!, revokePrevious: true } });
    r.clock.t = T0 + MINUTE;
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect((await r.st()).retiring).toEqual([]);
    expect(r.keys.live()).toEqual(['k2']);
  });
});

describe('runRotationStep, a vendor whose management credential is not set', () => {
  let r: Rig;
  beforeEach(async () => {
    r = await seeded();
    r.configured.value = false;
  });

  it('the empty version passes every step with no key made, and finishSecret takes AWSPENDING off it', async () => {
    await r.secrets.startRotation(SECRET_ID, 'sm-1');
    for (const step of ['createSecret', 'setSecret', 'testSecret'] as const) await runRotationStep(r.deps(), r.target, step, 'sm-1');
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT], 'sm-1': [AWSPENDING] });
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT], 'sm-1': [] });
    expect(r.keys.calls).toEqual([]);
    expect(r.state.locks.size).toBe(0);
    expect(r.audit).toEqual(['createSecret', 'testSecret', 'finishSecret'].map((step) => ({ type: 'vendor_not_configured', fields: { vendor: 'acme', step } })));
    // A retried finishSecret: nothing left to take off.
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT], 'sm-1': [] });
  });

  it('a version that holds a key (stored while the vendor was configured) is finished as usual', async () => {
    r.configured.value = true;
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    r.configured.value = false;
    await runRotationStep(r.deps(), r.target, 'testSecret', 'sm-1');
    await runRotationStep(r.deps(), r.target, 'finishSecret', 'sm-1');
    expect((await r.current())!.key.keyId).toBe('k2');
  });

  it('an unknown token is not silently accepted', async () => {
    await expect(runRotationStep(r.deps(), r.target, 'finishSecret', 'nope')).rejects.toMatchObject({ detail: { reason: 'no_such_version' } });
  });

  it('a placeholder value under the token is not a key: nothing is done with it', async () => {
    await r.secrets.putValue(SECRET_ID, 'sm-1', NOT_CONFIGURED, [AWSPENDING]);
    await runRotationStep(r.deps(), r.target, 'testSecret', 'sm-1');
    expect(r.keys.calls).toEqual([]);
  });
});

describe('settle: what a run finds left by an earlier one', () => {
  let r: Rig;
  beforeEach(async () => {
    r = await seeded();
  });

  it('a pending key (a crash after createSecret): tested, made current; the run answers resumed', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    r.keys.calls.length = 0;
    const out = await rotateIfDue(r.deps(), r.target);
    expect(out).toEqual({ vendor: 'acme', outcome: 'resumed', keyId: 'k2', previousKeyId: 'k1', revoked: [] });
    expect(r.keys.calls).toEqual(['test k2']);
    const st = await r.st();
    expect(st.events.find((e) => e.type === 'rotation_resumed')).toMatchObject({ reason: 'pending_key_found' });
  });

  it('rotate now finishes it too, instead of starting another rotation', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    const out = await rotateVendorKey(r.deps(), r.target, { reason: 'x' });
    expect(out).toMatchObject({ outcome: 'resumed', keyId: 'k2', previousKeyId: 'k1' });
    expect(r.keys.live()).toEqual(['k1', 'k2']);
  });

  it('an empty pending version (RotateSecret whose steps never ran) is filled under its own token, tested and made current', async () => {
    await r.secrets.startRotation(SECRET_ID, 'sm-1');
    const out = await rotateIfDue(r.deps(), r.target);
    expect(out).toMatchObject({ outcome: 'resumed', keyId: 'k2', previousKeyId: 'k1' });
    expect(await r.versions()).toEqual({ 'tok-1': [AWSPREVIOUS], 'sm-1': [AWSCURRENT] });
    expect(r.keys.calls).toEqual(['create tvm-acme-sm-1', 'test k2']);
    const st = await r.st();
    expect(st.events.find((e) => e.type === 'rotation_resumed')).toMatchObject({ reason: 'pending_version_empty' });
    expect(st.events.find((e) => e.type === 'rotation_started' && e.at === iso(T0) && e.by === 'schedule' && e.reason === 'resumed')).toBeDefined();
  });

  it('a pending key the vendor rejects is rolled back and the run fails; the current key stays', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    r.keys.fail('test', new KeyRejected(401));
    await expect(rotateIfDue(r.deps(), r.target)).rejects.toBeInstanceOf(KeyRejected);
    expect((await r.current())!.key.keyId).toBe('k1');
    expect((await r.st()).lastError).toMatchObject({ step: 'rollback' });
    expect(r.keys.live()).toEqual(['k1']);
  });

  it('AWSPENDING left on the current version is taken off', async () => {
    await r.secrets.updateStage(SECRET_ID, AWSPENDING, 'tok-1', undefined);
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT, AWSPENDING] });
    await rotateIfDue(r.deps(), r.target);
    expect(await r.versions()).toEqual({ 'tok-1': [AWSCURRENT] });
    expect(r.keys.calls).toEqual([]);
  });

  it('a finished move the record missed (a crash after AWSCURRENT moved): recorded, the old key retiring', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await r.secrets.updateStage(SECRET_ID, AWSCURRENT, 'sm-1', 'tok-1');
    await r.secrets.updateStage(SECRET_ID, AWSPENDING, undefined, 'sm-1');
    r.clock.t = T0 + MINUTE;
    const out = await rotateIfDue(r.deps(), r.target);
    expect(out).toMatchObject({ outcome: 'resumed', keyId: 'k2', previousKeyId: 'k1' });
    const st = await r.st();
    expect(st).toMatchObject({ currentKeyId: 'k2', lastRotatedAt: iso(T0 + MINUTE), nextDueAt: iso(T0 + MINUTE + 24 * HOUR) });
    expect(st.inflight).toBeUndefined();
    expect(st.events.at(-1)).toMatchObject({ type: 'rotated', keyId: 'k2', detail: { previousKeyId: 'k1' } });
  });

  it('a rotation whose version lost its labels (rolled back) is no longer in flight', async () => {
    await runRotationStep(r.deps(), r.target, 'createSecret', 'sm-1');
    await r.secrets.updateStage(SECRET_ID, AWSPENDING, undefined, 'sm-1');
    const out = await rotateIfDue(r.deps(), r.target);
    expect(out.outcome).toBe('not_due');
    expect((await r.st()).inflight).toBeUndefined();
  });

  it('a rotation with no version (a crash before the key was stored), vendor can list: its key is found by name and revoked', async () => {
    r.keys.fail('create'); // the first rotation fails at the vendor…
    r.clock.t = T0 + 24 * HOUR;
    await expect(rotateIfDue(r.deps(), r.target)).rejects.toThrow();
    const orphan = r.keys.plant('tvm-acme-tok-2'); // …after it made the key
    r.keys.calls.length = 0;
    const out = await rotateIfDue(r.deps(), r.target);
    expect(r.keys.calls.slice(0, 2)).toEqual(['list tvm-acme-tok-2', `revoke ${orphan}`]);
    expect(out).toMatchObject({ outcome: 'rotated', revoked: [orphan] });
    const st = await r.st();
    expect(st.events.some((e) => e.type === 'rotation_abandoned')).toBe(false);
    expect(st.events.find((e) => e.type === 'orphan_revoked')).toMatchObject({ keyId: orphan });
  });

  it('…vendor can list and holds nothing by that name: the rotation is recorded as abandoned', async () => {
    await patch(r, { inflight: { token: 'gone', keyName: 'tvm-acme-gone', startedAt: iso(T0) } });
    await rotateIfDue(r.deps(), r.target);
    const st = await r.st();
    expect(st.inflight).toBeUndefined();
    expect(st.events.at(-1)).toMatchObject({ type: 'rotation_abandoned', reason: 'key_not_created' });
    expect(st.unresolved).toEqual([]);
  });

  it('…vendor cannot list: the rotation is recorded as unresolved (once), for an operator to check', async () => {
    const q = await seeded({ listable: false });
    const lost = { token: 'gone', keyName: 'tvm-acme-gone', startedAt: iso(T0) };
    await patch(q, { inflight: lost });
    await rotateIfDue(q.deps(), q.target);
    let st = await q.st();
    expect(st.inflight).toBeUndefined();
    expect(st.unresolved).toEqual([lost]);
    expect(st.events.at(-1)).toMatchObject({ type: 'orphan_check_unavailable', reason: 'tvm-acme-gone' });
    await patch(q, { inflight: lost });
    await rotateIfDue(q.deps(), q.target);
    st = await q.st();
    expect(st.unresolved).toEqual([lost]);
  });

  it('a record whose current key id is stale is corrected from AWSCURRENT', async () => {
    await patch(r, { currentKeyId: 'k0' });
    await rotateIfDue(r.deps(), r.target);
    expect((await r.st()).currentKeyId).toBe('k1');
  });

  it('a failure while revoking an orphan is recorded under the cleanup step', async () => {
    await patch(r, { inflight: { token: 'gone', keyName: 'tvm-acme-gone', startedAt: iso(T0) } });
    r.keys.plant('tvm-acme-gone');
    r.keys.fail('revoke', new UpstreamUnavailable('vendor_503'));
    await expect(rotateIfDue(r.deps(), r.target)).rejects.toMatchObject({ reason: 'vendor_503' });
    expect((await r.st()).lastError).toMatchObject({ step: 'cleanup', reason: 'vendor_503' });
  });
});
