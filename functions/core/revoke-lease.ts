/**
 * Revoking one lease: deny its session on the role first, then record the revocation. In that
 * order a crash between the two leaves a denied session under a live lease (a retry finishes it),
 * never a lease marked revoked whose credentials still work.
 */
import { isoSeconds, ROLE_SCOPE } from './deny-policy.js';
import { AccessDenied, NotFound } from './errors.js';
import { epochSeconds, isLive, transition } from './lease.js';
import { allLeases } from './lease-pages.js';
import type { Audit, Clock, Counter, DenyEntry, DenyOutcome, DenyScope, Lease, LeaseStore, PolicyEngine, RequestContext, RoleRevoker } from './ports.js';
import { cedarContext } from './vend-credentials.js';
import { principalOf, requireAllow } from './decision.js';
import type { VerifiedToken } from './verify-token.js';

export interface RevokeDeps {
  leases: LeaseStore;
  revoker: RoleRevoker;
  clock: Clock;
  audit: Audit;
  metrics?: Counter;
}

export interface RevokeActor {
  /** Who asked: a principal (self-revoke) or an admin identity. */
  by: string;
  reason: string;
}

export interface RevokeOutcome {
  lease: Lease;
  /** This call moved the lease out of a live state (false: it already was revoked, expired or failed). */
  changed: boolean;
}

/** Epoch seconds of an ISO-8601 time (core/lease.ts). */
export const epochOf = epochSeconds;

/** The deny entry for a lease's session: until the session expires; `issued` once STS answered. */
export function sessionDenyFor(lease: Lease): DenyEntry {
  return { kind: 'session', sessionName: lease.sessionName, expiresAt: epochOf(lease.expiresAt), issued: lease.status === 'active', sourceIdentity: lease.sourceIdentity };
}

/** A workload's own revocation: its fallback may deny only its own sessions. */
export function principalScope(lease: Lease): DenyScope {
  return { kind: 'principal', sourceIdentity: lease.sourceIdentity };
}

/** Records a fallback the revoker reported: a metric and an audit event. */
export function noteFallback(deps: Pick<RevokeDeps, 'audit' | 'metrics'>, roleArn: string, issuedBefore: number | undefined, cause: Record<string, unknown>): void {
  deps.metrics?.count('RevocationFallback');
  deps.audit.event('revocation_fallback', { roleArn, issuedBefore, ...cause });
}

/** Epoch ms by which STS had surely issued a lease's session: its `issued` event, else its request. */
function issuedByMs(lease: Lease): number {
  const issued = lease.events.find((e) => e.type === 'issued');
  return Date.parse(issued?.at ?? lease.issuedAt);
}

/**
 * Records every live lease a fallback of `out` killed as revoked (a pending one as failed), with
 * the fallback named in its `revokeReason` (`fallback:role` or `fallback:principal`) and event:
 * the leases of the role (or of `principal` on it) whose session STS issued before the cutoff.
 * Sequential: a principal's live leases are few (`maxLiveLeasesPerPrincipal`), and a role-wide
 * fallback is an admin's rare act. Answers how many leases it moved.
 */
export async function recordFallbackKills(deps: RevokeDeps, roleArn: string, out: DenyOutcome, actor: RevokeActor, principal?: string): Promise<number> {
  if (!out.fallback || out.fallbackIssuedBefore === undefined) return 0;
  const kind = out.fallbackKind ?? 'role';
  if (kind === 'principal' && principal === undefined) return 0;
  const cutoffMs = out.fallbackIssuedBefore * 1000;
  const killed = (l: Lease) =>
    l.roleArn === roleArn &&
    // Stryker disable next-line ConditionalExpression: for kind principal the victims come from the store's principal query, so the principal test only repeats it
    (kind === 'role' || l.principal === principal) &&
    issuedByMs(l) < cutoffMs;
  const victims: Lease[] = [];
  if (kind === 'principal') {
    victims.push(...(await allLeases(deps.leases, { principal, live: true })).filter(killed));
  } else {
    let cursor: string | undefined;
    do {
      const page = await deps.leases.listLive(cursor);
      victims.push(...page.leases.filter(killed));
      cursor = page.cursor;
    } while (cursor);
  }
  const detail = { fallback: kind, issuedBefore: isoSeconds(out.fallbackIssuedBefore), trigger: actor.reason };
  let moved = 0;
  for (const lease of victims) {
    const r = await recordRevocation(deps, lease, { by: actor.by, reason: `fallback:${kind}` }, detail);
    if (r.changed) moved++;
  }
  return moved;
}

