/**
 * The lease model: identifiers, the state machine and what is safe to show.
 */
import { createHash } from 'node:crypto';
import type { Lease, LeaseStatus } from './ports.js';

/** Which states a lease may move to from each state. Terminal states move nowhere. */
export const TRANSITIONS: Record<LeaseStatus, readonly LeaseStatus[]> = {
  pending: ['active', 'failed'],
  active: ['revoked', 'expired'],
  revoked: [],
  expired: [],
  failed: [],
};

export function canTransition(from: LeaseStatus, to: LeaseStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isLive(status: LeaseStatus): boolean {
  return status === 'pending' || status === 'active';
}

/** Lease ids are `L` + 26 base32 characters: 130 random bits, safe in session names and URLs. */
export const LEASE_ID = /^L[a-z2-7]{26}$/;

/** The STS session name carries the lease id, so `aws:userid` names the lease. */
export function sessionNameFor(leaseId: string): string {
  return `tvm-${leaseId}`;
}

const SOURCE_IDENTITY = /^[\w+=,.@-]{2,64}$/;

/**
 * A stable `SourceIdentity` for a principal in AWS's character set: the principal itself
 * (with its '|' as '.') where it fits, else the issuer name and a digest of the principal.
 */
export function sourceIdentityFor(issuer: string, sub: string): string {
  const plain = `${issuer}.${sub}`;
  if (SOURCE_IDENTITY.test(plain)) return plain;
  const digest = createHash('sha256').update(`${issuer}|${sub}`).digest('hex').slice(0, 40);
  return `${issuer.slice(0, 20)}.${digest}`;
}
