import { describe, expect, it } from 'vitest';
import {
  addDenyEntries,
  DenyPolicyFull,
  DenyPolicyNoRoom,
  denyPolicyChars,
  emptyDenyState,
  INLINE_POLICY_BUDGET,
  isEmptyDenyState,
  issuedBeforeCutoff,
  nextPruneAt,
  policyChars,
  PRUNE_MARGIN_SECONDS,
  pruneDenyState,
  renderDenyPolicy,
  serializeDenyPolicy,
} from '../../functions/core/deny-policy.js';
import type { DenyEntry } from '../../functions/core/ports.js';

const NOW = 1_800_000_000;
const DIGITS: Record<string, string> = { 0: 'w', 1: 'x', 2: 'y', 3: 'z', 4: '2', 5: '3', 6: '4', 7: '5', 8: '6', 9: '7' };
const id = (i: number) => `L${i.toString(32).padStart(6, '0').replace(/\d/g, (d) => DIGITS[d]).padStart(26, 'a')}`;
const session = (i: number, expiresAt = NOW + 900, issued = true): DenyEntry => ({ kind: 'session', sessionName: `tvm-${id(i)}`, expiresAt, issued });

describe('renderDenyPolicy', () => {
  it('renders nothing for an empty state', () => {
    expect(renderDenyPolicy(emptyDenyState())).toBeUndefined();
    expect(denyPolicyChars(emptyDenyState())).toBe(0);
  });

  it('denies sessions by aws:userid, principals by SourceIdentity before a time, and the fallback by TokenIssueTime', () => {
    const { state } = addDenyEntries(
      emptyDenyState(),
      [session(1), { kind: 'source', sourceIdentity: 'dev.alice', issuedBefore: NOW + 1, expiresAt: NOW + 3600 }],
      NOW,
      INLINE_POLICY_BUDGET,
    );
    state.fallback = { issuedBefore: NOW, expiresAt: NOW + 60, engagedAt: NOW };
    const doc = renderDenyPolicy(state)!;
    expect(doc.Statement).toEqual([
      { Sid: 'TvmRevokedBefore', Effect: 'Deny', Action: '*', Resource: '*', Condition: { DateLessThan: { 'aws:TokenIssueTime': '2027-01-15T08:00:00Z' } } },
      { Sid: 'TvmRevokedSessions', Effect: 'Deny', Action: '*', Resource: '*', Condition: { StringLike: { 'aws:userid': [`*:tvm-${id(1)}`] } } },
      {
        Sid: 'TvmRevokedPrincipal0',
        Effect: 'Deny',
        Action: '*',
        Resource: '*',
        Condition: { StringEquals: { 'aws:SourceIdentity': 'dev.alice' }, DateLessThan: { 'aws:TokenIssueTime': '2027-01-15T08:00:01Z' } },
      },
    ]);
    expect(policyChars(JSON.stringify(doc, null, 2))).toBe(serializeDenyPolicy(doc).length);
  });
});

