/**
 * Small in-memory fakes of the ports the revocation and sweep use cases need.
 */
import { addDenyEntries, type DenyState, emptyDenyState, INLINE_POLICY_BUDGET, isEmptyDenyState, nextPruneAt, pruneDenyState } from '../../functions/core/deny-policy.js';
import { canTransition, dueAt, isLive } from '../../functions/core/lease.js';
import type { Audit, Clock, DenyEntry, DenyOutcome, DenyScope, Lease, LeaseQuery, LeaseStatus, LeaseStore, PruneOutcome, RoleRevoker } from '../../functions/core/ports.js';

export const T0 = Date.parse('2030-01-01T00:00:00Z');

export function fixedClock(ms = T0): Clock & { set(ms: number): void; advance(s: number): void } {
  let now = ms;
  return { now: () => now, set: (m) => void (now = m), advance: (s) => void (now += s * 1000) };
}

let seq = 0;
export function leaseId(): string {
  const n = String(seq++).padStart(8, '0').replace(/\d/g, (d) => 'wxyz234567'[Number(d)]);
  return `L${n.padStart(26, 'a')}`;
}

export function makeLease(over: Partial<Lease> = {}, clock: Clock = fixedClock()): Lease {
  const id = over.leaseId ?? leaseId();
  const issued = clock.now();
  const principal = over.principal ?? 'dev|alice';
  const [issuer, sub] = principal.split('|');
  return {
    leaseId: id,
    status: 'active',
    principal,
    issuer,
    sub,
    grant: 'reports-read',
    roleArn: 'arn:aws:iam::123456789012:role/tvm/reports-read',
    sessionName: `tvm-${id}`,
    sourceIdentity: `${issuer}.${sub}`,
    accessKeyId: 'ASIAFAKE',
    context: {},
    decision: ['p'],
    tokenSha256: 'x'.repeat(64),
    durationSeconds: 900,
    issuedAt: new Date(issued).toISOString(),
    expiresAt: new Date(issued + 900_000).toISOString(),
    ttl: Math.floor(issued / 1000) + 900 + 86400,
    events: [{ at: new Date(issued).toISOString(), type: 'issued' }],
    ...over,
  };
}

/** A LeaseStore over a Map, with the due index's semantics; `failOn` injects faults. */
export class MemoryLeaseStore implements LeaseStore {
  readonly items = new Map<string, Lease>();
  failOn: { listDueCall?: number; transition?: (id: string) => boolean } = {};
  private listDueCalls = 0;

  constructor(private readonly pendingTimeoutSeconds = 300) {}

  put(...leases: Lease[]): void {
    for (const l of leases) this.items.set(l.leaseId, structuredClone(l));
  }
  async createPending(lease: Lease): Promise<void> {
    if (this.items.has(lease.leaseId)) throw new Error('exists');
    this.put(lease);
  }
  async activate(): Promise<Lease> {
    throw new Error('not used');
  }
  async fail(): Promise<void> {
    throw new Error('not used');
  }
  async get(id: string): Promise<Lease | undefined> {
    const l = this.items.get(id);
    return l && structuredClone(l);
  }
  /** Calls of `page`, in order (tests: which query bulk revocation asked). */
  readonly queries: LeaseQuery[] = [];
  private matching(q: LeaseQuery): Lease[] {
    return [...this.items.values()]
      .filter(
        (l) =>
          (q.principal === undefined || l.principal === q.principal) &&
          (q.grant === undefined || l.grant === q.grant) &&
          (q.issuer === undefined || l.issuer === q.issuer) &&
          (q.task === undefined || l.context.task === q.task) &&
          (q.status === undefined || l.status === q.status) &&
          (!q.live || isLive(l.status)),
      )
      .sort((a, b) => b.issuedAt.localeCompare(a.issuedAt) || a.leaseId.localeCompare(b.leaseId));
  }
  async list(q: LeaseQuery): Promise<Lease[]> {
    return this.matching(q).slice(0, q.limit ?? 100);
  }
  async page(q: LeaseQuery) {
    this.queries.push(q);
    const all = this.matching(q);
    // The cursor is a position in the order (as the store's key is), so leases revoked behind it do not shift it.
    const pos = (l: Lease) => `${l.issuedAt}|${l.leaseId}`;
    const after = q.next ? all.filter((l) => (l.issuedAt === q.next!.split('|')[0] ? l.leaseId > q.next!.split('|')[1] : l.issuedAt < q.next!.split('|')[0])) : all;
    const leases = after.slice(0, q.limit ?? 100).map((l) => structuredClone(l));
    return { leases, next: leases.length < after.length ? pos(leases[leases.length - 1]) : undefined };
  }
  async transition(id: string, from: LeaseStatus[], to: LeaseStatus, fields: Partial<Lease>, event: Lease['events'][number]): Promise<Lease | undefined> {
    if (this.failOn.transition?.(id)) throw new Error('injected transition failure');
    // the same refusal as the real store: only moves core/lease.ts allows
    if (!from.length || from.some((f) => !canTransition(f, to)) || isLive(to)) throw new Error(`illegal lease transition: ${from.join('|')} → ${to}`);
    const l = this.items.get(id);
    if (!l || !from.includes(l.status)) return undefined;
    Object.assign(l, fields, { status: to });
    l.events.push(event);
    return structuredClone(l);
  }
  private livePage(filter: (l: Lease) => boolean, cursor: string | undefined, limit: number) {
    const all = [...this.items.values()].filter((l) => isLive(l.status) && filter(l)).sort((a, b) => a.leaseId.localeCompare(b.leaseId));
    const after = cursor ? all.filter((l) => l.leaseId > cursor) : all;
    const leases = after.slice(0, limit).map((l) => structuredClone(l));
    return { leases, cursor: after.length > limit ? leases[leases.length - 1].leaseId : undefined };
  }
  async listDue(dueBy: number, cursor?: string, limit = 100) {
    if (this.failOn.listDueCall !== undefined && ++this.listDueCalls === this.failOn.listDueCall) throw new Error('injected page failure');
    return this.livePage((l) => dueAt(l, this.pendingTimeoutSeconds)! <= dueBy, cursor, limit);
  }
  async listLive(cursor?: string, limit = 100) {
    return this.livePage(() => true, cursor, limit);
  }
}

