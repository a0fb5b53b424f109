/**
 * The lease model: identifiers, the state machine, the due time, and what is safe to show.
 * The state machine is data (`TRANSITIONS`), and it is the one source: the lease store derives its
 * conditions from it (`sourcesOf`), the sweep and revocation ask it where a lease goes
 * (`transition`), and the store's due index and the sweep share `dueAt`/`isExpired`.
 */
import { createHash } from 'node:crypto';
import type { Lease, LeaseStatus } from './ports.js';

/** What can happen to a lease. */
export type LeaseMove = 'activate' | 'fail' | 'revoke' | 'expire';

/**
 * Where each move takes a lease from each state; a move missing from a state is refused there.
 * Terminal states (revoked, expired, failed) move nowhere. Revoking a pending lease fails it: its
 * credentials never left tvm, and `activate` will refuse it.
 */
export const TRANSITIONS: Readonly<Record<LeaseStatus, Readonly<Partial<Record<LeaseMove, LeaseStatus>>>>> = {
  pending: { activate: 'active', fail: 'failed', revoke: 'failed' },
  active: { revoke: 'revoked', expire: 'expired' },
  revoked: {},
  expired: {},
  failed: {},
};

export const LEASE_STATUSES = Object.keys(TRANSITIONS) as LeaseStatus[];

/** The state `move` takes a lease in `from` to, or undefined when the move is not allowed there. */
export function transition(from: LeaseStatus, move: LeaseMove): LeaseStatus | undefined {
  return TRANSITIONS[from][move];
}

/** Whether some move takes a lease from `from` to `to`. */
export function canTransition(from: LeaseStatus, to: LeaseStatus): boolean {
  return Object.values(TRANSITIONS[from]).includes(to);
}

/** The states from which some move leads to `to`: the condition a store writes `to` under. */
export function sourcesOf(to: LeaseStatus): LeaseStatus[] {
  return LEASE_STATUSES.filter((from) => canTransition(from, to));
}

/** Pending and active leases are live: they sit in the due index and can still be revoked. */
export function isLive(status: LeaseStatus): boolean {
  return Object.keys(TRANSITIONS[status]).length > 0;
}

/** Epoch seconds of an ISO-8601 time (rounded down). */
export function epochSeconds(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
}

/**
 * When the sweep must act on a lease, in epoch seconds: a pending lease `pendingTimeoutSeconds`
 * after it was issued (settle it), an active one when its session expires (expire it). A lease
 * in a terminal state is never due (undefined): it leaves the due index.
 */
export function dueAt(lease: Pick<Lease, 'status' | 'issuedAt' | 'expiresAt'>, pendingTimeoutSeconds: number): number | undefined {
  if (lease.status === 'pending') return epochSeconds(lease.issuedAt) + pendingTimeoutSeconds;
  if (lease.status === 'active') return epochSeconds(lease.expiresAt);
  return undefined;
}

/** An active lease whose session has expired at `nowEpoch` (epoch seconds): the sweep expires it. */
export function isExpired(lease: Pick<Lease, 'status' | 'expiresAt'>, nowEpoch: number): boolean {
  return lease.status === 'active' && epochSeconds(lease.expiresAt) <= nowEpoch;
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
 * (`<issuer>.<sub>`) where it fits, else `<issuer, first 20>=<digest of the principal>`. The two
 * forms cannot meet: an issuer name is `[a-z0-9-]+`, so the first character after it is '.' in
 * the plain form and '=' in the digest form — a `sub` that spells a digest stays plain.
 */
export function sourceIdentityFor(issuer: string, sub: string): string {
  const plain = `${issuer}.${sub}`;
  if (SOURCE_IDENTITY.test(plain)) return plain;
  const digest = createHash('sha256').update(`${issuer}|${sub}`).digest('hex').slice(0, 40);
  return `${issuer.slice(0, 20)}=${digest}`;
}
