/**
 * The lease model (core/lease.ts): the state machine the store and the sweep use, the due time,
 * identifiers. Expected values are literals; fast-check walks the machine.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canTransition,
  dueAt,
  epochSeconds,
  isExpired,
  isLive,
  LEASE_ID,
  LEASE_STATUSES,
  type LeaseMove,
  sessionNameFor,
  sourceIdentityFor,
  sourcesOf,
  transition,
} from '../../functions/core/lease.js';
import type { LeaseStatus } from '../../functions/core/ports.js';

const MOVES: LeaseMove[] = ['activate', 'fail', 'revoke', 'expire'];
const LEASE = 'Labcdefghijklmnopqrstuvwxyz';

describe('transition', () => {
  // Every (state, move) pair, written out: the machine of SPEC.md.
  it.each([
    ['pending', 'activate', 'active'],
    ['pending', 'fail', 'failed'],
    ['pending', 'revoke', 'failed'],
    ['pending', 'expire', undefined],
    ['active', 'activate', undefined],
    ['active', 'fail', undefined],
    ['active', 'revoke', 'revoked'],
    ['active', 'expire', 'expired'],
    ...(['revoked', 'expired', 'failed'] as const).flatMap((s) => MOVES.map((m) => [s, m, undefined] as const)),
  ] as [LeaseStatus, LeaseMove, LeaseStatus | undefined][])('%s --%s--> %s', (from, move, to) => {
    expect(transition(from, move)).toBe(to);
  });

  it.each([
    ['pending', 'active', true],
    ['pending', 'failed', true],
    ['active', 'revoked', true],
    ['active', 'expired', true],
    ['pending', 'revoked', false],
    ['pending', 'expired', false],
    ['pending', 'pending', false],
    ['active', 'pending', false],
    ['active', 'failed', false],
    ['active', 'active', false],
    ['revoked', 'active', false],
    ['expired', 'revoked', false],
    ['failed', 'active', false],
  ] as [LeaseStatus, LeaseStatus, boolean][])('canTransition(%s, %s) = %s', (from, to, ok) => {
    expect(canTransition(from, to)).toBe(ok);
  });

  it.each([
    ['pending', []],
    ['active', ['pending']],
    ['failed', ['pending']],
    ['revoked', ['active']],
    ['expired', ['active']],
  ] as [LeaseStatus, LeaseStatus[]][])('sourcesOf(%s) = %j (the store writes under this condition)', (to, from) => {
    expect(sourcesOf(to)).toEqual(from);
  });

  it.each([
    ['pending', true],
    ['active', true],
    ['revoked', false],
    ['expired', false],
    ['failed', false],
  ] as [LeaseStatus, boolean][])('isLive(%s) = %s', (s, live) => {
    expect(isLive(s)).toBe(live);
  });
});

describe('the machine, walked (fast-check)', () => {
  const status = fc.constantFrom(...LEASE_STATUSES);
  const move = fc.constantFrom(...MOVES);

  it('a lease starts pending, ends in at most two moves, and a terminal state absorbs every move', () => {
    fc.assert(
      fc.property(fc.array(move, { maxLength: 12 }), (moves) => {
        let s: LeaseStatus = 'pending';
        const visited: LeaseStatus[] = [s];
        for (const m of moves) {
          const next = transition(s, m);
          if (next === undefined) continue;
          expect(canTransition(s, next)).toBe(true);
          expect(sourcesOf(next)).toContain(s);
          s = next;
          visited.push(s);
        }
        expect(visited.length).toBeLessThanOrEqual(3);
        // live states only ever come first: once out, never back in
        const firstDead = visited.findIndex((v) => !isLive(v));
        if (firstDead >= 0) expect(visited.slice(firstDead).every((v) => !isLive(v))).toBe(true);
        // active at most once: credentials are issued once per lease
        expect(visited.filter((v) => v === 'active').length).toBeLessThanOrEqual(1);
        if (!isLive(s)) for (const m of MOVES) expect(transition(s, m)).toBeUndefined();
      }),
    );
  });

  it('canTransition and sourcesOf say exactly what transition does', () => {
    fc.assert(
      fc.property(status, status, (from, to) => {
        const reachable = MOVES.some((m) => transition(from, m) === to);
        expect(canTransition(from, to)).toBe(reachable);
        expect(sourcesOf(to).includes(from)).toBe(reachable);
      }),
    );
  });

  it('a lease has a due time exactly when it is live, and only an active one expires', () => {
    const at = fc.integer({ min: 1_700_000_000, max: 2_000_000_000 });
    fc.assert(
      fc.property(status, at, fc.integer({ min: 1, max: 43_200 }), fc.integer({ min: 30, max: 3600 }), at, (s, issued, life, timeout, now) => {
        const lease = { status: s, issuedAt: new Date(issued * 1000).toISOString(), expiresAt: new Date((issued + life) * 1000).toISOString() };
        const due = dueAt(lease, timeout);
        expect(due !== undefined).toBe(isLive(s));
        if (s === 'pending') expect(due).toBe(issued + timeout);
        if (s === 'active') expect(due).toBe(issued + life);
        expect(isExpired(lease, now)).toBe(s === 'active' && issued + life <= now);
      }),
    );
  });
});

describe('dueAt and isExpired', () => {
  const lease = (status: LeaseStatus) => ({ status, issuedAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-01-01T00:15:00.000Z' });
  it.each([
    ['pending', 1893456300],
    ['active', 1893456900],
    ['revoked', undefined],
    ['expired', undefined],
    ['failed', undefined],
  ] as [LeaseStatus, number | undefined][])('a %s lease is due at %s', (s, due) => {
    expect(dueAt(lease(s), 300)).toBe(due);
  });

  it.each([
    ['active', 1893456899, false],
    ['active', 1893456900, true],
    ['active', 1893456901, true],
    ['pending', 1893460000, false],
    ['revoked', 1893460000, false],
  ] as [LeaseStatus, number, boolean][])('a %s lease at %i is expired: %s', (s, now, expired) => {
    expect(isExpired(lease(s), now)).toBe(expired);
  });

  it('epochSeconds rounds milliseconds down', () => {
    expect(epochSeconds('2030-01-01T00:00:00.999Z')).toBe(1893456000);
  });
});

describe('identifiers', () => {
  it.each([
    ['dev', 'agent-1', 'dev.agent-1'],
    ['github', 'repo:acme/app:ref:refs/heads/main', 'github=2159f391fcd708a8569e4db9a68563e266d16039'],
    ['dev', 'a|b', 'dev=b6ec8ec3346acf995b42605cd1a0ac086974f383'],
    // A sub that spells another principal's digest stays in the plain form: the two never meet.
    ['dev', 'b6ec8ec3346acf995b42605cd1a0ac086974f383', 'dev.b6ec8ec3346acf995b42605cd1a0ac086974f383'],
  ])('sourceIdentityFor(%s, %s) = %s', (issuer, sub, want) => {
    expect(sourceIdentityFor(issuer, sub)).toBe(want);
  });

  it('fits AWS SourceIdentity for any configured issuer name (config: [a-z0-9-]+) and any subject, and is stable', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9-]{1,40}$/), fc.string({ minLength: 1, maxLength: 200, unit: 'grapheme' }), (issuer, sub) => {
        const got = sourceIdentityFor(issuer, sub);
        expect(got).toMatch(/^[\w+=,.@-]{2,64}$/);
        expect(sourceIdentityFor(issuer, sub)).toBe(got);
      }),
    );
  });

  const issuerName = fc.stringMatching(/^[a-z0-9-]{1,40}$/);
  const anySub = fc.oneof(fc.string({ minLength: 1, maxLength: 80, unit: 'grapheme' }), fc.stringMatching(/^[\w+=,.@|/:-]{1,70}$/));

  it('two principals never share a SourceIdentity, even when one sub spells the other\'s identity', () => {
    fc.assert(
      fc.property(issuerName, anySub, (issuer, sub) => {
        const id = sourceIdentityFor(issuer, sub);
        // The attack: read the identity back as a plain `<issuer>.<sub>` (issuer names hold no
        // '.'), and as `<issuer>.<tail>` for every '.' in it; any principal that maps to the same
        // identity must be this one.
        for (let at = id.indexOf('.'); at > 0; at = id.indexOf('.', at + 1)) {
          const other: [string, string] = [id.slice(0, at), id.slice(at + 1)];
          if (!/^[a-z0-9-]+$/.test(other[0]) || other[1] === '') continue;
          if (sourceIdentityFor(...other) === id) expect(other).toEqual([issuer, sub]);
        }
        // And with the issuer truncated to 20, as the digest form does.
        const eq = id.indexOf('=');
        if (eq > 0 && /^[0-9a-f]{40}$/.test(id.slice(eq + 1)) && !id.slice(0, eq).includes('.')) {
          expect(sourceIdentityFor(id.slice(0, eq), id.slice(eq + 1))).not.toBe(id);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('is injective over a small space where collisions would show (fast-check pairs)', () => {
    const subs = fc.oneof(fc.constantFrom('a', 'a.b', 'x/y', 'a|b', 'b.a'), fc.string({ minLength: 1, maxLength: 6, unit: fc.constantFrom('a', '.', '/', '|', '0') }));
    fc.assert(
      fc.property(fc.constantFrom('a', 'a-b', 'dev'), subs, fc.constantFrom('a', 'a-b', 'dev'), subs, (i1, s1, i2, s2) => {
        fc.pre(i1 !== i2 || s1 !== s2);
        expect(sourceIdentityFor(i1, s1)).not.toBe(sourceIdentityFor(i2, s2));
      }),
      { numRuns: 5000 },
    );
  });

  it('a long issuer name still fits', () => {
    expect(sourceIdentityFor('i'.repeat(60), 'x/y')).toMatch(/^i{20}=[0-9a-f]{40}$/);
  });

  it('session names carry the lease id and fit STS', () => {
    expect(sessionNameFor(LEASE)).toBe('tvm-Labcdefghijklmnopqrstuvwxyz');
    expect(sessionNameFor(LEASE)).toMatch(/^[\w+=,.@-]{2,64}$/);
    expect(LEASE).toMatch(LEASE_ID);
    expect('Labcdefghijklmnopqrstuvwxy1').not.toMatch(LEASE_ID);
    // anchored at both ends: a lease id inside a longer string is none
    expect(`x${LEASE}`).not.toMatch(LEASE_ID);
    expect(`${LEASE}a`).not.toMatch(LEASE_ID);
    expect(`${LEASE}\n`).not.toMatch(LEASE_ID);
  });
});
