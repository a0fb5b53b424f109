/**
 * The sweep: run by the schedule (EventBridge Scheduler; locally a timer) and by an admin through
 * `POST /v1/admin/sweep`. Parse → sweepLeases → answer what it did.
 */
import type { Context } from 'aws-lambda';
import { NotFound } from '../core/errors.js';
import { sweepLeases, type SweepReport } from '../core/sweep-leases.js';
import { inEnvelope } from '../shared/envelope.js';
import { adminIdentity, json, type HttpEvent, type HttpResult } from '../shared/http.js';
import type { SweepRuntime } from '../shared/runtime.js';

export const SWEEP_ROUTE = 'POST /v1/admin/sweep';

/** Time kept back from the Lambda's timeout so the sweep reports before it is cut off. */
const RESERVE_MS = 10_000;

/**
 * How long the admin route sweeps before it answers: API Gateway cuts an HTTP API integration at
 * 30 s, whatever the function's own timeout (5 minutes, for the scheduled run). What is left is
 * reported (`complete: false`) and the next scheduled run continues it.
 */
export const ADMIN_SWEEP_BUDGET_MS = 20_000;

function isHttpEvent(event: unknown): event is HttpEvent {
  return !!event && typeof event === 'object' && typeof (event as HttpEvent).routeKey === 'string';
}

export function createSweepHandler(rt: SweepRuntime) {
  const run = (context?: Pick<Context, 'getRemainingTimeInMillis'>, budgetMs?: number) => {
    const budgets = [context?.getRemainingTimeInMillis ? context.getRemainingTimeInMillis() - RESERVE_MS : undefined, budgetMs].filter(
      (b): b is number => b !== undefined,
    );
    return sweepLeases(
      { leases: rt.leases, revoker: rt.revoker, clock: rt.clock, audit: rt.audit, metrics: rt.metrics },
      budgets.length ? { deadlineMs: rt.clock.now() + Math.max(0, Math.min(...budgets)) } : {},
    );
  };

  /** An HTTP API event answers an HttpResult; a scheduled event (anything else) answers the report. */
  return async function sweepHandler(event: unknown, context?: Pick<Context, 'getRemainingTimeInMillis'>): Promise<HttpResult | SweepReport> {
    if (!isHttpEvent(event)) {
      try {
        return await run(context);
      } finally {
        rt.metrics.flush();
      }
    }
    return inEnvelope(rt, event, 'sweep_request', async (record) => {
      if (event.routeKey !== SWEEP_ROUTE) throw new NotFound('no_route');
      record.admin = adminIdentity(event);
      return json(200, await run(context, ADMIN_SWEEP_BUDGET_MS));
    });
  };
}
