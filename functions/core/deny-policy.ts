/**
 * The tvm-owned deny policy of a grant role, as pure data: what is denied (the `DenyState`),
 * how it renders to an IAM policy document, how big that is in IAM's accounting, and the
 * `aws:TokenIssueTime` fallback when the entries would not fit.
 *
 * Design (see docs/revocation.md):
 * - one session is denied by `StringLike aws:userid = "*:tvm-<leaseId>"`. IAM's `aws:userid` of a
 *   role session is `<role id>:<session name>`; the policy is attached to that one role and lease
 *   ids are 130 random bits, so the wildcard can only match that lease's session. It needs no
 *   role id (no `iam:GetRole`, works for a pending lease whose STS answer was never seen) and is
 *   20 characters shorter than the `StringEquals` form, so more entries fit the 10,240 budget.
 * - all of a principal's sessions on a role: `StringEquals aws:SourceIdentity` AND
 *   `DateLessThan aws:TokenIssueTime` = the revocation time, so the principal can vend again.
 * - the fallbacks, when the entries would not fit (after pruning what has expired):
 *   - for a workload's own revocation (scope `principal`): that principal's session entries are
 *     folded into its `SourceIdentity` + `TokenIssueTime` entry, which kills only its own sessions
 *     issued before now — no workload can revoke another's credentials by filling the policy;
 *   - for an admin (scope `role`): `DateLessThan aws:TokenIssueTime` alone, for every session of
 *     the role issued before the time it engaged.
 * Every entry carries its expiry (epoch seconds) in the state, which tvm keeps in DynamoDB; the
 * sweep prunes entries once their sessions have expired anyway.
 */
import type { DenyEntry, DenyScope } from './ports.js';

/** IAM's aggregate size of a role's inline policies, in characters, whitespace not counted. */
export const INLINE_POLICY_BUDGET = 10_240;

/**
 * Seconds an entry outlives its session before it is pruned: session expiry is enforced by AWS's
 * clock, the sweep runs on tvm's; the margin absorbs the skew between them.
 */
export const PRUNE_MARGIN_SECONDS = 60;

export interface SessionDeny {
  /** Epoch seconds: the session has expired by then. */
  expiresAt: number;
  /** The session is known to have been issued before the entry was added. */
  issued: boolean;
  /** The session's `SourceIdentity` (its principal), so a principal fallback can fold it. */
  source?: string;
}

export interface SourceDeny {
  /** Epoch seconds: sessions with `aws:TokenIssueTime` before this are denied. */
  issuedBefore: number;
  expiresAt: number;
}

export interface FallbackDeny {
  issuedBefore: number;
  /** Epoch seconds: every session the fallback was meant to kill has expired by then. */
  expiresAt: number;
  /** Epoch seconds: when it (last) engaged. */
  engagedAt: number;
}

/** What a role's deny policy denies. Keys: session names, SourceIdentity values. */
export interface DenyState {
  sessions: Record<string, SessionDeny>;
  sources: Record<string, SourceDeny>;
  fallback?: FallbackDeny;
}

export interface PolicyStatement {
  Sid: string;
  Effect: 'Deny';
  Action: string;
  Resource: string;
  Condition: Record<string, Record<string, string | string[]>>;
}

