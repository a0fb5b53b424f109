/**
 * The IamRoleRevoker's apply protocol (functions/adapters/iam-role-revoker.ts), modelled purely
 * and explored with fast-check over interleavings of concurrent writers on one role.
 *
 * Each writer is a generator that yields before every step touching shared state, exactly where
 * the adapter awaits DynamoDB or IAM: the record change (atomic add, or a compare-and-swap on
 * `version` that retries), then `apply`: read the record; trust an `applied` mark only if
 * `appliedVersion ≥ version` and `appliedSeqBase ≥ mySeq`; else put the render of what it read (the
 * put lands at a moment of its own, after the read), count the put (`ADD putSeq 1`), re-read, and
 * mark applied (conditional: a newer version, or the same with a newer seq base) if the version
 * did not move. Backoff sleeps are only delays: the scheduler already picks any order.
 * A render is identified with the record version it was made from: versions only grow and each
 * one holds every entry of the ones before it (deny-policy.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

interface Shared {
  version: number;
  appliedVersion: number;
  appliedSeqBase: number;
  putSeq: number;
  /** The version the IAM policy renders (the last put to land). */
  iam: number;
}

type Step = Generator<void, void, void>;

/** One `deny()`: a record change, then apply. `done(v)` is called when it returns. */
function* writer(s: Shared, casAdd: boolean, done: (version: number, iamAtReturn: number) => void): Step {
  let version: number;
  if (casAdd) {
    // compare-and-swap on version, retried (the adapter retries with jitter, up to maxAttempts)
    for (;;) {
      yield;
      const read = s.version;
      yield;
      if (s.version === read) {
        version = s.version = read + 1;
        break;
      }
    }
  } else {
    yield; // atomic add: SET entries, ADD version 1 in one update
    version = ++s.version;
  }

  let mySeq = 0;
  for (let round = 0; round < 60; round++) {
    yield;
    let record = { ...s };
    if (record.version < version) throw new Error('deny_record_regressed');
    if (record.appliedVersion >= version && record.appliedSeqBase >= mySeq) return done(version, s.iam);
    if (mySeq > 0) {
      yield;
      record = { ...s };
      if (record.appliedVersion >= version && record.appliedSeqBase >= mySeq) return done(version, s.iam);
    }
    version = record.version;
    yield; // PutRolePolicy of the render of `record` lands
    s.iam = record.version;
    yield;
    mySeq = ++s.putSeq;
    yield;
    const after = { ...s };
    if (after.version === version) {
      yield; // markApplied, conditional
      if (s.appliedVersion < version || (s.appliedVersion === version && s.appliedSeqBase < record.putSeq)) {
        s.appliedVersion = version;
        s.appliedSeqBase = record.putSeq;
      }
      return done(version, s.iam);
    }
  }
  throw new Error('deny_policy_contention');
}

/** Runs the writers, stepping the one `choices` names next (then round-robin). */
function run(kinds: boolean[], choices: number[]) {
  const s: Shared = { version: 0, appliedVersion: 0, appliedSeqBase: 0, putSeq: 0, iam: 0 };
  const returned: { version: number; iamAtReturn: number }[] = [];
  const live = kinds.map((cas) => writer(s, cas, (version, iamAtReturn) => void returned.push({ version, iamAtReturn })));
  let i = 0;
  while (live.length) {
    const k = (i < choices.length ? choices[i] : i) % live.length;
    i++;
    if (live[k].next().done) live.splice(k, 1);
    if (i > 100_000) throw new Error('no progress');
  }
  return { s, returned };
}

const writers = fc.array(fc.boolean(), { minLength: 2, maxLength: 4 });
const schedule = fc.array(fc.nat(3), { maxLength: 200 });

describe('revoker apply protocol (model, fast-check interleavings)', () => {
  it('once every writer returned, IAM renders the latest version: no entry is lost', () => {
    fc.assert(
      fc.property(writers, schedule, (kinds, choices) => {
        const { s, returned } = run(kinds, choices);
        expect(returned).toHaveLength(kinds.length);
        expect(s.version).toBe(kinds.length);
        expect(s.iam).toBe(s.version);
      }),
      { numRuns: 3000 },
    );
  });

  // KNOWN DEFECT (found by this model; reported, not fixed here — the adapter is being edited by
  // others): a writer can return while IAM renders an older version. Two atomic-add writers:
  // B puts v2, A's stale put of v1 (read before B's change) lands after it, B re-reads the record
  // (unchanged: v2), marks v2 applied and returns — its revocation answered 200 while IAM does not
  // deny its session. A then sees the version moved and re-puts v2, so the final state is right
  // (the test above); but if A crashes between its stale put and its re-put, the role keeps the
  // old render until the next writer or sweep re-renders, against SPEC ("stop working within AWS's
  // propagation time"). Counterexample (fast-check): writers [add, add], schedule [0,0,0,3,3,3,1].
  // `it.fails` passes while the defect is there; when the protocol is fixed, make it `it`.
  it.fails('when a writer returns, IAM already renders its entry', () => {
    fc.assert(
      fc.property(writers, schedule, (kinds, choices) => {
        const { returned } = run(kinds, choices);
        for (const r of returned) expect(r.iamAtReturn).toBeGreaterThanOrEqual(r.version);
      }),
      { numRuns: 3000 },
    );
  });

  it('the model can fail: trusting any applied mark (no seq base) loses an entry in some interleaving', () => {
    // The same protocol without the `appliedSeqBase ≥ mySeq` guard: a writer whose stale put landed
    // over a newer render returns on the newer writer's mark and leaves the stale render in place.
    function* careless(s: Shared): Step {
      yield;
      const version = ++s.version;
      let v = version;
      for (let round = 0; round < 60; round++) {
        yield;
        const record = { ...s };
        if (record.appliedVersion >= v) return;
        v = record.version;
        yield;
        s.iam = record.version;
        yield;
        const after = { ...s };
        if (after.version === v) {
          yield;
          if (s.appliedVersion < v) s.appliedVersion = v;
          return;
        }
      }
    }
    const lost = fc.check(
      fc.property(schedule, (choices) => {
        const s: Shared = { version: 0, appliedVersion: 0, appliedSeqBase: 0, putSeq: 0, iam: 0 };
        const live = [careless(s), careless(s), careless(s)];
        let i = 0;
        while (live.length) {
          const k = (i < choices.length ? choices[i] : i) % live.length;
          i++;
          if (live[k].next().done) live.splice(k, 1);
        }
        return s.iam === s.version;
      }),
      { numRuns: 5000 },
    );
    expect(lost.failed).toBe(true);
  });
});
