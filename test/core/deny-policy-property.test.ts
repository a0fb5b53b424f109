/**
 * The deny policy's promises, over random histories of revocations (fast-check): the rendered
 * document always fits the budget; every revoked session that was issued stays denied by the
 * rendered document until it expires, whatever packing or folding happened since; a session that
 * may not exist yet stays denied by name unless the role-wide fallback took it as a last resort;
 * and a workload's own revocation never engages the role-wide fallback nor drops another
 * principal's entry. "Denied" is judged on the rendered IAM document, read the way IAM reads
 * these three statement shapes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addDenyEntries,
  DenyPolicyFull,
  type DenyPolicyDocument,
  type DenyState,
  denyPolicyChars,
  emptyDenyState,
  PRUNE_MARGIN_SECONDS,
  renderDenyPolicy,
} from '../../functions/core/deny-policy.js';
import type { DenyEntry, DenyScope } from '../../functions/core/ports.js';

const T = 1_900_000_000;
const SOURCES = ['dev.a', 'dev.b', 'dev.c', 'gh.repo-x'];

interface Session {
  name: string;
  source: string;
  /** Epoch seconds: `aws:TokenIssueTime` (for a pending one, the earliest it could be issued). */
  issuedAt: number;
  expiresAt: number;
  issued: boolean;
}

const epochOfIso = (s: string) => Date.parse(s) / 1000;

/** Whether IAM denies a request of `s` under `doc` (only the statements tvm renders). */
function denies(doc: DenyPolicyDocument | undefined, s: Session): boolean {
  if (!doc) return false;
  return doc.Statement.some((st) => {
    const c = st.Condition;
    const before = c.DateLessThan?.['aws:TokenIssueTime'];
    const like = c.StringLike?.['aws:userid'];
    const source = c.StringEquals?.['aws:SourceIdentity'];
    if (like) return (like as string[]).some((p) => p.startsWith('*:') && `AROAEXAMPLE:${s.name}`.endsWith(p.slice(1)));
    if (source !== undefined) return source === s.source && s.issuedAt < epochOfIso(before as string);
    return before !== undefined && s.issuedAt < epochOfIso(before as string);
  });
}

const step = fc.record({
  advance: fc.integer({ min: 0, max: 400 }),
  sessions: fc.array(fc.record({ source: fc.integer({ min: 0, max: SOURCES.length - 1 }), issued: fc.boolean(), age: fc.integer({ min: 0, max: 600 }), duration: fc.constantFrom(900, 1800) }), {
    minLength: 1,
    maxLength: 6,
  }),
  /** -1: an admin (role scope); otherwise the index of the principal revoking its own sessions. */
  scope: fc.integer({ min: -1, max: SOURCES.length - 1 }),
});

describe('deny policy: random histories', () => {
  it('fits, keeps every revoked session denied, and confines a workload to its own sessions', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), fc.integer({ min: 700, max: 2500 }), (steps, budget) => {
        let state: DenyState = emptyDenyState();
        let now = T;
        let n = 0;
        const revoked: Session[] = [];
        for (const st of steps) {
          now += st.advance;
          // A workload revokes only its own sessions; an admin any.
          const sessions: Session[] = st.sessions.map((x) => {
            const source = st.scope >= 0 ? SOURCES[st.scope] : SOURCES[x.source];
            const issuedAt = x.issued ? now - x.age : now;
            return { name: `tvm-L${String(n++).padStart(26, 'a')}`, source, issuedAt, expiresAt: issuedAt + x.duration, issued: x.issued };
          });
          const entries: DenyEntry[] = sessions.map((s) => ({ kind: 'session', sessionName: s.name, expiresAt: s.expiresAt, issued: s.issued, sourceIdentity: s.source }));
          const scope: DenyScope = st.scope >= 0 ? { kind: 'principal', sourceIdentity: SOURCES[st.scope] } : { kind: 'role' };
          const before = state;
          let r;
          try {
            r = addDenyEntries(state, entries, now, budget, scope);
          } catch (e) {
            // Only a workload's own revocation may be refused, and it then changes nothing.
            expect(e).toBeInstanceOf(DenyPolicyFull);
            expect(scope.kind).toBe('principal');
            continue;
          }
          state = r.state;
          revoked.push(...sessions);
          expect(denyPolicyChars(state)).toBeLessThanOrEqual(budget);
          if (scope.kind === 'principal') {
            expect(r.fallbackKind).not.toBe('role');
            expect(state.fallback).toEqual(before.fallback?.expiresAt !== undefined && before.fallback.expiresAt + PRUNE_MARGIN_SECONDS > now ? before.fallback : undefined);
            for (const [name, s] of Object.entries(before.sessions)) {
              if (s.source !== scope.sourceIdentity && s.expiresAt + PRUNE_MARGIN_SECONDS > now) expect(state.sessions[name]).toEqual(s);
            }
          }
          const doc = renderDenyPolicy(state);
          for (const s of revoked) {
            if (s.expiresAt + PRUNE_MARGIN_SECONDS <= now) continue; // expired: nothing left to deny
            if (s.issued) expect([s.name, denies(doc, s)]).toEqual([s.name, true]);
            else expect([s.name, !!state.sessions[s.name] || (!!state.fallback && state.fallback.expiresAt >= s.expiresAt)]).toEqual([s.name, true]);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