describe('addDenyEntries', () => {
  it('is idempotent: the same entry twice is one entry, and the second call changes nothing', () => {
    const a = addDenyEntries(emptyDenyState(), [session(1)], NOW, INLINE_POLICY_BUDGET);
    const b = addDenyEntries(a.state, [session(1)], NOW, INLINE_POLICY_BUDGET);
    expect(a.unchanged).toBe(false);
    expect(b.unchanged).toBe(true);
    expect(Object.keys(b.state.sessions)).toHaveLength(1);
  });

  it('keeps the later expiry and the known-issued flag when an entry is merged', () => {
    const a = addDenyEntries(emptyDenyState(), [session(1, NOW + 100, false)], NOW, INLINE_POLICY_BUDGET);
    const b = addDenyEntries(a.state, [session(1, NOW + 50, true)], NOW, INLINE_POLICY_BUDGET);
    expect(b.state.sessions[`tvm-${id(1)}`]).toEqual({ expiresAt: NOW + 100, issued: true });
  });

  it('skips entries whose sessions have already expired and prunes expired ones on the way', () => {
    const a = addDenyEntries(emptyDenyState(), [session(1, NOW + 10)], NOW, INLINE_POLICY_BUDGET);
    const later = NOW + 10 + PRUNE_MARGIN_SECONDS;
    const b = addDenyEntries(a.state, [session(2, NOW - 100)], later, INLINE_POLICY_BUDGET);
    expect(isEmptyDenyState(b.state)).toBe(true);
  });

  it('fits about 280 sessions in the budget, then falls back to TokenIssueTime once and keeps going', () => {
    let state = emptyDenyState();
    const fallbacks: number[] = [];
    for (let i = 0; i < 500; i++) {
      const r = addDenyEntries(state, [session(i)], NOW, INLINE_POLICY_BUDGET);
      if (r.fallback) fallbacks.push(i);
      state = r.state;
      expect(denyPolicyChars(state)).toBeLessThanOrEqual(INLINE_POLICY_BUDGET);
    }
    expect(fallbacks).toHaveLength(1);
    expect(fallbacks[0]).toBeGreaterThan(250);
    expect(state.fallback).toEqual({ issuedBefore: issuedBeforeCutoff(NOW), expiresAt: NOW + 900, engagedAt: NOW });
    expect(Object.keys(state.sessions)).toHaveLength(500 - fallbacks[0] - 1);
  });

  it('keeps entries of sessions that may not exist yet (pending) out of the fallback while they fit', () => {
    let state = addDenyEntries(emptyDenyState(), [session(9999, NOW + 300, false)], NOW, INLINE_POLICY_BUDGET).state;
    const many = Array.from({ length: 400 }, (_, i) => session(i));
    const r = addDenyEntries(state, many, NOW, INLINE_POLICY_BUDGET);
    expect(r.fallback).toBe(true);
    expect(Object.keys(r.state.sessions)).toEqual([`tvm-${id(9999)}`]);
    state = r.state;
    expect(state.fallback!.expiresAt).toBe(NOW + 900);
  });

  it('folds pending sessions in too, and refuses only when the fallback alone cannot fit', () => {
    const pending = Array.from({ length: 400 }, (_, i) => session(i, NOW + 300, false));
    const r = addDenyEntries(emptyDenyState(), pending, NOW, INLINE_POLICY_BUDGET);
    expect(r.fallback).toBe(true);
    expect(r.state.sessions).toEqual({});
    expect(() => addDenyEntries(emptyDenyState(), [session(1)], NOW, 50)).toThrow(DenyPolicyNoRoom);
  });

  it('moves an existing fallback forward and keeps the later expiry', () => {
    const first = addDenyEntries(emptyDenyState(), Array.from({ length: 300 }, (_, i) => session(i, NOW + 3000)), NOW, INLINE_POLICY_BUDGET);
    const second = addDenyEntries(first.state, Array.from({ length: 300 }, (_, i) => session(1000 + i, NOW + 100 + 600)), NOW + 100, INLINE_POLICY_BUDGET);
    expect(second.fallback).toBe(true);
    expect(second.state.fallback).toEqual({ issuedBefore: issuedBeforeCutoff(NOW + 100), expiresAt: NOW + 3000, engagedAt: NOW + 100 });
  });
});

describe('pruneDenyState', () => {
  it.each([
    ['before expiry', NOW + 899, 0, false],
    ['at expiry, within the margin', NOW + 900 + PRUNE_MARGIN_SECONDS - 1, 0, false],
    ['after expiry and the margin', NOW + 900 + PRUNE_MARGIN_SECONDS, 2, true],
  ])('%s', (_label, at, removed, dropped) => {
    const state = addDenyEntries(
      emptyDenyState(),
      [session(1), { kind: 'source', sourceIdentity: 'dev.bob', issuedBefore: NOW + 1, expiresAt: NOW + 900 }],
      NOW,
      INLINE_POLICY_BUDGET,
    ).state;
    state.fallback = { issuedBefore: NOW, expiresAt: NOW + 900, engagedAt: NOW };
    const r = pruneDenyState(state, at);
    expect(r.entriesRemoved).toBe(removed);
    expect(r.fallbackDropped).toBe(dropped);
    expect(isEmptyDenyState(r.state)).toBe(dropped);
  });

  it('answers when the next prune is due', () => {
    const state = addDenyEntries(emptyDenyState(), [session(1, NOW + 500), session(2, NOW + 100)], NOW, INLINE_POLICY_BUDGET).state;
    expect(nextPruneAt(state)).toBe(NOW + 100 + PRUNE_MARGIN_SECONDS);
    expect(nextPruneAt(emptyDenyState())).toBeUndefined();
  });
});

