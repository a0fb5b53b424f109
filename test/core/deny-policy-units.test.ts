/**
 * deny-policy.ts in detail, where deny-policy.test.ts speaks in outcomes: the document's exact
 * text and size accounting, merging and pruning each kind of entry, the folds' cutoffs and
 * expiries, and the errors an operator meets when a role has no room.
 */
import { describe, expect, it } from 'vitest';
import {
  addDenyEntries,
  DenyPolicyFull,
  DenyPolicyNoRoom,
  denyPolicyChars,
  type DenyState,
  emptyDenyState,
  isEmptyDenyState,
  isoSeconds,
  issuedBeforeCutoff,
  nextPruneAt,
  policyChars,
  pruneDenyState,
  renderDenyPolicy,
  serializeDenyPolicy,
  sessionEntryChars,
  SESSIONS_STATEMENT_CHARS,
  userIdPattern,
} from '../../functions/core/deny-policy.js';
import type { DenyEntry } from '../../functions/core/ports.js';

const NOW = 1_800_000_000;
const BIG = 10_240;
const sess = (name: string, over: Partial<Extract<DenyEntry, { kind: 'session' }>> = {}): DenyEntry => ({ kind: 'session', sessionName: name, expiresAt: NOW + 900, issued: true, ...over });
const src = (sourceIdentity: string, issuedBefore: number, expiresAt: number): DenyEntry => ({ kind: 'source', sourceIdentity, issuedBefore, expiresAt });

describe('small pieces', () => {
  it('isoSeconds is TokenIssueTime\'s format; the cutoff is the next whole second', () => {
    expect(isoSeconds(NOW)).toBe('2027-01-15T08:00:00Z');
    expect(issuedBeforeCutoff(NOW)).toBe(NOW + 1);
    expect(issuedBeforeCutoff(NOW + 0.7)).toBe(NOW + 1);
    expect(userIdPattern('tvm-Lx')).toBe('*:tvm-Lx');
  });

  it('a state is empty only with no sessions, no sources and no fallback', () => {
    expect(isEmptyDenyState(emptyDenyState())).toBe(true);
    expect(isEmptyDenyState({ sessions: { a: { expiresAt: 1, issued: true } }, sources: {} })).toBe(false);
    expect(isEmptyDenyState({ sessions: {}, sources: { s: { issuedBefore: 1, expiresAt: 1 } } })).toBe(false);
    expect(isEmptyDenyState({ sessions: {}, sources: {}, fallback: { issuedBefore: 1, expiresAt: 1, engagedAt: 1 } })).toBe(false);
  });

  it('counts characters as IAM does: whitespace is free', () => {
    expect(policyChars(' { "a" :\n\t"b c" } ')).toBe('{"a":"bc"}'.length);
  });
});

describe('renderDenyPolicy', () => {
  it('lists sessions and principals sorted, one statement per principal, in the exact compact text tvm puts', () => {
    const state: DenyState = {
      sessions: { 'tvm-b': { expiresAt: 1, issued: true }, 'tvm-a': { expiresAt: 1, issued: false } },
      sources: { 'dev.z': { issuedBefore: NOW, expiresAt: 1 }, 'dev.m': { issuedBefore: NOW + 1, expiresAt: 1 } },
    };
    const text = serializeDenyPolicy(renderDenyPolicy(state)!);
    expect(text).toBe(
      '{"Version":"2012-10-17","Statement":[' +
        '{"Sid":"TvmRevokedSessions","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringLike":{"aws:userid":["*:tvm-a","*:tvm-b"]}}},' +
        '{"Sid":"TvmRevokedPrincipal0","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceIdentity":"dev.m"},"DateLessThan":{"aws:TokenIssueTime":"2027-01-15T08:00:01Z"}}},' +
        '{"Sid":"TvmRevokedPrincipal1","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceIdentity":"dev.z"},"DateLessThan":{"aws:TokenIssueTime":"2027-01-15T08:00:00Z"}}}]}',
    );
    expect(denyPolicyChars(state)).toBe(text.length);
  });

  it('one more session costs exactly sessionEntryChars; a new sessions statement at most SESSIONS_STATEMENT_CHARS beyond its entry', () => {
    const base: DenyState = { sessions: {}, sources: { 'dev.a': { issuedBefore: NOW, expiresAt: 1 } }, fallback: { issuedBefore: NOW, expiresAt: 1, engagedAt: NOW } };
    const one: DenyState = { ...base, sessions: { 'tvm-Laaaa': { expiresAt: 1, issued: true } } };
    const two: DenyState = { ...base, sessions: { ...one.sessions, 'tvm-Lbbbbbb': { expiresAt: 1, issued: true } } };
    expect(denyPolicyChars(two) - denyPolicyChars(one)).toBe(sessionEntryChars('tvm-Lbbbbbb'));
    expect(sessionEntryChars('tvm-Lbbbbbb')).toBe(',"*:tvm-Lbbbbbb"'.length);
    expect(denyPolicyChars(one) - denyPolicyChars(base)).toBeLessThanOrEqual(SESSIONS_STATEMENT_CHARS + sessionEntryChars('tvm-Laaaa'));
    const alone: DenyState = { sessions: { 'tvm-Laaaa': { expiresAt: 1, issued: true } }, sources: {} };
    expect(denyPolicyChars(alone)).toBeLessThanOrEqual(SESSIONS_STATEMENT_CHARS + sessionEntryChars('tvm-Laaaa'));
    // The slack: the document around a first session entry ({"Version":…,"Statement":[{"Sid":"TvmRevokedSessions",…}]}), plus 2.
    expect(SESSIONS_STATEMENT_CHARS).toBe(157);
  });
});

