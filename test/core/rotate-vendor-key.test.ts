/**
 * Rotation against the Datadog fake (loopback) with the embedded secret store and the real
 * DynamoVendorStateStore (on dynalite): happy path, Secrets Manager-driven rotations, a crash at
 * every write then a rerun, vendor 5xx on each call, two rotations at once.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { DatadogVendorKeys } from '../../functions/adapters/datadog-vendor.js';
import { fetchVendorHttp } from '../../functions/adapters/http-vendor.js';
import { LocalSecretStore } from '../../functions/adapters/local-secret-store.js';
import {
  isConfiguredValue,
  NOT_CONFIGURED,
  parseVendorKey,
  rotateIfDue,
  rotateVendorKey,
  runRotationStep,
  vendorStatus,
  type RotateDeps,
  type RotateTarget,
} from '../../functions/core/rotate-vendor-key.js';
import type { VendorConfig } from '../../functions/core/vendor-config.js';
import { AWSCURRENT, AWSPENDING, AWSPREVIOUS } from '../../functions/core/vendor-ports.js';
import { DatadogFake } from '../../local/vendor-fakes/datadog.js';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoVendorStateStore } from '../../functions/adapters/dynamodb-vendor-state.js';
import { ensureTable, startDynalite, type EmbeddedDynamo } from '../../local/dynamo.js';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const LOCK_TTL = 60_000;
const KEY_ID = 'tvm/vendors/datadog/key';
const MGMT_ID = 'tvm/vendors/datadog/management';

let fake: DatadogFake;
let dynamo: EmbeddedDynamo;
let raw: DynamoDBClient;
let ddb: DynamoDBDocumentClient;
let tables = 0;
beforeAll(async () => {
  fake = new DatadogFake('datadog');
  await fake.start();
  dynamo = await startDynalite({});
  raw = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
  ddb = DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
});
afterAll(async () => {
  await fake.close();
  raw?.destroy();
  await dynamo?.close();
});

interface World {
  vendor: VendorConfig;
  target: RotateTarget;
  secrets: LocalSecretStore;
  state: DynamoVendorStateStore;
  clock: { t: number; now(): number };
  audit: string[];
  deps(overrides?: Partial<RotateDeps>): RotateDeps;
}

async function world(): Promise<World> {
  fake.keys.clear();
  fake.revoked = [];
  fake.faults = [];
  const vendor: VendorConfig = {
    name: 'datadog',
    kind: 'datadog',
    baseUrl: fake.url,
    rotation: { every: '24h', overlap: '15m' },
    broker: { allow: ['GET /api/v1/validate'], timeoutSeconds: 5, keyCacheSeconds: 30 },
  };
  const secrets = new LocalSecretStore();
  await secrets.putValue('tvm/vendors/datadog/management', randomUUID(), fake.managementSecret(), [AWSCURRENT]);
  const table = `rotation-${++tables}`;
  await ensureTable(raw, table);
  const state = new DynamoVendorStateStore(ddb, table);
  const clock = { t: T0, now: () => clock.t };
  const audit: string[] = [];
  const keys = new DatadogVendorKeys(vendor, async () => (await secrets.getValue('tvm/vendors/datadog/management', { stage: AWSCURRENT }))!.value, fetchVendorHttp());
  const w: World = {
    vendor,
    target: { vendor, secretId: KEY_ID },
    secrets,
    state,
    clock,
    audit,
    deps: (o = {}) => ({
      secrets,
      keys,
      state,
      clock,
      audit: { event: (type, fields) => void audit.push(JSON.stringify({ type, ...fields })) },
      newToken: randomUUID,
      owner: randomUUID(),
      lockTtlMs: LOCK_TTL,
      configured: async () => isConfiguredValue((await secrets.getValue(MGMT_ID, { stage: AWSCURRENT }))?.value),
      ...o,
    }),
  };
  // The first key (the local stack's seeding does the same).
  await rotateIfDue(w.deps(), w.target);
  return w;
}

async function labels(w: World): Promise<Record<string, string[]>> {
  return w.secrets.versions(KEY_ID);
}

async function current(w: World) {
  return parseVendorKey((await w.secrets.getValue(KEY_ID, { stage: AWSCURRENT }))?.value)!;
}

/** The invariants after any run: one AWSCURRENT, no AWSPENDING, every key at the vendor recorded, the current key works. */
async function expectConsistent(w: World, exact = true): Promise<void> {
  const versions = await labels(w);
  const stages = Object.values(versions).flat();
  expect(stages.filter((s) => s === AWSCURRENT)).toHaveLength(1);
  expect(stages).not.toContain(AWSPENDING);
  const cur = await current(w);
  const st = (await w.state.get('datadog'))!;
  expect(st.currentKeyId).toBe(cur.keyId);
  expect(st.inflight).toBeUndefined();
  const live = fake.liveKeys().map((k) => k.id).sort();
  const recorded = [cur.keyId, ...st.retiring.map((r) => r.keyId)].sort();
  // No orphan: every key at the vendor is recorded. (A crash right after a revoke leaves a
  // recorded key the vendor no longer has; the next revoke of it is a no-op.)
  if (exact) expect(live).toEqual(recorded);
  else for (const id of live) expect(recorded).toContain(id);
  expect(fake.isLive(cur.key)).toBe(true);
}

