/**
 * Admin revocation: one lease, or every live lease of a principal, a grant, an issuer, or all.
 * Pages over the live leases (the sparse index), and per page and role writes the deny entries in
 * one call before recording each revocation, so a bulk revocation costs one policy write per role
 * per page, not one per lease.
 */
import { issuedBeforeCutoff } from './deny-policy.js';
import { NotFound } from './errors.js';
import type { DenyEntry, Lease } from './ports.js';
import { epochOf, noteFallback, recordRevocation, revokeLease, type RevokeActor, type RevokeDeps, sessionDenyFor } from './revoke-lease.js';

export type RevokeSelector =
  | { leaseId: string }
  | { principal: string }
  | { grant: string }
  | { issuer: string }
  | { all: true };

export interface BulkRevokeResult {
  /** Leases this call moved out of a live state. */
  revoked: number;
  /** Roles whose deny policy fell back to `aws:TokenIssueTime`. */
  fallbacks: number;
}

export interface BulkRevokeOptions {
  pageSize?: number;
  /** Lease transitions in flight at once. */
  concurrency?: number;
}

function matches(selector: RevokeSelector, lease: Lease): boolean {
  if ('principal' in selector) return lease.principal === selector.principal;
  if ('grant' in selector) return lease.grant === selector.grant;
  if ('issuer' in selector) return lease.issuer === selector.issuer;
  return 'all' in selector;
}

/** Runs `fn` over `items`, at most `limit` at once. */
export async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(workers);
}

/**
 * The entries that deny a group of leases on one role. A principal's active sessions are denied
 * together by `SourceIdentity` before now; sessions that may not exist yet (pending) by name.
 */
export function denyEntriesFor(leases: Lease[], nowEpoch: number, byPrincipal: boolean): DenyEntry[] {
  if (!byPrincipal) return leases.map(sessionDenyFor);
  const entries: DenyEntry[] = [];
  const sources = new Map<string, number>();
  for (const l of leases) {
    if (l.status === 'active') sources.set(l.sourceIdentity, Math.max(sources.get(l.sourceIdentity) ?? 0, epochOf(l.expiresAt)));
    else entries.push(sessionDenyFor(l));
  }
  for (const [sourceIdentity, expiresAt] of sources) {
    entries.push({ kind: 'source', sourceIdentity, issuedBefore: issuedBeforeCutoff(nowEpoch), expiresAt });
  }
  return entries;
}

/**
 * Revokes every live lease the selector names, with a required reason.
 * @throws NotFound for an unknown `leaseId`.
 * @example await revokeLeases(deps, { principal: 'github|repo:acme/app' }, { by: adminArn, reason: 'compromised runner' })
 */
export async function revokeLeases(
  deps: RevokeDeps,
  selector: RevokeSelector,
  actor: RevokeActor,
  options: BulkRevokeOptions = {},
): Promise<BulkRevokeResult> {
  if ('leaseId' in selector) {
    const lease = await deps.leases.get(selector.leaseId);
    if (!lease) throw new NotFound('lease_not_found', { leaseId: selector.leaseId });
    const out = await revokeLease(deps, lease, actor);
    return { revoked: out.changed ? 1 : 0, fallbacks: 0 };
  }
  const pageSize = options.pageSize ?? 100;
  const concurrency = options.concurrency ?? 16;
  const byPrincipal = 'principal' in selector;
  const result: BulkRevokeResult = { revoked: 0, fallbacks: 0 };
  let cursor: string | undefined;
  do {
    const page = await deps.leases.listLive(cursor, pageSize);
    cursor = page.cursor;
    const byRole = new Map<string, Lease[]>();
    for (const l of page.leases) {
      if (!matches(selector, l) || (l.status !== 'active' && l.status !== 'pending')) continue;
      byRole.set(l.roleArn, [...(byRole.get(l.roleArn) ?? []), l]);
    }
    for (const [roleArn, leases] of byRole) {
      const out = await deps.revoker.deny(roleArn, denyEntriesFor(leases, Math.floor(deps.clock.now() / 1000), byPrincipal));
      if (out.fallback) {
        result.fallbacks++;
        noteFallback(deps, roleArn, out.fallbackIssuedBefore, { by: actor.by, leases: leases.length });
      }
      await forEachLimited(leases, concurrency, async (lease) => {
        const r = await recordRevocation(deps, lease, actor, out.fallback ? { fallback: true } : {});
        if (r.changed) result.revoked++;
      });
    }
  } while (cursor);
  deps.audit.event('bulk_revoke', { selector, by: actor.by, reason: actor.reason, ...result });
  return result;
}
