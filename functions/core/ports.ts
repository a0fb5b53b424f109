/**
 * The ports: what the use cases need from the world. Adapters implement them (one file per
 * technology in functions/adapters); tests pass small fakes.
 */
import type { JWTVerifyGetKey } from 'jose';

export type LeaseStatus = 'pending' | 'active' | 'revoked' | 'expired' | 'failed';

/** One entry of a lease's history. `at` is ISO-8601. Never carries a secret. */
export interface LeaseEvent {
  at: string;
  type: string;
  by?: string;
  reason?: string;
  detail?: Record<string, unknown>;
}

export interface RequestContext {
  task?: string;
  tool?: string;
  sensitivity?: 'public' | 'internal' | 'confidential' | 'restricted';
  environment?: string;
}

/** The record of one issuance. Stores exactly what its revocation needs; no secret. */
export interface Lease {
  leaseId: string;
  status: LeaseStatus;
  principal: string;
  issuer: string;
  sub: string;
  grant: string;
  roleArn: string;
  sessionName: string;
  sourceIdentity: string;
  accessKeyId?: string;
  context: RequestContext;
  decision: string[];
  tokenSha256: string;
  durationSeconds: number;
  /** ISO-8601. */
  issuedAt: string;
  /** ISO-8601; for a pending lease, the latest the session could expire. */
  expiresAt: string;
  revokedAt?: string;
  revokeReason?: string;
  revokedBy?: string;
  /** The session policy sent to STS with this lease's AssumeRole, as rendered (JSON text). */
  sessionPolicy?: string;
  /** The session tags sent to STS. */
  sessionTags?: Record<string, string>;
  /** Epoch seconds: DynamoDB TTL deletes the record after this (retention past expiresAt). */
  ttl: number;
  events: LeaseEvent[];
}

export interface LeaseQuery {
  principal?: string;
  grant?: string;
  issuer?: string;
  /** `context.task`. */
  task?: string;
  status?: LeaseStatus;
  /** Only `pending` or `active` leases (bulk revocation). */
  live?: boolean;
  /** ISO-8601 bounds on `issuedAt`, inclusive. */
  since?: string;
  until?: string;
  /** Page size (default 100, at most 1000). */
  limit?: number;
  /** The opaque cursor a previous page answered as `next`. */
  next?: string;
}

/** One page of leases and, when more exist, the cursor of the next. */
export interface LeasePage {
  leases: Lease[];
  next?: string;
}

export interface LeaseStore {
  /** Writes a new pending lease; fails if the id exists. */
  createPending(lease: Lease): Promise<void>;
  /** pending → active with the key id and the session's real expiry. */
  activate(leaseId: string, accessKeyId: string, expiresAt: string, event: LeaseEvent): Promise<Lease>;
  /** pending → failed. */
  fail(leaseId: string, event: LeaseEvent): Promise<void>;
  get(leaseId: string): Promise<Lease | undefined>;
  /** Up to `query.limit` leases matching `query` (pages through `page`; newest first). */
  list(query: LeaseQuery): Promise<Lease[]>;
  /**
   * One page of leases matching `query`, through an index where one fits (principal; live
   * statuses), and `next` exactly when more exist.
   * @throws InvalidRequest `bad_cursor` for a cursor this store did not make for this kind of query.
   */
  page(query: LeaseQuery): Promise<LeasePage>;
  /**
   * Moves a lease from one of `from` to `to`, setting `fields` and appending `event`.
   * Answers the updated lease, or undefined when the lease was not in one of `from`.
   */
  transition(
    leaseId: string,
    from: LeaseStatus[],
    to: LeaseStatus,
    fields: Partial<Pick<Lease, 'revokedAt' | 'revokeReason' | 'revokedBy'>>,
    event: LeaseEvent,
  ): Promise<Lease | undefined>;
  /** Leases in `pending` or `active` whose due time (expiry, or the pending bound) is ≤ `dueBy` (epoch s). */
  listDue(dueBy: number, cursor?: string, limit?: number): Promise<{ leases: Lease[]; cursor?: string }>;
  /** Every `pending` or `active` lease, paged (bulk revocation). */
  listLive(cursor?: string, limit?: number): Promise<{ leases: Lease[]; cursor?: string }>;
}

/** Fixed-window counters (the per-principal rate). */
export interface RateLimiter {
  /**
   * Counts one request against `key` in the window of `windowSeconds` that holds `nowEpoch`.
   * Answers false, counting nothing, when that window already holds `max`.
   */
  take(key: string, max: number, windowSeconds: number, nowEpoch: number): Promise<boolean>;
}

