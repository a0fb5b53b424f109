/**
 * Admin revocation: one lease, or every live lease of a principal, a grant, an issuer, a task, or
 * all. Pages over the live leases through an index (the principal index for a principal, the
 * sparse due index otherwise — never a table scan), and per page and role writes the deny entries
 * in one call before recording each revocation, so a bulk revocation costs one policy write per
 * role per page, not one per lease. A role whose deny write fails is named in `failed` and the
 * others go on: an incident's revocation must not stop at the first broken account.
 */
import type { TvmConfig } from './config.js';
import { issuedBeforeCutoff } from './deny-policy.js';
import { InvalidRequest, NotFound } from './errors.js';
import type { DenyEntry, DenyOutcome, Lease, LeaseQuery } from './ports.js';
import { epochOf, noteFallback, recordFallbackKills, recordRevocation, revokeLease, type RevokeActor, type RevokeDeps, sessionDenyFor } from './revoke-lease.js';

export type RevokeSelector =
  | { leaseId: string }
  | { principal: string }
  | { grant: string }
  | { issuer: string }
  | { task: string }
  | { all: true };

/** What could not be revoked: the leases of one role whose deny write (or record) failed. */
export interface RevokeFailure {
  roleArn: string;
  leaseIds: string[];
  /** A stable code (`deny_failed`, `record_failed`); the error itself goes to the log. */
  reason: string;
}

export interface BulkRevokeResult {
  /** Leases this call moved out of a live state. */
  revoked: number;
  /** Their ids (with `dryRun`: the ids it would revoke). */
  leaseIds: string[];
  /** Roles whose deny policy fell back to `aws:TokenIssueTime` during this call (distinct roles). */
  fallbacks: number;
  /** Present when something could not be revoked. */
  failed?: RevokeFailure[];
  dryRun?: true;
}

export interface BulkRevokeOptions {
  pageSize?: number;
  /** Lease transitions in flight at once. */
  concurrency?: number;
  /** List what would be revoked; write nothing. */
  dryRun?: boolean;
}

export interface BulkRevokeDeps extends RevokeDeps {
  /** The configured grants and issuers: a selector naming neither is a 404, not "revoked 0". */
  config: Pick<TvmConfig, 'grants' | 'issuers'>;
}

/** `issuer|sub`, the only form a principal has. */
export const PRINCIPAL_FORM = /^[^|\s]+\|\S.*$/;

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
 * The live-lease query a selector names, after checking it names something that exists.
 * @throws InvalidRequest for a principal not of the form `issuer|sub`; NotFound for an unknown grant or issuer.
 */
export function queryFor(config: BulkRevokeDeps['config'], selector: Exclude<RevokeSelector, { leaseId: string }>): LeaseQuery {
  const knownIssuer = (name: string) => config.issuers.some((i) => i.name === name);
  if ('principal' in selector) {
    if (!PRINCIPAL_FORM.test(selector.principal)) throw new InvalidRequest('bad_principal', { principal: selector.principal }, 'Invalid field: principal.');
    const issuer = selector.principal.slice(0, selector.principal.indexOf('|'));
    if (!knownIssuer(issuer)) throw new NotFound('unknown_issuer', { issuer });
    return { principal: selector.principal, live: true };
  }
  if ('grant' in selector) {
    if (!config.grants.some((g) => g.name === selector.grant)) throw new NotFound('unknown_grant', { grant: selector.grant });
    return { grant: selector.grant, live: true };
  }
  if ('issuer' in selector) {
    if (!knownIssuer(selector.issuer)) throw new NotFound('unknown_issuer', { issuer: selector.issuer });
    return { issuer: selector.issuer, live: true };
  }
  if ('task' in selector) return { task: selector.task, live: true };
  return { live: true };
}

/** Whether a revocation's recorded event says a fallback denied it. */
function fellBack(lease: Lease): boolean {
  // Stryker disable next-line ConditionalExpression: only a 'revoked' event ever carries detail.fallback (recordRevocation writes it; the sweep's 'settled' events carry none)
  return lease.events.some((e) => e.type === 'revoked' && !!e.detail?.fallback);
}

/**
 * Revokes every live lease the selector names, with a required reason.
 * @throws NotFound for an unknown `leaseId`, grant or issuer; InvalidRequest for a malformed principal.
 * @example await revokeLeases(deps, { principal: 'github|repo:acme/app' }, { by: adminArn, reason: 'compromised runner' })
 */