describe('pruneDenyState and nextPruneAt', () => {
  const state = (): DenyState => ({
    sessions: { a: { expiresAt: NOW + 10, issued: true }, b: { expiresAt: NOW + 500, issued: true } },
    sources: { 'dev.x': { issuedBefore: NOW, expiresAt: NOW + 20 }, 'dev.y': { issuedBefore: NOW, expiresAt: NOW + 600 } },
    fallback: { issuedBefore: NOW, expiresAt: NOW + 30, engagedAt: NOW },
  });

  it('removes each kind once its sessions have expired, with the margin given, and leaves the input as it was', () => {
    const s = state();
    const r = pruneDenyState(s, NOW + 40, 10);
    expect(r).toEqual({
      state: { sessions: { b: { expiresAt: NOW + 500, issued: true } }, sources: { 'dev.y': { issuedBefore: NOW, expiresAt: NOW + 600 } } },
      entriesRemoved: 2,
      fallbackDropped: true,
    });
    expect(s).toEqual(state());
    expect(pruneDenyState(s, NOW + 39, 10)).toMatchObject({ entriesRemoved: 2, fallbackDropped: false });
    expect(pruneDenyState(s, NOW + 19, 10)).toMatchObject({ entriesRemoved: 0, fallbackDropped: false });
  });

  it('the next prune is due at the earliest expiry of any kind, plus the margin', () => {
    expect(nextPruneAt(state())).toBe(NOW + 10 + 60);
    expect(nextPruneAt({ sessions: {}, sources: { s: { issuedBefore: 0, expiresAt: NOW + 7 } } }, 5)).toBe(NOW + 12);
    expect(nextPruneAt({ sessions: {}, sources: {}, fallback: { issuedBefore: 0, expiresAt: NOW + 3, engagedAt: 0 } }, 0)).toBe(NOW + 3);
  });
});

describe('addDenyEntries: merging', () => {
  it('a principal entry keeps the later cutoff and the later expiry; the same one again changes nothing', () => {
    const a = addDenyEntries(emptyDenyState(), [src('dev.a', NOW, NOW + 900)], NOW, BIG);
    const b = addDenyEntries(a.state, [src('dev.a', NOW - 5, NOW + 1800)], NOW, BIG);
    expect(b.state.sources['dev.a']).toEqual({ issuedBefore: NOW, expiresAt: NOW + 1800 });
    expect(b.unchanged).toBe(false);
    const c = addDenyEntries(b.state, [src('dev.a', NOW + 9, NOW + 10)], NOW, BIG);
    expect(c.state.sources['dev.a']).toEqual({ issuedBefore: NOW + 9, expiresAt: NOW + 1800 });
    expect(addDenyEntries(c.state, [src('dev.a', NOW + 9, NOW + 1800)], NOW, BIG)).toMatchObject({ unchanged: true, fallback: false });
  });

  it("a session entry keeps the principal it was first denied with", () => {
    const a = addDenyEntries(emptyDenyState(), [sess('s', { sourceIdentity: 'dev.a', issued: false })], NOW, BIG);
    const b = addDenyEntries(a.state, [sess('s', { sourceIdentity: 'dev.b', issued: false })], NOW, BIG);
    expect(b.state.sessions.s).toEqual({ expiresAt: NOW + 900, issued: false, source: 'dev.a' });
    expect(b.unchanged).toBe(true);
    const c = addDenyEntries(emptyDenyState(), [sess('s')], NOW, BIG);
    expect(c.state.sessions.s).toEqual({ expiresAt: NOW + 900, issued: true });
  });

  it('a call that only pruned reports a change', () => {
    const a = addDenyEntries(emptyDenyState(), [sess('old', { expiresAt: NOW + 1 })], NOW, BIG);
    expect(addDenyEntries(a.state, [], NOW + 61, BIG)).toMatchObject({ unchanged: false, state: emptyDenyState() });
    expect(addDenyEntries(a.state, [], NOW + 60, BIG).unchanged).toBe(true);
  });

  it('an entry that expires exactly at the margin is skipped; one a second later is kept', () => {
    expect(addDenyEntries(emptyDenyState(), [sess('x', { expiresAt: NOW - 60 })], NOW, BIG).state.sessions).toEqual({});
    expect(Object.keys(addDenyEntries(emptyDenyState(), [sess('x', { expiresAt: NOW - 59 })], NOW, BIG).state.sessions)).toEqual(['x']);
  });
});

