/**
 * The scheduled sweep: expire active leases past `expiresAt`, settle pending leases past their
 * bound (deny the session as a revocation would, then mark them failed), prune deny entries whose
 * sessions have expired. It finds work through indexes only, works in pages, and keeps no cursor
 * of its own: a lease it handled leaves the due index, so a rerun after a crash resumes where
 * the last run stopped, and a rerun after a complete run finds nothing to do.
 */
import { forEachLimited } from './revoke-bulk.js';
import { noteFallback, recordFallbackKills, recordRevocation, type RevokeDeps, sessionDenyFor } from './revoke-lease.js';
import { isExpired, transition } from './lease.js';
import type { DenyOutcome, Lease } from './ports.js';

export interface SweepOptions {
  /** Leases per page of the due index. */
  pageSize?: number;
  /** Lease transitions in flight at once. */
  concurrency?: number;
  /** Stop starting pages after this epoch-ms (the Lambda's remaining time); the next run continues. */
  deadlineMs?: number;
}

export interface SweepReport {
  /** ISO-8601: the time the sweep judged due-ness by. */
  at: string;
  expired: number;
  settled: number;
  /** Settled leases that had been activated meanwhile: their session is denied, so they are recorded revoked. */
  revokedWhileSettling: number;
  rolesPruned: number;
  entriesPruned: number;
  fallbacksDropped: number;
  pages: number;
  errors: number;
  /** False when a page failed or the deadline came first: the next run continues. */
  complete: boolean;
  durationMs: number;
}

export type SweepDeps = RevokeDeps;

const SWEEP_ACTOR = { by: 'tvm:sweep', reason: 'pending_timeout' };

/**
 * Runs one sweep.
 * @example const report = await sweepLeases(deps, { pageSize: 100 });
 */
export async function sweepLeases(deps: SweepDeps, options: SweepOptions = {}): Promise<SweepReport> {
  const started = deps.clock.now();
  const nowEpoch = Math.floor(started / 1000);
  const pageSize = options.pageSize ?? 100;
  const concurrency = options.concurrency ?? 25;
  const report: SweepReport = {
    at: new Date(started).toISOString(),
    expired: 0,
    settled: 0,
    revokedWhileSettling: 0,
    rolesPruned: 0,
    entriesPruned: 0,
    fallbacksDropped: 0,
    pages: 0,
    errors: 0,
    complete: true,
    durationMs: 0,
  };
  const failed = (what: string, e: unknown, fields: Record<string, unknown>) => {
    report.errors++;
    deps.audit.event('sweep_error', { what, error: (e as Error)?.message, ...fields });
  };
  const pastDeadline = () => options.deadlineMs !== undefined && deps.clock.now() >= options.deadlineMs;

  try {
    let cursor: string | undefined;
    do {
      if (pastDeadline()) {
        report.complete = false;
        break;
      }
      const page = await deps.leases.listDue(nowEpoch, cursor, pageSize);
      report.pages++;
      cursor = page.cursor;
      const pending = page.leases.filter((l) => l.status === 'pending');
      // The index is the store's view of due-ness; core/lease.ts judges each lease again.
      const active = page.leases.filter((l) => isExpired(l, nowEpoch));
      await settle(deps, pending, report, failed, concurrency);
      await forEachLimited(active, concurrency, async (lease) => {
        try {
          const at = new Date(deps.clock.now()).toISOString();
          const moved = await deps.leases.transition(lease.leaseId, [lease.status], transition(lease.status, 'expire')!, {}, { at, type: 'expired', by: 'tvm:sweep' });
          if (!moved) return; // revoked or expired meanwhile
          report.expired++;
          deps.audit.event('lease_expired', { leaseId: lease.leaseId, principal: lease.principal, grant: lease.grant, expiresAt: lease.expiresAt });
        } catch (e) {
          failed('expire', e, { leaseId: lease.leaseId });
        }
      });
    } while (cursor);

    let roleCursor: string | undefined;
    do {
      const page = await deps.revoker.listPrunable(nowEpoch, roleCursor);
      roleCursor = page.cursor;
      for (const roleArn of page.roleArns) {
        try {
          const out = await deps.revoker.prune(roleArn, nowEpoch);
          report.rolesPruned++;
          report.entriesPruned += out.entriesRemoved;
          if (out.fallbackDropped) {
            report.fallbacksDropped++;
            deps.audit.event('revocation_fallback_dropped', { roleArn });
          }
        } catch (e) {
          failed('prune', e, { roleArn });
        }
      }
    } while (roleCursor);
  } catch (e) {
    // A page that cannot be read ends the run; what was done stays done and the next run resumes.
    report.complete = false;
    failed('page', e, {});
  }
  report.durationMs = deps.clock.now() - started;
  deps.audit.event('sweep', { ...report });
  deps.metrics?.count('SweepSettled', report.settled);
  deps.metrics?.count('SweepErrors', report.errors);
  return report;
}

async function settle(
  deps: SweepDeps,
  pending: Lease[],
  report: SweepReport,
  failed: (what: string, e: unknown, fields: Record<string, unknown>) => void,
  concurrency: number,
): Promise<void> {
  const byRole = new Map<string, Lease[]>();
  for (const l of pending) byRole.set(l.roleArn, [...(byRole.get(l.roleArn) ?? []), l]);
  for (const [roleArn, leases] of byRole) {
    let out: DenyOutcome;
    try {
      // The STS session may exist (a crash between STS and the lease update): deny it first.
      out = await deps.revoker.deny(roleArn, leases.map(sessionDenyFor));
      if (out.fallback) noteFallback(deps, roleArn, out.fallbackIssuedBefore, { by: SWEEP_ACTOR.by, leases: leases.length });
    } catch (e) {
      failed('settle_deny', e, { roleArn, leases: leases.length });
      continue; // they stay pending; the next run retries
    }
    await forEachLimited(leases, concurrency, async (lease) => {
      try {
        const r = await recordRevocation(deps, lease, SWEEP_ACTOR, {}, 'settled');
        if (!r.changed) return;
        if (r.lease.status === 'failed') report.settled++;
        else report.revokedWhileSettling++;
      } catch (e) {
        failed('settle', e, { leaseId: lease.leaseId });
      }
    });
    await recordFallbackKills(deps, roleArn, out, SWEEP_ACTOR).catch((e) => failed('settle_fallback', e, { roleArn }));
  }
}