export async function revokeLeases(
  deps: BulkRevokeDeps,
  selector: RevokeSelector,
  actor: RevokeActor,
  options: BulkRevokeOptions = {},
): Promise<BulkRevokeResult> {
  if ('leaseId' in selector) {
    const lease = await deps.leases.get(selector.leaseId);
    if (!lease) throw new NotFound('lease_not_found', { leaseId: selector.leaseId });
    if (options.dryRun) return { revoked: 0, leaseIds: lease.status === 'active' || lease.status === 'pending' ? [lease.leaseId] : [], fallbacks: 0, dryRun: true };
    const out = await revokeLease(deps, lease, actor);
    return { revoked: out.changed ? 1 : 0, leaseIds: out.changed ? [lease.leaseId] : [], fallbacks: out.changed && fellBack(out.lease) ? 1 : 0 };
  }
  const query = queryFor(deps.config, selector);
  const pageSize = options.pageSize ?? 100;
  const concurrency = options.concurrency ?? 16;
  const byPrincipal = 'principal' in selector;
  const leaseIds: string[] = [];
  const failed: RevokeFailure[] = [];
  const fallbackRoles = new Set<string>();
  /** Per role, the latest fallback: the leases it killed are recorded once every page is done. */
  const fallbackOutcomes = new Map<string, DenyOutcome>();
  let next: string | undefined;
  do {
    const page = await deps.leases.page({ ...query, limit: pageSize, next });
    next = page.next;
    const byRole = new Map<string, Lease[]>();
    for (const l of page.leases) {
      if (l.status !== 'active' && l.status !== 'pending') continue;
      byRole.set(l.roleArn, [...(byRole.get(l.roleArn) ?? []), l]);
    }
    if (options.dryRun) {
      for (const leases of byRole.values()) leaseIds.push(...leases.map((l) => l.leaseId));
      continue;
    }
    for (const [roleArn, leases] of byRole) {
      let out;
      try {
        out = await deps.revoker.deny(roleArn, denyEntriesFor(leases, Math.floor(deps.clock.now() / 1000), byPrincipal));
      } catch (e) {
        failed.push({ roleArn, leaseIds: leases.map((l) => l.leaseId), reason: 'deny_failed' });
        deps.audit.event('revoke_failed', { roleArn, leases: leases.length, by: actor.by, reason: actor.reason, error: (e as Error).message });
        continue;
      }
      if (out.fallback) {
        fallbackRoles.add(roleArn);
        noteFallback(deps, roleArn, out.fallbackIssuedBefore, { by: actor.by, leases: leases.length });
      }
      const unrecorded: string[] = [];
      await forEachLimited(leases, concurrency, async (lease) => {
        try {
          const r = await recordRevocation(deps, lease, actor, out.fallback ? { fallback: out.fallbackKind ?? 'role' } : {});
          if (r.changed) leaseIds.push(lease.leaseId);
        } catch {
          // Denied on the role but not recorded: its credentials no longer work; the sweep settles the record.
          unrecorded.push(lease.leaseId);
        }
      });
      if (unrecorded.length) failed.push({ roleArn, leaseIds: unrecorded, reason: 'record_failed' });
      // Stryker disable next-line ConditionalExpression: recordFallbackKills answers 0 at once for an outcome without a fallback, so keeping one changes nothing
      if (out.fallback) fallbackOutcomes.set(roleArn, out);
    }
  } while (next);
  // After the pages: the leases the selector names are recorded with the admin's reason first.
  for (const [roleArn, out] of fallbackOutcomes) await recordFallbackKills(deps, roleArn, out, actor);
  const result: BulkRevokeResult = {
    revoked: options.dryRun ? 0 : leaseIds.length,
    leaseIds,
    fallbacks: fallbackRoles.size,
    ...(failed.length ? { failed } : {}),
    ...(options.dryRun ? { dryRun: true as const } : {}),
  };
  deps.audit.event(options.dryRun ? 'bulk_revoke_dry_run' : 'bulk_revoke', {
    selector,
    by: actor.by,
    reason: actor.reason,
    revoked: result.revoked,
    leaseIds,
    fallbacks: result.fallbacks,
    ...(failed.length ? { failed } : {}),
  });
  return result;
}