/**
 * Moves a live lease to its revoked end state after its session is denied: `active → revoked`,
 * `pending → failed` (its credentials have not left tvm; `activate` will refuse). Retries when
 * the lease moved meanwhile (a pending lease activated). Answers the lease as it ends up.
 */
export async function recordRevocation(
  deps: RevokeDeps,
  lease: Lease,
  actor: RevokeActor,
  detail: Record<string, unknown> = {},
  eventType: 'revoked' | 'settled' = 'revoked',
): Promise<RevokeOutcome> {
  let current: Lease | undefined = lease;
  for (let i = 0; i < 3 && current; i++) {
    const to = transition(current.status, 'revoke');
    if (!to) return { lease: current, changed: false };
    const at = new Date(deps.clock.now()).toISOString();
    const moved = await deps.leases.transition(
      current.leaseId,
      [current.status],
      to,
      { revokedAt: at, revokeReason: actor.reason, revokedBy: actor.by },
      { at, type: eventType, by: actor.by, reason: actor.reason, ...(Object.keys(detail).length ? { detail } : {}) },
    );
    if (moved) {
      deps.audit.event(`lease_${eventType}`, {
        leaseId: moved.leaseId,
        principal: moved.principal,
        grant: moved.grant,
        roleArn: moved.roleArn,
        status: moved.status,
        by: actor.by,
        reason: actor.reason,
        ...detail,
      });
      return { lease: moved, changed: true };
    }
    current = await deps.leases.get(current.leaseId);
  }
  if (!current) throw new NotFound('lease_not_found', { leaseId: lease.leaseId });
  return { lease: current, changed: false };
}

/**
 * Revokes one lease: denies its session on the role, then records who revoked it and why.
 * Idempotent: a lease no longer live is answered as it is.
 * @example const { lease } = await revokeLease(deps, lease, { by: 'admin', reason: 'compromised' });
 */
export async function revokeLease(deps: RevokeDeps, lease: Lease, actor: RevokeActor, scope: DenyScope = ROLE_SCOPE): Promise<RevokeOutcome> {
  if (!isLive(lease.status)) return { lease, changed: false };
  const out = await deps.revoker.deny(lease.roleArn, [sessionDenyFor(lease)], scope);
  if (!out.fallback) return recordRevocation(deps, lease, actor);
  const kind = out.fallbackKind ?? 'role';
  noteFallback(deps, lease.roleArn, out.fallbackIssuedBefore, { leaseId: lease.leaseId, by: actor.by, fallback: kind });
  const outcome = await recordRevocation(deps, lease, actor, { fallback: kind });
  await recordFallbackKills(deps, lease.roleArn, out, actor, lease.principal);
  return outcome;
}

export interface SelfRevokeDeps extends RevokeDeps {
  policy: PolicyEngine;
}

export interface SelfRevokeRequest {
  who: VerifiedToken;
  leaseId: string;
  reason?: string;
  sourceIp?: string;
}

/**
 * A principal revokes one of its own leases (Cedar action `revoke` on the lease's grant).
 * Another principal's lease answers NotFound, exactly like an unknown one.
 * @throws NotFound, AccessDenied (policy)
 */
export async function revokeOwnLease(deps: SelfRevokeDeps, request: SelfRevokeRequest, record: Record<string, unknown> = {}): Promise<RevokeOutcome> {
  const { who } = request;
  const lease = await deps.leases.get(request.leaseId);
  if (!lease || lease.principal !== who.principal) throw new NotFound('lease_not_found', { leaseId: request.leaseId });
  record.leaseId = lease.leaseId;
  record.grant = lease.grant;
  const decision = deps.policy.decide({
    principal: principalOf(who),
    action: 'revoke',
    resource: { type: 'Grant', id: lease.grant },
    context: cedarContext(lease.context as RequestContext, { sourceIp: request.sourceIp }),
  });
  record.decision = decision.policyIds;
  requireAllow(decision);
  return revokeLease(deps, lease, { by: who.principal, reason: request.reason ?? 'self-revoke' }, principalScope(lease));
}