/** A RoleRevoker over the pure deny-policy functions, one state per role. */
export class MemoryRevoker implements RoleRevoker {
  readonly states = new Map<string, DenyState>();
  readonly calls: { roleArn: string; entries: DenyEntry[]; scope?: DenyScope }[] = [];
  failDeny = false;
  constructor(
    private readonly clock: Clock,
    private readonly budget = INLINE_POLICY_BUDGET,
  ) {}
  async deny(roleArn: string, entries: DenyEntry[], scope?: DenyScope): Promise<DenyOutcome> {
    if (this.failDeny) throw new Error('injected IAM failure');
    this.calls.push({ roleArn, entries, scope });
    const r = addDenyEntries(this.states.get(roleArn) ?? emptyDenyState(), entries, Math.floor(this.clock.now() / 1000), this.budget, scope);
    this.states.set(roleArn, r.state);
    return { fallback: r.fallback, fallbackKind: r.fallbackKind, fallbackIssuedBefore: r.fallbackIssuedBefore ?? r.state.fallback?.issuedBefore, policyChars: 0 };
  }
  async prune(roleArn: string, nowEpoch: number): Promise<PruneOutcome> {
    const r = pruneDenyState(this.states.get(roleArn) ?? emptyDenyState(), nowEpoch);
    this.states.set(roleArn, r.state);
    return { entriesRemoved: r.entriesRemoved, fallbackDropped: r.fallbackDropped, empty: isEmptyDenyState(r.state) };
  }
  async listPrunable(dueBy: number) {
    return { roleArns: [...this.states].filter(([, s]) => (nextPruneAt(s) ?? Infinity) <= dueBy).map(([r]) => r) };
  }
  /** Is this session denied right now (by name, by source identity, or by the fallback)? */
  denies(lease: Lease, tokenIssueEpoch = Math.floor(Date.parse(lease.issuedAt) / 1000)): boolean {
    const s = this.states.get(lease.roleArn);
    if (!s) return false;
    if (s.sessions[lease.sessionName]) return true;
    const src = s.sources[lease.sourceIdentity];
    if (src && tokenIssueEpoch < src.issuedBefore) return true;
    return !!s.fallback && tokenIssueEpoch < s.fallback.issuedBefore;
  }
}

export function memoryAudit(): Audit & { events: { type: string; fields: Record<string, unknown> }[] } {
  const events: { type: string; fields: Record<string, unknown> }[] = [];
  return { events, event: (type, fields) => void events.push({ type, fields }) };
}

export function memoryCounter() {
  const counts: Record<string, number> = {};
  return { counts, count: (name: string, value = 1) => void (counts[name] = (counts[name] ?? 0) + value) };
}