describe('addDenyEntries: the folds', () => {
  const many = (prefix: string, n: number, over: Partial<Extract<DenyEntry, { kind: 'session' }>> = {}) =>
    Array.from({ length: n }, (_, i) => sess(`tvm-${prefix}${String(i).padStart(24, 'a')}`, over));

  it("a principal's fold: its issued sessions become one entry until the latest of them (or its older entry), cutoff now or later", () => {
    const start = addDenyEntries(emptyDenyState(), [src('dev.a', NOW + 50, NOW + 5000)], NOW, BIG).state;
    const r = addDenyEntries(start, [...many('a', 40, { sourceIdentity: 'dev.a', expiresAt: NOW + 2000 }), sess('tvm-pending', { sourceIdentity: 'dev.a', issued: false })], NOW + 0.5, 1500, {
      kind: 'principal',
      sourceIdentity: 'dev.a',
    });
    expect(r).toMatchObject({ fallback: true, fallbackKind: 'principal', fallbackIssuedBefore: NOW + 50, unchanged: false });
    expect(r.state.sources).toEqual({ 'dev.a': { issuedBefore: NOW + 50, expiresAt: NOW + 5000 } });
    expect(Object.keys(r.state.sessions)).toEqual(['tvm-pending']);
    const fresh = addDenyEntries(emptyDenyState(), many('b', 40, { sourceIdentity: 'dev.b', expiresAt: NOW + 2000 }), NOW + 0.5, 1500, { kind: 'principal', sourceIdentity: 'dev.b' });
    expect(fresh.state.sources).toEqual({ 'dev.b': { issuedBefore: NOW + 1, expiresAt: NOW + 2000 } });
  });

  it('refuses a principal whose fold cannot fit, saying how much it needs of how much', () => {
    let err: unknown;
    try {
      addDenyEntries(emptyDenyState(), many('c', 10, { sourceIdentity: 'dev.c' }), NOW, 100, { kind: 'principal', sourceIdentity: 'dev.c' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DenyPolicyFull);
    const full = err as DenyPolicyFull;
    expect(full).toMatchObject({ name: 'DenyPolicyFull', budget: 100 });
    expect(full.needed).toBeGreaterThan(100);
    expect(full.message).toBe(`the deny policy needs ${full.needed} characters of 100 even with the principal's sessions folded`);
  });

  it("the role fallback: every issued session and principal entry folds into one, until the latest of them; it engaged now", () => {
    const start = addDenyEntries(emptyDenyState(), [src('dev.a', NOW, NOW + 7000)], NOW, BIG).state;
    const r = addDenyEntries(start, [...many('d', 40, { expiresAt: NOW + 2000 }), sess('tvm-p', { issued: false, expiresAt: NOW + 300 })], NOW + 0.5, 1500);
    expect(r).toMatchObject({ fallback: true, fallbackKind: 'role', fallbackIssuedBefore: NOW + 1, unchanged: false });
    expect(r.state).toEqual({ sessions: { 'tvm-p': { expiresAt: NOW + 300, issued: false } }, sources: {}, fallback: { issuedBefore: NOW + 1, expiresAt: NOW + 7000, engagedAt: NOW } });
  });

  it('an earlier fallback is moved forward, keeping its later expiry; its cutoff never moves back', () => {
    const prior: DenyState = { sessions: {}, sources: {}, fallback: { issuedBefore: NOW + 100, expiresAt: NOW + 9000, engagedAt: NOW } };
    const r = addDenyEntries(prior, many('e', 40), NOW + 10, 1500);
    expect(r.state.fallback).toEqual({ issuedBefore: NOW + 100, expiresAt: NOW + 9000, engagedAt: NOW + 10 });
  });

  it('as a last resort folds the pending sessions too, until the latest of them', () => {
    const pending = many('f', 60, { issued: false, expiresAt: NOW + 4000 });
    const r = addDenyEntries(emptyDenyState(), [...pending, sess('tvm-i', { expiresAt: NOW + 100 })], NOW, 1500);
    expect(r.state).toEqual({ sessions: {}, sources: {}, fallback: { issuedBefore: NOW + 1, expiresAt: NOW + 4000, engagedAt: NOW } });
  });

  it('refuses when even the fallback alone cannot fit, saying how much it needs', () => {
    let err: unknown;
    try {
      addDenyEntries(emptyDenyState(), [sess('tvm-x')], NOW, 60);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DenyPolicyNoRoom);
    const e = err as DenyPolicyNoRoom;
    expect(e).toMatchObject({ name: 'DenyPolicyNoRoom', budget: 60, needed: denyPolicyChars({ sessions: {}, sources: {}, fallback: { issuedBefore: NOW + 1, expiresAt: NOW + 900, engagedAt: NOW } }) });
    expect(e.message).toBe(`the role's other inline policies leave 60 characters; the fallback alone needs ${e.needed}`);
  });
});

/** A document that fits to the character fits: each budget check is `chars <= budget`. */
describe('addDenyEntries at a budget met exactly', () => {
  const named = (p: string, n: number, over: Partial<Extract<DenyEntry, { kind: 'session' }>> = {}) => Array.from({ length: n }, (_, i) => sess(`tvm-${p}${i}`, over));

  it('entries that fit to the character engage no fallback', () => {
    const entries = named('a', 3);
    const exact = denyPolicyChars(addDenyEntries(emptyDenyState(), entries, NOW, BIG).state);
    const r = addDenyEntries(emptyDenyState(), entries, NOW, exact);
    expect([r.fallback, Object.keys(r.state.sessions).length]).toEqual([false, 3]);
  });

  it("a principal's fold that fits to the character is answered, not refused", () => {
    const entries = named('b', 8, { sourceIdentity: 'dev.b' });
    const scope = { kind: 'principal' as const, sourceIdentity: 'dev.b' };
    const all = denyPolicyChars(addDenyEntries(emptyDenyState(), entries, NOW, BIG).state);
    const folded = addDenyEntries(emptyDenyState(), entries, NOW, all - 1, scope);
    const exact = denyPolicyChars(folded.state);
    expect(exact).toBeLessThan(all - 1);
    expect(addDenyEntries(emptyDenyState(), entries, NOW, exact, scope)).toEqual(folded);
  });

  it('the role fallback beside the pending sessions, fitting to the character, keeps them by name', () => {
    const entries = [...named('c', 40), ...named('p', 2, { issued: false })];
    const all = denyPolicyChars(addDenyEntries(emptyDenyState(), entries, NOW, BIG).state);
    const kept = addDenyEntries(emptyDenyState(), entries, NOW, all - 1);
    expect(Object.keys(kept.state.sessions).sort()).toEqual(['tvm-p0', 'tvm-p1']);
    const exact = denyPolicyChars(kept.state);
    expect(addDenyEntries(emptyDenyState(), entries, NOW, exact)).toEqual(kept);
  });

  it('the role fallback alone, fitting to the character, is answered, not DenyPolicyNoRoom', () => {
    const entries = [...named('d', 8), ...named('q', 6, { issued: false })];
    const all = denyPolicyChars(addDenyEntries(emptyDenyState(), entries, NOW, BIG).state);
    const alone = addDenyEntries(emptyDenyState(), entries, NOW, 200);
    expect(alone.state.sessions).toEqual({});
    const exact = denyPolicyChars(alone.state);
    expect(exact).toBeLessThan(all);
    expect(addDenyEntries(emptyDenyState(), entries, NOW, exact)).toEqual(alone);
  });
});

describe('mergeEntry: a session denied again', () => {
  const name = 'tvm-Lmerge';
  const start = () => addDenyEntries(emptyDenyState(), [sess(name)], NOW, BIG).state;

  it('with a later expiry: the later expiry is kept and the state changed', () => {
    const r = addDenyEntries(start(), [sess(name, { expiresAt: NOW + 1800 })], NOW, BIG);
    expect([r.unchanged, r.state.sessions[name].expiresAt]).toEqual([false, NOW + 1800]);
  });

  it('now with its source identity: the source is recorded and the state changed', () => {
    const r = addDenyEntries(start(), [sess(name, { sourceIdentity: 'dev.m' })], NOW, BIG);
    expect([r.unchanged, r.state.sessions[name].source]).toEqual([false, 'dev.m']);
  });

  it('as pending after it was known issued: it stays issued, nothing changed', () => {
    const r = addDenyEntries(start(), [sess(name, { issued: false })], NOW, BIG);
    expect([r.unchanged, r.state.sessions[name].issued]).toEqual([true, true]);
  });
});
