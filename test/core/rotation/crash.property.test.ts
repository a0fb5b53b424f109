/**
 * Rotation crash-safety as a property (fast-check, in-memory ports): any sequence of runs, each
 * crashing after any of its writes or meeting a vendor failure, followed by one clean run,
 * converges (SPEC: "a crash at any step and a rerun end with exactly one current key and no
 * orphan at the vendor") — one AWSCURRENT, nothing pending, nothing in flight, no key at the vendor that tvm
 * has not recorded — and at no moment does AWSCURRENT move onto a key the vendor has not passed
 * in a test. The crash points are the writes the ports see (the lock, the record, the secret
 * store, the vendor), counted as they happen, not a list of the implementation's steps.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyRejected, UpstreamUnavailable } from '../../../functions/core/errors.js';
import { parseVendorKey, rotateIfDue, rotateVendorKey, runRotationStep, type RotateDeps } from '../../../functions/core/rotate-vendor-key.js';
import { AWSCURRENT, AWSPENDING, type SecretStore } from '../../../functions/core/vendor-ports.js';
import { HOUR, LOCK_TTL, MINUTE, rig, type Rig, SECRET_ID, T0 } from './fakes.js';

const WRITES = { state: ['acquire', 'save', 'release'], secrets: ['putValue', 'updateStage'], keys: ['create', 'revoke'] } as const;

type Scenario = 'rotate-now' | 'incident' | 'schedule' | 'secrets-manager';
type Fault = { op: 'create' | 'test' | 'revoke'; rejected: boolean } | null;
interface Attempt {
  crashAt: number | null;
  fault: Fault;
}

/**
 * The rig's ports, wrapped: every write is counted; write number `crashAt` happens and then
 * never returns (the process died). Every move of AWSCURRENT is checked against the vendor's
 * record of keys that passed a test.
 */
function watched(r: Rig, crashAt: number | null, onCrash: () => void, violations: string[]): RotateDeps {
  let writes = 0;
  const wrap = <T extends object>(obj: T, names: readonly string[]): T =>
    new Proxy(obj, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function') return v;
        const fn = (v as (...a: unknown[]) => Promise<unknown>).bind(target);
        if (!names.includes(String(prop))) return fn;
        return async (...args: unknown[]) => {
          if (target === (r.secrets as object) && prop === 'updateStage' && args[1] === AWSCURRENT && args[2]) {
            const key = parseVendorKey((await r.secrets.getValue(SECRET_ID, { versionId: args[2] as string }))?.value);
            if (!key || !r.keys.passed.has(key.keyId)) violations.push(`AWSCURRENT moved onto ${String(args[2])} (key ${key?.keyId ?? 'none'}), never tested`);
          }
          const out = await fn(...args);
          if (writes++ === crashAt) {
            onCrash();
            return new Promise(() => undefined);
          }
          return out;
        };
      },
    });
  return r.deps({ state: wrap(r.state, WRITES.state), secrets: wrap(r.secrets as SecretStore, WRITES.secrets), keys: wrap(r.keys, WRITES.keys) });
}

const TOKEN = 'sm-token';

async function act(r: Rig, scenario: Scenario, deps: RotateDeps): Promise<void> {
  switch (scenario) {
    case 'rotate-now':
      await rotateVendorKey(deps, r.target, { reason: 'test', by: 'admin' });
      return;
    case 'incident':
      await rotateVendorKey(deps, r.target, { reason: 'leak', revokePrevious: true, by: 'admin' });
      return;
    case 'schedule':
      await rotateIfDue(deps, r.target);
      return;
    case 'secrets-manager':
      for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(deps, r.target, step, TOKEN);
  }
}

/** Runs one attempt; answers whether it crashed. A vendor failure or a refusal is not a crash. */
async function attempt(r: Rig, scenario: Scenario, a: Attempt, violations: string[]): Promise<boolean> {
  if (a.fault) r.keys.fail(a.fault.op, a.fault.rejected ? new KeyRejected(403) : new UpstreamUnavailable('vendor_503'));
  let signal!: () => void;
  const crashed = new Promise<'crashed'>((res) => (signal = () => res('crashed')));
  const done = act(r, scenario, watched(r, a.crashAt, signal, violations)).then(
    () => 'done' as const,
    () => 'failed' as const,
  );
  const how = await Promise.race([crashed, done]);
  // A fault the attempt did not reach is not left for the next one.
  r.keys.clearFaults();
  r.clock.t += how === 'crashed' ? LOCK_TTL + 1 : MINUTE;
  return how === 'crashed';
}

async function seeded(): Promise<Rig> {
  const r = rig();
  await rotateIfDue(r.deps(), r.target);
  return r;
}

const attemptArb: fc.Arbitrary<Attempt> = fc.record({
  crashAt: fc.option(fc.nat(30), { nil: null }),
  fault: fc.option(
    fc.record({ op: fc.constantFrom('create' as const, 'test' as const, 'revoke' as const), rejected: fc.boolean() }),
    { nil: null },
  ),
});

describe('rotation converges after any crashes and vendor failures', () => {
  it('one current key, nothing pending or in flight, every vendor key recorded; AWSCURRENT only ever onto a tested key', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom<Scenario>('rotate-now', 'incident', 'schedule', 'secrets-manager'), fc.array(attemptArb, { minLength: 1, maxLength: 4 }), async (scenario, attempts) => {
        const r = await seeded();
        if (scenario === 'schedule') r.clock.t = T0 + 24 * HOUR;
        if (scenario === 'secrets-manager') await r.secrets.startRotation(SECRET_ID, TOKEN);
        const violations: string[] = [];
        for (const a of attempts) await attempt(r, scenario, a, violations);
        // Then a clean run: Secrets Manager retries its steps (they may fail for good, as after a
        // rejected key), and the schedule comes by.
        if (scenario === 'secrets-manager') await act(r, scenario, watched(r, null, () => undefined, violations)).catch(() => undefined);
        // The rerun may end by reporting a key the vendor rejected (a crash in the middle of a
        // rollback: the rerun finishes the rollback and says why); any other failure is a defect.
        await rotateIfDue(watched(r, null, () => undefined, violations), r.target).catch((e: unknown) => {
          if (!(e instanceof KeyRejected)) throw e;
        });

        expect(violations).toEqual([]);
        const versions = await r.versions();
        const labels = Object.values(versions).flat();
        expect(labels.filter((l) => l === AWSCURRENT)).toHaveLength(1);
        expect(labels).not.toContain(AWSPENDING);
        const cur = (await r.current())!.key;
        expect(r.keys.live()).toContain(cur.keyId);
        expect(r.keys.passed.has(cur.keyId)).toBe(true);
        const st = await r.st();
        expect(st.currentKeyId).toBe(cur.keyId);
        expect(st.inflight).toBeUndefined();
        const recorded = new Set([cur.keyId, ...st.retiring.map((x) => x.keyId)]);
        for (const id of r.keys.live()) expect(recorded.has(id), `key ${id} live at the vendor but not recorded`).toBe(true);
        expect(JSON.stringify(st)).not.toContain('secret-');

        // Once the overlap has passed, the current key is the only one left (twice: the first of
        // these runs may itself rotate, when the schedule is due).
        for (const _ of [1, 2]) {
          r.clock.t += 16 * MINUTE;
          await rotateIfDue(r.deps(), r.target);
        }
        expect(r.keys.live()).toEqual([(await r.current())!.key.keyId]);
      }),
      { numRuns: 300 },
    );
  }, 120_000);
});