export interface DenyPolicyDocument {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

export function emptyDenyState(): DenyState {
  return { sessions: {}, sources: {} };
}

export function isEmptyDenyState(state: DenyState): boolean {
  return Object.keys(state.sessions).length === 0 && Object.keys(state.sources).length === 0 && !state.fallback;
}

/** `aws:TokenIssueTime`'s format: ISO-8601 to the second. */
export function isoSeconds(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * The cutoff that denies every session issued up to `nowEpoch`: `aws:TokenIssueTime` has whole
 * seconds, so a session issued during the current second has the time of its start, below the next.
 */
export function issuedBeforeCutoff(nowEpoch: number): number {
  return Math.floor(nowEpoch) + 1;
}

/** The `aws:userid` pattern that matches exactly one tvm session of the role. */
export function userIdPattern(sessionName: string): string {
  return `*:${sessionName}`;
}

const DENY_ALL = { Effect: 'Deny', Action: '*', Resource: '*' } as const;

/** The IAM document for a state, or undefined when nothing is denied (the policy is deleted). */
export function renderDenyPolicy(state: DenyState): DenyPolicyDocument | undefined {
  const statements: PolicyStatement[] = [];
  if (state.fallback) {
    statements.push({
      Sid: 'TvmRevokedBefore',
      ...DENY_ALL,
      Condition: { DateLessThan: { 'aws:TokenIssueTime': isoSeconds(state.fallback.issuedBefore) } },
    });
  }
  const names = Object.keys(state.sessions).sort();
  if (names.length) {
    statements.push({
      Sid: 'TvmRevokedSessions',
      ...DENY_ALL,
      Condition: { StringLike: { 'aws:userid': names.map(userIdPattern) } },
    });
  }
  Object.keys(state.sources)
    .sort()
    .forEach((source, i) => {
      statements.push({
        Sid: `TvmRevokedPrincipal${i}`,
        ...DENY_ALL,
        Condition: {
          StringEquals: { 'aws:SourceIdentity': source },
          DateLessThan: { 'aws:TokenIssueTime': isoSeconds(state.sources[source].issuedBefore) },
        },
      });
    });
  return statements.length ? { Version: '2012-10-17', Statement: statements } : undefined;
}

/** The exact text tvm puts (compact JSON). */
export function serializeDenyPolicy(doc: DenyPolicyDocument): string {
  return JSON.stringify(doc);
}

/** A policy's size in IAM's accounting: characters, whitespace not counted. */
export function policyChars(text: string): number {
  return text.replace(/\s+/g, '').length;
}

export function denyPolicyChars(state: DenyState): number {
  const doc = renderDenyPolicy(state);
  return doc ? policyChars(serializeDenyPolicy(doc)) : 0;
}

function clone(state: DenyState): DenyState {
  return {
    sessions: Object.fromEntries(Object.entries(state.sessions).map(([k, v]) => [k, { ...v }])),
    sources: Object.fromEntries(Object.entries(state.sources).map(([k, v]) => [k, { ...v }])),
    ...(state.fallback ? { fallback: { ...state.fallback } } : {}),
  };
}

export interface PruneResult {
  state: DenyState;
  entriesRemoved: number;
  fallbackDropped: boolean;
}

/** Drops every entry (and the fallback) whose sessions have all expired by `nowEpoch` (with the margin). */
export function pruneDenyState(state: DenyState, nowEpoch: number, marginSeconds = PRUNE_MARGIN_SECONDS): PruneResult {
  const next = clone(state);
  let entriesRemoved = 0;
  const gone = (expiresAt: number) => expiresAt + marginSeconds <= nowEpoch;
  for (const [k, v] of Object.entries(next.sessions)) if (gone(v.expiresAt)) (delete next.sessions[k], entriesRemoved++);
  for (const [k, v] of Object.entries(next.sources)) if (gone(v.expiresAt)) (delete next.sources[k], entriesRemoved++);
  let fallbackDropped = false;
  if (next.fallback && gone(next.fallback.expiresAt)) {
    delete next.fallback;
    fallbackDropped = true;
  }
  return { state: next, entriesRemoved, fallbackDropped };
}

/** Epoch seconds at which the next prune has something to remove; undefined when the state is empty. */
export function nextPruneAt(state: DenyState, marginSeconds = PRUNE_MARGIN_SECONDS): number | undefined {
  const times = [
    ...Object.values(state.sessions).map((s) => s.expiresAt),
    ...Object.values(state.sources).map((s) => s.expiresAt),
    ...(state.fallback ? [state.fallback.expiresAt] : []),
  ];
  return times.length ? Math.min(...times) + marginSeconds : undefined;
}

/** No fallback can make the policy fit: the role's other inline policies leave too little room. */
export class DenyPolicyNoRoom extends Error {
  constructor(readonly budget: number, readonly needed: number) {
    super(`the role's other inline policies leave ${budget} characters; the fallback alone needs ${needed}`);
    this.name = 'DenyPolicyNoRoom';
  }
}

/**
 * A workload's own revocation cannot fit, even with its own sessions folded into one entry: the
 * room is held by other principals' entries, which a workload may not trade for their sessions.
 */
export class DenyPolicyFull extends Error {
  constructor(readonly budget: number, readonly needed: number) {
    super(`the deny policy needs ${needed} characters of ${budget} even with the principal's sessions folded`);
    this.name = 'DenyPolicyFull';
  }
}

/** The scope an admin (or tvm itself) acts with: the role-wide fallback is allowed. */
export const ROLE_SCOPE: DenyScope = { kind: 'role' };

export interface AddResult {
  state: DenyState;
  /** A fallback engaged (or moved forward) in this call. */
  fallback: boolean;
  /** Which one: every session of the role, or one principal's sessions (`fallbackSource`). */
  fallbackKind?: 'role' | 'principal';
  /** Epoch seconds: the engaged fallback denies sessions issued before it. */
  fallbackIssuedBefore?: number;
  /** Nothing changed: every entry was already there. */
  unchanged: boolean;
}

function mergeEntry(state: DenyState, entry: DenyEntry): boolean {
  if (entry.kind === 'session') {
    const cur = state.sessions[entry.sessionName];
    const source = cur?.source ?? entry.sourceIdentity;
    const next: SessionDeny = { expiresAt: Math.max(cur?.expiresAt ?? 0, entry.expiresAt), issued: (cur?.issued ?? false) || entry.issued, ...(source ? { source } : {}) };
    if (cur && cur.expiresAt === next.expiresAt && cur.issued === next.issued && cur.source === next.source) return false;
    state.sessions[entry.sessionName] = next;
    return true;
  }
  const cur = state.sources[entry.sourceIdentity];
  const next = { issuedBefore: Math.max(cur?.issuedBefore ?? 0, entry.issuedBefore), expiresAt: Math.max(cur?.expiresAt ?? 0, entry.expiresAt) };
  if (cur && cur.issuedBefore === next.issuedBefore && cur.expiresAt === next.expiresAt) return false;
  state.sources[entry.sourceIdentity] = next;
  return true;
}

/**
 * Folds one principal's issued session entries into its `SourceIdentity` entry denying every
 * session of it issued before `cutoff`. Its sessions that may not exist yet (pending) keep
 * their own entries.
 */
function foldPrincipal(state: DenyState, source: string, cutoff: number): DenyState {
  const next = clone(state);
  const cur = next.sources[source];
  let expiresAt = cur?.expiresAt ?? 0;
  for (const [name, s] of Object.entries(next.sessions)) {
    if (s.source !== source || !s.issued) continue;
    expiresAt = Math.max(expiresAt, s.expiresAt);
    delete next.sessions[name];
  }
  next.sources[source] = { issuedBefore: Math.max(cutoff, cur?.issuedBefore ?? 0), expiresAt };
  return next;
}

/**
 * Adds entries to a state, pruning what has expired first. Only when the result would still not
 * fit in `budget` characters does a fallback engage, by `scope`:
 * - `principal` (a workload's own revocation): that principal's issued sessions are folded into
 *   one `SourceIdentity` + `TokenIssueTime` = now entry; if even that cannot fit,
 *   `DenyPolicyFull` — never another principal's sessions;
 * - `role` (an admin, the sweep): every entry whose session is known to exist now is replaced by
 *   one `DateLessThan aws:TokenIssueTime` = now (merged with an earlier fallback); sessions that
 *   may not exist yet (pending leases) keep their own entries as long as they fit.
 * @throws DenyPolicyNoRoom when even the role fallback alone exceeds the budget; DenyPolicyFull (principal scope).
 * @example addDenyEntries(emptyDenyState(), [{ kind: 'session', sessionName: 'tvm-L…', expiresAt, issued: true }], now, 10_240)
 */
export function addDenyEntries(state: DenyState, entries: DenyEntry[], nowEpoch: number, budget: number, scope: DenyScope = ROLE_SCOPE): AddResult {
  const pruned = pruneDenyState(state, nowEpoch);
  const next = pruned.state;
  let changed = pruned.entriesRemoved > 0 || pruned.fallbackDropped;
  for (const e of entries) {
    if (e.expiresAt + PRUNE_MARGIN_SECONDS <= nowEpoch) continue; // already expired: nothing to deny
    changed = mergeEntry(next, e) || changed;
  }
  if (denyPolicyChars(next) <= budget) return { state: next, fallback: false, unchanged: !changed };

  const cutoff = issuedBeforeCutoff(nowEpoch);
  if (scope.kind === 'principal') {
    const folded = foldPrincipal(next, scope.sourceIdentity, cutoff);
    const needed = denyPolicyChars(folded);
    if (needed > budget) throw new DenyPolicyFull(budget, needed);
    return { state: folded, fallback: true, fallbackKind: 'principal', fallbackIssuedBefore: folded.sources[scope.sourceIdentity].issuedBefore, unchanged: false };
  }

  let until = next.fallback?.expiresAt ?? 0;
  const kept: DenyState = { sessions: {}, sources: {} };
  for (const [name, s] of Object.entries(next.sessions)) {
    if (s.issued) until = Math.max(until, s.expiresAt);
    else kept.sessions[name] = s;
  }
  for (const s of Object.values(next.sources)) until = Math.max(until, s.expiresAt);
  kept.fallback = { issuedBefore: Math.max(cutoff, next.fallback?.issuedBefore ?? 0), expiresAt: until, engagedAt: Math.floor(nowEpoch) };
  if (denyPolicyChars(kept) > budget) {
    // Sessions that may not exist yet belong to pending leases, which the caller fails before
    // their credentials can leave tvm; folding them into the fallback is the last resort.
    for (const s of Object.values(kept.sessions)) kept.fallback.expiresAt = Math.max(kept.fallback.expiresAt, s.expiresAt);
    kept.sessions = {};
    const needed = denyPolicyChars(kept);
    if (needed > budget) throw new DenyPolicyNoRoom(budget, needed);
  }
  return { state: kept, fallback: true, fallbackKind: 'role', fallbackIssuedBefore: kept.fallback.issuedBefore, unchanged: false };
}

/** Characters one more session adds to a sessions statement that exists: `,"*:<name>"`. */
export function sessionEntryChars(sessionName: string): number {
  return userIdPattern(sessionName).length + 3;
}

/**
 * Characters a new sessions statement (and the document around it) can add beyond its entries:
 * the slack a writer that does not re-render must keep free.
 */
export const SESSIONS_STATEMENT_CHARS = denyPolicyChars({ sessions: { x: { expiresAt: 0, issued: true } }, sources: {} }) - sessionEntryChars('x') + 2;