function expectNoKeyInAudit(w: World): void {
  const text = w.audit.join('\n');
  for (const k of [...fake.liveKeys(), ...fake.revoked.map((id) => ({ key: id }))]) if ('id' in k) expect(text).not.toContain(k.key);
  expect(text).not.toContain(JSON.parse(fake.managementSecret()).applicationKey);
}

describe('rotation: happy path', () => {
  let w: World;
  beforeEach(async () => {
    w = await world();
  });

  it('seeds a first key, then rotates: new key current, old key AWSPREVIOUS until the overlap, then revoked', async () => {
    const first = await current(w);
    expect(fake.liveKeys().map((k) => k.id)).toEqual([first.keyId]);
    expect(fake.liveKeys()[0].name).toMatch(/^tvm-datadog-[0-9a-f-]{36}$/);

    const out = await rotateVendorKey(w.deps(), w.target, { reason: 'test', by: 'admin' });
    expect(out).toMatchObject({ outcome: 'rotated', previousKeyId: first.keyId, revoked: [] });
    const second = await current(w);
    expect(second.keyId).toBe(out.keyId);
    expect(second.keyId).not.toBe(first.keyId);
    const v = await labels(w);
    expect(Object.values(v).filter((s) => s.length)).toHaveLength(2);
    expect(v[Object.keys(v).find((id) => v[id].includes(AWSPREVIOUS))!]).toEqual([AWSPREVIOUS]);
    // During the overlap both keys work at the vendor.
    expect(fake.isLive(first.key)).toBe(true);
    expect(fake.isLive(second.key)).toBe(true);
    await expectConsistent(w);

    // Before the overlap has passed, the schedule does not revoke.
    w.clock.t += 14 * 60_000;
    expect((await rotateIfDue(w.deps(), w.target)).revoked).toEqual([]);
    w.clock.t += 2 * 60_000;
    const later = await rotateIfDue(w.deps(), w.target);
    expect(later).toMatchObject({ outcome: 'not_due', revoked: [first.keyId] });
    expect(fake.isLive(first.key)).toBe(false);
    expect(Object.values(await labels(w)).flat().sort()).toEqual([AWSCURRENT]);
    await expectConsistent(w);
    expectNoKeyInAudit(w);

    const status = await vendorStatus(w.deps(), w.vendor);
    expect(status).toMatchObject({ name: 'datadog', currentKeyId: second.keyId, rotationInProgress: false, retiring: [] });
    expect(JSON.stringify(status)).not.toContain(second.key);
  });

  it('rotates on schedule when due, and an incident rotation revokes the previous key at once', async () => {
    const first = await current(w);
    w.clock.t += 24 * 3600_000;
    expect((await rotateIfDue(w.deps(), w.target)).outcome).toBe('rotated');
    const second = await current(w);
    const out = await rotateVendorKey(w.deps(), w.target, { reason: 'leak', revokePrevious: true });
    expect(out.revoked.sort()).toEqual([first.keyId, second.keyId].sort());
    expect(fake.liveKeys().map((k) => k.id)).toEqual([out.keyId]);
    await expectConsistent(w);
  });

  it('runs as a Secrets Manager rotation Lambda: the four steps, idempotent per token', async () => {
    const first = await current(w);
    const token = randomUUID();
    for (const step of ['createSecret', 'createSecret', 'setSecret', 'testSecret', 'finishSecret', 'finishSecret'] as const) {
      await runRotationStep(w.deps(), w.target, step, token);
    }
    const now = await current(w);
    expect((await w.secrets.getValue(KEY_ID, { stage: AWSCURRENT }))!.versionId).toBe(token);
    expect(now.keyId).not.toBe(first.keyId);
    expect(fake.liveKeys()).toHaveLength(2);
    await expectConsistent(w);
  });
});