describe('addDenyEntries: whose sessions a fallback may kill', () => {
  const attacker = 'dev.mallory';
  const victim = 'dev.victim';
  const of = (i: number, source: string, issued = true): DenyEntry => ({ ...(session(i, NOW + 900, issued) as Extract<DenyEntry, { kind: 'session' }>), sourceIdentity: source });
  const principal = (sourceIdentity: string) => ({ kind: 'principal' as const, sourceIdentity });
  /** Fills the role with `n` of the attacker's revoked sessions and three of the victim's. */
  function filled(n: number) {
    let state = addDenyEntries(emptyDenyState(), [of(9000, victim), of(9001, victim), of(9002, victim)], NOW, INLINE_POLICY_BUDGET).state;
    for (let i = 0; i < n; i++) {
      const r = addDenyEntries(state, [of(i, attacker)], NOW, INLINE_POLICY_BUDGET, principal(attacker));
      expect(r.fallback).toBe(false);
      state = r.state;
    }
    return state;
  }

  it("a workload's own revocation that overflows folds only its own sessions: the victim's stay denied by name, nothing role-wide", () => {
    let state = filled(200);
    let r;
    for (let i = 200; ; i++) {
      r = addDenyEntries(state, [of(i, attacker)], NOW, INLINE_POLICY_BUDGET, principal(attacker));
      state = r.state;
      if (r.fallback) break;
    }
    expect(r.fallbackKind).toBe('principal');
    expect(r.fallbackIssuedBefore).toBe(issuedBeforeCutoff(NOW));
    expect(r.state.fallback).toBeUndefined();
    expect(r.state.sources).toEqual({ [attacker]: { issuedBefore: issuedBeforeCutoff(NOW), expiresAt: NOW + 900 } });
    expect(Object.keys(r.state.sessions).sort()).toEqual([9000, 9001, 9002].map((i) => `tvm-${id(i)}`));
    expect(denyPolicyChars(r.state)).toBeLessThanOrEqual(INLINE_POLICY_BUDGET);
    const doc = JSON.stringify(renderDenyPolicy(r.state));
    expect(doc).not.toContain('TvmRevokedBefore');
    expect(doc).toContain(`"aws:SourceIdentity":"${attacker}"`);
  });

  it("keeps the attacker's pending sessions by name when it folds the issued ones", () => {
    const state = filled(270);
    const r = addDenyEntries(state, [of(5000, attacker, false), ...Array.from({ length: 20 }, (_, i) => of(300 + i, attacker))], NOW, INLINE_POLICY_BUDGET, principal(attacker));
    expect(r.fallbackKind).toBe('principal');
    expect(r.state.sessions[`tvm-${id(5000)}`]).toMatchObject({ issued: false, source: attacker });
  });

  it("refuses rather than kill other principals' sessions when the room is held by their entries", () => {
    let state = emptyDenyState();
    let i = 0;
    // One entry each: every principal's entries are cheaper than the room its own fold would use.
    for (; i < 400; i++) {
      try {
        state = addDenyEntries(state, [of(i, `dev.p${i}`)], NOW, INLINE_POLICY_BUDGET, principal(`dev.p${i}`)).state;
      } catch (e) {
        expect(e).toBeInstanceOf(DenyPolicyFull);
        break;
      }
    }
    expect(i).toBeGreaterThan(250);
    expect(i).toBeLessThan(400);
    expect(Object.keys(state.sessions)).toHaveLength(i);
    expect(() => addDenyEntries(state, [of(1000, attacker)], NOW, INLINE_POLICY_BUDGET, principal(attacker))).toThrow(DenyPolicyFull);
    // An admin may: the role-wide fallback.
    expect(addDenyEntries(state, [of(1000, attacker)], NOW, INLINE_POLICY_BUDGET).fallbackKind).toBe('role');
  });

  it.each([['principal', principal(attacker)], ['role', undefined]] as const)('prunes what expired before falling back at all (%s scope)', (_label, scope) => {
    let state = emptyDenyState();
    for (let i = 0; i < 270; i++) state = addDenyEntries(state, [{ ...of(i, `dev.p${i}`), expiresAt: NOW + 10 }], NOW, INLINE_POLICY_BUDGET).state;
    const later = NOW + 10 + PRUNE_MARGIN_SECONDS;
    const r = addDenyEntries(state, Array.from({ length: 20 }, (_, i) => ({ ...of(1000 + i, attacker), expiresAt: later + 900 })), later, INLINE_POLICY_BUDGET, scope);
    expect(r.fallback).toBe(false);
    expect(Object.keys(r.state.sessions)).toHaveLength(20);
  });

  it("an admin's overflow is still role-wide (kind role)", () => {
    const r = addDenyEntries(filled(250), Array.from({ length: 50 }, (_, i) => of(2000 + i, attacker)), NOW, INLINE_POLICY_BUDGET);
    expect(r.fallbackKind).toBe('role');
    expect(r.state.fallback!.issuedBefore).toBe(issuedBeforeCutoff(NOW));
  });
});
