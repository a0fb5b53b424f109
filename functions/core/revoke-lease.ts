/**
 * Revoking one lease: deny its session on the role first, then record the revocation. In that
 * order a crash between the two leaves a denied session under a live lease (a retry finishes it),
 * never a lease marked revoked whose credentials still work.
 */
import { AccessDenied, NotFound } from './errors.js';
import { epochSeconds, isLive, transition } from './lease.js';
import type { Audit, Clock, Counter, DenyEntry, Lease, LeaseStore, PolicyEngine, RequestContext, RoleRevoker } from './ports.js';
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
  return { kind: 'session', sessionName: lease.sessionName, expiresAt: epochOf(lease.expiresAt), issued: lease.status === 'active' };
}

/** Records a fallback the revoker reported: a metric and an audit event. */
export function noteFallback(deps: Pick<RevokeDeps, 'audit' | 'metrics'>, roleArn: string, issuedBefore: number | undefined, cause: Record<string, unknown>): void {
  deps.metrics?.count('RevocationFallback');
  deps.audit.event('revocation_fallback', { roleArn, issuedBefore, ...cause });
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
export async function revokeLease(deps: RevokeDeps, lease: Lease, actor: RevokeActor): Promise<RevokeOutcome> {
  if (!isLive(lease.status)) return { lease, changed: false };
  const out = await deps.revoker.deny(lease.roleArn, [sessionDenyFor(lease)]);
  if (out.fallback) noteFallback(deps, lease.roleArn, out.fallbackIssuedBefore, { leaseId: lease.leaseId, by: actor.by });
  return recordRevocation(deps, lease, actor, out.fallback ? { fallback: true } : {});
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
  return revokeLease(deps, lease, { by: who.principal, reason: request.reason ?? 'self-revoke' });
}