describe('rotation: driven by Secrets Manager (RotateSecret first creates an empty AWSPENDING version)', () => {
  let w: World;
  beforeEach(async () => {
    w = await world();
  });

  it('the four steps fill the empty version with a new key, test it and make it current', async () => {
    const first = await current(w);
    const token = randomUUID();
    await w.secrets.startRotation(KEY_ID, token);
    for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(w.deps(), w.target, step, token);
    const now = await current(w);
    expect((await w.secrets.getValue(KEY_ID, { stage: AWSCURRENT }))!.versionId).toBe(token);
    expect(now.keyId).not.toBe(first.keyId);
    expect(fake.isLive(now.key)).toBe(true);
    await expectConsistent(w);
    // Retried steps change nothing (Secrets Manager retries with the same token).
    for (const step of ['createSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(w.deps(), w.target, step, token);
    expect((await current(w)).keyId).toBe(now.keyId);
    expect(fake.liveKeys()).toHaveLength(2);
  });

  it('finishSecret never moves AWSCURRENT onto the empty version', async () => {
    const first = await current(w);
    const token = randomUUID();
    await w.secrets.startRotation(KEY_ID, token);
    await expect(runRotationStep(w.deps(), w.target, 'finishSecret', token)).rejects.toMatchObject({ awsName: 'ResourceNotFoundException' });
    expect((await current(w)).keyId).toBe(first.keyId);
    expect((await w.secrets.versions(KEY_ID))[token]).toEqual([AWSPENDING]);
  });

  it('finishSecret tests a key nobody recorded as tested before it becomes current', async () => {
    const first = await current(w);
    const token = randomUUID();
    await w.secrets.startRotation(KEY_ID, token);
    await runRotationStep(w.deps(), w.target, 'createSecret', token);
    fake.fail('test', 403);
    await expect(runRotationStep(w.deps(), w.target, 'finishSecret', token)).rejects.toMatchObject({ name: 'KeyRejected', code: 'upstream_refused' });
    expect((await current(w)).keyId).toBe(first.keyId);
  });

  it('a jam (RotateSecret ran, its steps never did): the admin rotation and the schedule finish it under its token', async () => {
    const first = await current(w);
    const token = randomUUID();
    await w.secrets.startRotation(KEY_ID, token);
    const out = await rotateVendorKey(w.deps(), w.target, { reason: 'after a jam', by: 'admin' });
    expect(out).toMatchObject({ outcome: 'resumed', previousKeyId: first.keyId });
    expect((await w.secrets.getValue(KEY_ID, { stage: AWSCURRENT }))!.versionId).toBe(token);
    await expectConsistent(w);
    // Secrets Manager's own later steps for that token find it done.
    for (const step of ['createSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(w.deps(), w.target, step, token);
    await expectConsistent(w);
    expect(fake.liveKeys()).toHaveLength(2);

    const again = randomUUID();
    await w.secrets.startRotation(KEY_ID, again);
    expect((await rotateIfDue(w.deps(), w.target)).outcome).toBe('resumed');
    expect((await w.secrets.getValue(KEY_ID, { stage: AWSCURRENT }))!.versionId).toBe(again);
    await expectConsistent(w, false);
  });
});

describe('rotation: a vendor whose management credential is not set (a fresh deploy)', () => {
  let w: World;
  beforeEach(async () => {
    w = await world();
    // What the stack creates the management secret with, before an operator sets it.
    await w.secrets.putValue(MGMT_ID, randomUUID(), NOT_CONFIGURED, [AWSCURRENT]);
    fake.seen = [];
  });

  it('is not configured for the placeholder, an empty value, or no value; anything else is configured', () => {
    expect([NOT_CONFIGURED, '', '  ', undefined].map(isConfiguredValue)).toEqual([false, false, false, false]);
    expect(isConfiguredValue('{"apiKey":"a","applicationKey":"b"}')).toBe(true);
  });

  it('the schedule does nothing: no lock, no state, no request to the vendor; the status says not configured', async () => {
    const before = await w.state.get('datadog');
    w.clock.t += 48 * 3600_000; // long overdue
    expect(await rotateIfDue(w.deps(), w.target)).toEqual({ vendor: 'datadog', outcome: 'not_configured', revoked: [] });
    expect(fake.seen).toEqual([]);
    expect(await w.state.get('datadog')).toEqual(before);
    expect(await vendorStatus(w.deps(), w.vendor)).toMatchObject({ configured: false });
  });

  it('rotate now is refused (400 vendor_not_configured) before anything is asked of the vendor', async () => {
    await expect(rotateVendorKey(w.deps(), w.target, { reason: 'try' })).rejects.toMatchObject({ code: 'invalid_request', reason: 'vendor_not_configured' });
    expect(fake.seen).toEqual([]);
  });

  it("Secrets Manager's rotation (as when a RotationSchedule is created) passes every step and ends with AWSCURRENT where it was", async () => {
    const cur = (await w.secrets.getValue(KEY_ID, { stage: AWSCURRENT }))!.versionId;
    const token = randomUUID();
    await w.secrets.startRotation(KEY_ID, token);
    for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(w.deps(), w.target, step, token);
    const v = await labels(w);
    expect(v[cur]).toEqual([AWSCURRENT]);
    expect(Object.values(v).flat()).not.toContain(AWSPENDING);
    expect(fake.seen).toEqual([]);
    // And the next RotateSecret is accepted (no rotation left "in progress").
    await w.secrets.startRotation(KEY_ID, randomUUID());
  });

  it('once the operator sets the credential, the next scheduled run rotates', async () => {
    await w.secrets.putValue(MGMT_ID, randomUUID(), fake.managementSecret(), [AWSCURRENT]);
    w.clock.t += 24 * 3600_000 + 1000;
    expect((await rotateIfDue(w.deps(), w.target)).outcome).toBe('rotated');
    expect(await vendorStatus(w.deps(), w.vendor)).toMatchObject({ configured: true });
  });
});

/** The calls that write: to the rotation state (the lock too), the secret store, and the vendor. */
const WRITES: Record<string, Set<string>> = {
  state: new Set(['acquire', 'save', 'release']),
  secrets: new Set(['putValue', 'updateStage']),
  keys: new Set(['create', 'revoke']),
};

/**
 * Wraps the real ports of `deps`: every write is counted into `trace`; once write number
 * `crashAt` has happened, that call never returns (a crash: nothing after it runs, the lock stays
 * taken until it expires).
 */
function crashingDeps(deps: RotateDeps, trace: string[], crashAt: number, crashed: () => void): RotateDeps {
  const wrap = <T extends object>(obj: T, label: keyof typeof WRITES): T =>
    new Proxy(obj, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function') return v;
        if (!WRITES[label].has(String(prop))) return (v as (...a: unknown[]) => unknown).bind(target);
        return async (...args: unknown[]) => {
          const r = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          if (trace.push(`${label}.${String(prop)}`) - 1 === crashAt) {
            crashed();
            return new Promise(() => undefined);
          }
          return r;
        };
      },
    });
  return { ...deps, secrets: wrap(deps.secrets, 'secrets'), keys: wrap(deps.keys, 'keys'), state: wrap(deps.state, 'state') };
}

/**
 * Runs `scenario` crashing at write 0, 1, 2, … of the stores it drives, until a run completes
 * without reaching the crash point; after each crash, `recover` (once the lock has expired)
 * must leave the invariants. Answers how many crash points there were.
 */
async function crashAtEveryWrite(
  scenario: (w: World, deps: RotateDeps) => Promise<unknown>,
  recover: (w: World, ctx: { first: { keyId: string; key: string }; trace: string[] }) => Promise<void>,
): Promise<number> {
  for (let k = 0; ; k++) {
    const w = await world();
    const first = await current(w);
    const trace: string[] = [];
    let signal!: () => void;
    const crashed = new Promise<'crashed'>((r) => (signal = () => r('crashed')));
    const done = scenario(w, crashingDeps(w.deps(), trace, k, signal)).then(() => 'done' as const);
    if ((await Promise.race([crashed, done])) === 'done') return k;
    // While the crashed run's lock holds (it crashed anywhere but right after its release), another run is refused.
    if (trace.at(-1) !== 'state.release') await expect(rotateIfDue(w.deps(), w.target)).rejects.toMatchObject({ code: 'throttled', reason: 'rotation_in_progress' });
    w.clock.t += LOCK_TTL + 1000;
    try {
      await recover(w, { first, trace });
    } catch (e) {
      throw new Error(`after a crash at write ${k} (${trace.at(-1)}; writes so far: ${trace.join(', ')}): ${(e as Error).message}`);
    }
  }
}

/** After the overlap, only the current key is left at the vendor and in the store's labels. */
async function expectSettledAfterOverlap(w: World): Promise<void> {
  w.clock.t += 16 * 60_000;
  await rotateIfDue(w.deps(), w.target);
  await expectConsistent(w);
  const cur = await current(w);
  expect(fake.liveKeys().map((k) => k.id)).toEqual([cur.keyId]);
  expect(Object.values(await labels(w)).flat()).toEqual([AWSCURRENT]);
  expectNoKeyInAudit(w);
}

describe('rotation: a crash at every write, then a rerun (lock on DynamoVendorStateStore)', () => {
  it('an incident rotation (rotate now, revoke the previous key): the next scheduled run settles it', async () => {
    const points = await crashAtEveryWrite(
      (w, deps) => rotateVendorKey(deps, w.target, { revokePrevious: true, reason: 'incident' }),
      async (w, { first, trace }) => {
        await rotateIfDue(w.deps(), w.target);
        await expectConsistent(w, false);
        const afterRerun = await current(w);
        // Either the rotation was finished (a key had been stored: a new key, and the incident's
        // revocation of the old one done without waiting for the overlap) or it never got that far.
        if (trace.includes('secrets.putValue')) {
          expect(afterRerun.keyId).not.toBe(first.keyId);
          expect(fake.isLive(first.key)).toBe(false);
        } else expect(afterRerun.keyId).toBe(first.keyId);
        await expectSettledAfterOverlap(w);
      },
    );
    expect(points).toBeGreaterThanOrEqual(10);
  }, 180_000);

  it.each(['retries its steps', 'is overtaken by the schedule'] as const)(
    'a rotation Secrets Manager drives (RotateSecret, then the four steps) crashed at any write; Secrets Manager %s: one current key, no orphan',
    async (then) => {
      const token = randomUUID();
      const steps = async (w: World, deps: () => RotateDeps) => {
        for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(deps(), w.target, step, token);
      };
      const points = await crashAtEveryWrite(
        async (w, deps) => {
          await w.secrets.startRotation(KEY_ID, token);
          await steps(w, () => deps);
        },
        async (w, { first }) => {
          if (then === 'is overtaken by the schedule') await rotateIfDue(w.deps(), w.target);
          await steps(w, () => w.deps());
          await rotateIfDue(w.deps(), w.target);
          await expectConsistent(w, false);
          expect((await w.secrets.getValue(KEY_ID, { stage: AWSCURRENT }))!.versionId).toBe(token);
          expect((await current(w)).keyId).not.toBe(first.keyId);
          await expectSettledAfterOverlap(w);
        },
      );
      expect(points).toBeGreaterThanOrEqual(8);
    },
    180_000,
  );
});

describe('rotation: the vendor fails', () => {
  let w: World;
  beforeEach(async () => {
    w = await world();
    w.clock.t += 24 * 3600_000 + 1000; // due
  });

  it('5xx on create: the current key stays, the failure is recorded, the next run rotates', async () => {
    const first = await current(w);
    fake.fail('create', 500);
    await expect(rotateIfDue(w.deps(), w.target)).rejects.toMatchObject({ code: 'upstream_unavailable', reason: 'vendor_500' });
    expect((await current(w)).keyId).toBe(first.keyId);
    const st = (await w.state.get('datadog'))!;
    expect(st.lastError).toMatchObject({ step: 'createSecret', reason: 'vendor_500' });
    expect(st.events.at(-1)).toMatchObject({ type: 'rotation_failed', reason: 'vendor_500' });
    expect(fake.liveKeys().map((k) => k.id)).toEqual([first.keyId]);

    const next = await rotateIfDue(w.deps(), w.target);
    expect(next.outcome).toBe('rotated');
    expect((await w.state.get('datadog'))!.lastError).toBeUndefined();
    await expectConsistent(w);
  });

  it('5xx on test: the pending key stays recorded; the next run tests it again and finishes', async () => {
    const first = await current(w);
    fake.fail('test', 503);
    await expect(rotateIfDue(w.deps(), w.target)).rejects.toMatchObject({ reason: 'vendor_503' });
    expect((await current(w)).keyId).toBe(first.keyId);
    const v = await labels(w);
    expect(Object.values(v).flat().sort()).toEqual([AWSCURRENT, AWSPENDING]);
    expect(fake.liveKeys()).toHaveLength(2); // the pending key is recorded as AWSPENDING

    const next = await rotateIfDue(w.deps(), w.target);
    expect(next.outcome).toBe('resumed');
    expect(next.keyId).not.toBe(first.keyId);
    await expectConsistent(w);
  });

  it('the vendor rejects the new key on test: it is revoked and unlabelled, the current key stays', async () => {
    const first = await current(w);
    fake.fail('test', 403);
    await expect(rotateIfDue(w.deps(), w.target)).rejects.toMatchObject({ name: 'KeyRejected' });
    expect(fake.liveKeys().map((k) => k.id)).toEqual([first.keyId]);
    expect(fake.revoked).toHaveLength(1);
    await expectConsistent(w);
  });

  it('5xx on revoke: the previous key stays recorded as retiring; the next run revokes it', async () => {
    const first = await current(w);
    await rotateIfDue(w.deps(), w.target);
    w.clock.t += 16 * 60_000;
    fake.fail('revoke', 502);
    await expect(rotateIfDue(w.deps(), w.target)).rejects.toMatchObject({ reason: 'vendor_502' });
    expect(fake.isLive(first.key)).toBe(true);
    expect((await w.state.get('datadog'))!.retiring.map((r) => r.keyId)).toEqual([first.keyId]);
    await expectConsistent(w);

    const next = await rotateIfDue(w.deps(), w.target);
    expect(next.revoked).toEqual([first.keyId]);
    expect(fake.isLive(first.key)).toBe(false);
    await expectConsistent(w);
  });

  it('the vendor unreachable: UpstreamUnavailable, nothing changes', async () => {
    const first = await current(w);
    const vendor = { ...w.vendor, baseUrl: 'http://127.0.0.1:9' };
    const keys = new DatadogVendorKeys(vendor, async () => fake.managementSecret(), fetchVendorHttp());
    await expect(rotateIfDue(w.deps({ keys }), { vendor, secretId: KEY_ID })).rejects.toMatchObject({ code: 'upstream_unavailable', reason: 'vendor_unreachable' });
    expect((await current(w)).keyId).toBe(first.keyId);
  });
});

describe('rotation: two at once', () => {
  it('only one proceeds; the other is refused with rotation_in_progress', async () => {
    const w = await world();
    const first = await current(w);
    fake.delay('create', 200);
    const results = await Promise.allSettled([
      rotateVendorKey(w.deps(), w.target, { reason: 'a' }),
      rotateVendorKey(w.deps(), w.target, { reason: 'b' }),
    ]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(refused[0].reason).toMatchObject({ code: 'throttled', reason: 'rotation_in_progress' });
    expect(fake.liveKeys()).toHaveLength(2);
    expect((await current(w)).keyId).not.toBe(first.keyId);
    await expectConsistent(w);
  });
});