/** Single-use token guard: accepts each key once until `expiresAtEpoch`. */
export interface ReplayGuard {
  /** Resolves true the first time, false on a replay. */
  claim(key: string, expiresAtEpoch: number): Promise<boolean>;
}

export interface AssumeRoleInput {
  roleArn: string;
  sessionName: string;
  sourceIdentity: string;
  durationSeconds: number;
  policy: string;
  tags: Record<string, string>;
}

export interface IssuedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** ISO-8601. */
  expiration: string;
  assumedRoleArn?: string;
  assumedRoleId?: string;
}

export interface CredentialIssuer {
  assumeRole(input: AssumeRoleInput): Promise<IssuedCredentials>;
}

/** A decision by the policy engine: `allow` and the ids of the policies that decided. */
export interface Decision {
  allow: boolean;
  policyIds: string[];
  errors: string[];
}

export interface AuthzRequest {
  principal: { issuer: string; iss: string; sub: string; claims: Record<string, unknown> };
  action: 'vend' | 'broker' | 'revoke';
  resource: { type: 'Grant' | 'Vendor'; id: string };
  context: Record<string, unknown>;
}

export interface PolicyEngine {
  decide(request: AuthzRequest): Decision;
}

/** Resolves the jose key source of a configured issuer (remote JWKS, cached). */
export type KeyResolver = (issuerName: string) => JWTVerifyGetKey;

/** Fields a use case fills in for its request's one audit event, on every path. */
export type AuditRecord = Record<string, unknown>;

/** The audit sink: one structured event per request and per state change. */
export interface Audit {
  event(type: string, fields: Record<string, unknown>): void;
}

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export interface IdGenerator {
  leaseId(): string;
}

/**
 * One thing to deny on a role (revocation and the sweep's settlement):
 * - `session`: one STS session, by its session name (`tvm-<leaseId>`);
 * - `source`: every session of one principal (`aws:SourceIdentity`) issued before `issuedBefore`.
 * `expiresAt` (epoch seconds) is when every session the entry targets has expired anyway: after
 * it the entry is pruned. `issued: false` marks a session that may not exist at STS yet (a
 * pending lease), which a `TokenIssueTime` fallback must not be trusted to cover.
 */
export type DenyEntry =
  | { kind: 'session'; sessionName: string; expiresAt: number; issued: boolean; sourceIdentity?: string }
  | { kind: 'source'; sourceIdentity: string; issuedBefore: number; expiresAt: number };

/**
 * Who a deny acts for. `role`: an admin or tvm itself, which may fall back to denying every
 * session of the role. `principal`: a workload revoking its own lease, which may fall back only
 * to denying its own sessions (that `SourceIdentity`).
 */
export type DenyScope = { kind: 'role' } | { kind: 'principal'; sourceIdentity: string };

export interface DenyOutcome {
  /** True when this call engaged (or moved) a fallback. */
  fallback: boolean;
  /** Which fallback this call engaged: every session of the role, or the scope's principal's. */
  fallbackKind?: 'role' | 'principal';
  /**
   * Epoch seconds: sessions issued before it are denied by the fallback (for `role`, also when
   * an earlier role fallback is in force).
   */
  fallbackIssuedBefore?: number;
  /** The deny policy's size after the call (characters, whitespace not counted). */
  policyChars: number;
}

export interface PruneOutcome {
  entriesRemoved: number;
  fallbackDropped: boolean;
  /** The role's deny policy is gone (nothing left to deny). */
  empty: boolean;
}

/**
 * The tvm-owned deny policy on grant roles. Writes are read-modify-write guarded: concurrent
 * calls on one role never lose each other's entries. An admin's call never fails for lack of
 * room (the `aws:TokenIssueTime` fallback takes over); a workload's own call falls back only to its
 * own sessions, and fails (`deny_policy_full`) when even that cannot fit.
 */
export interface RoleRevoker {
  /**
   * Adds entries to the role's deny policy (idempotent: an entry already present is kept once).
   * `scope` (default `role`) bounds the fallback; a workload's own revocation passes `principal`.
   */
  deny(roleArn: string, entries: DenyEntry[], scope?: DenyScope): Promise<DenyOutcome>;
  /** Removes entries (and the fallback) whose sessions have all expired by `nowEpoch`. */
  prune(roleArn: string, nowEpoch: number): Promise<PruneOutcome>;
  /** Roles whose deny policy has something to prune by `dueBy` (epoch s), paged through an index. */
  listPrunable(dueBy: number, cursor?: string, limit?: number): Promise<{ roleArns: string[]; cursor?: string }>;
}

/** Counters behind the alarms (the shared Metrics satisfies it). */
export interface Counter {
  count(name: 'RevocationFallback' | 'SweepSettled' | 'SweepErrors', value?: number): void;
}
