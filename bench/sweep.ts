/**
 * 5: the sweep over 10,000 due leases. They are written straight into DynamoDB with the lease
 * store (in a table of their own on the same local DynamoDB, so nothing else the bench does is
 * due), most activated, some left pending; then the sweep handler runs with a clock moved past
 * every lease's due time, to completion, and once more to show a rerun changes nothing.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { randomIds } from '../functions/adapters/random-ids.js';
import { sessionNameFor, sourceIdentityFor } from '../functions/core/lease.js';
import type { Lease } from '../functions/core/ports.js';
import type { SweepReport } from '../functions/core/sweep-leases.js';
import { createLogger } from '../functions/shared/logger.js';
import { memoryMetrics } from '../functions/shared/metrics.js';
import { createRuntime } from '../functions/shared/runtime.js';
import { createSweepHandler } from '../functions/sweep/handler.js';
import { ensureTable } from '../local/dynamo.js';
import type { LocalStack } from '../local/stack.js';
import { now, pool, progress, round } from './stats.js';

export const SWEEP_TABLE = 'tvm-bench-sweep';

export interface SweepBench {
  leases: number;
  active: number;
  pending: number;
  seed_s: number;
  sweep_s: number;
  first: Pick<SweepReport, 'expired' | 'settled' | 'revokedWhileSettling' | 'pages' | 'errors' | 'complete'>;
  rerun: Pick<SweepReport, 'expired' | 'settled' | 'revokedWhileSettling' | 'pages' | 'errors' | 'complete'> & { seconds: number };
  /** Statuses in the table after the sweep (and unchanged after the rerun). */
  statusesAfter: Record<string, number>;
  rerunChangedNothing: boolean;
}

const pick = (r: SweepReport) => ({ expired: r.expired, settled: r.settled, revokedWhileSettling: r.revokedWhileSettling, pages: r.pages, errors: r.errors, complete: r.complete });

async function statusCounts(stack: LocalStack): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let start: Record<string, unknown> | undefined;
  let pages = 0;
  do {
    const page = await stack.runtime.ddb.send(
      new ScanCommand({ TableName: SWEEP_TABLE, ProjectionExpression: '#s, leaseId', ExpressionAttributeNames: { '#s': 'status' }, ExclusiveStartKey: start }),
    );
    for (const item of page.Items ?? []) if (typeof item.leaseId === 'string') counts[item.status] = (counts[item.status] ?? 0) + 1;
    start = page.LastEvaluatedKey;
  } while (start && ++pages < 10_000);
  return counts;
}

export async function sweepBench(stack: LocalStack, opts: { leases: number; pendingShare: number }): Promise<SweepBench> {
  const creds = stack.runtime.settings.credentials!;
  const admin = new DynamoDBClient({ region: 'us-east-1', endpoint: stack.endpoints.dynamodb, credentials: creds });
  await ensureTable(admin, SWEEP_TABLE);
  admin.destroy();

  // The controllable clock: real time while seeding, then moved past every lease's due time.
  let offsetMs = 0;
  const clock = { now: () => Date.now() + offsetMs };
  const rt = createRuntime({
    config: stack.config,
    table: SWEEP_TABLE,
    dynamodbEndpoint: stack.endpoints.dynamodb,
    stsEndpoint: stack.endpoints.sts,
    iamEndpoint: stack.endpoints.iam,
    credentials: creds,
    logger: createLogger({ sink: () => {} }),
    metrics: memoryMetrics(),
    clock,
  });
  try {
    const grants = stack.config.grants;
    const issuer = stack.config.local?.devIssuer ?? 'dev';
    const pendingEvery = Math.max(1, Math.round(1 / opts.pendingShare));
    const ids = Array.from({ length: opts.leases }, () => randomIds.leaseId());
    let active = 0;
    let pending = 0;
    progress(`sweep: seeding ${opts.leases} leases (every ${pendingEvery}th left pending)`);
    const t0 = now();
    await pool(ids, 32, async (leaseId, i) => {
      const grant = grants[i % grants.length];
      const sub = `bench-sweep-${i % 100}`;
      const at = new Date(clock.now()).toISOString();
      const lease: Lease = {
        leaseId,
        status: 'pending',
        principal: `${issuer}|${sub}`,
        issuer,
        sub,
        grant: grant.name,
        roleArn: grant.roleArn,
        sessionName: sessionNameFor(leaseId),
        sourceIdentity: sourceIdentityFor(issuer, sub),
        context: {},
        decision: ['bench'],
        tokenSha256: '0'.repeat(64),
        durationSeconds: 900,
        issuedAt: at,
        expiresAt: new Date(clock.now() + 900_000).toISOString(),
        ttl: Math.floor(clock.now() / 1000) + 900 + 90 * 86400,
        events: [{ at, type: 'requested', by: `${issuer}|${sub}` }],
      };
      await rt.leases.createPending(lease);
      if (i % pendingEvery === 0) {
        pending++;
        return;
      }
      await rt.leases.activate(leaseId, `ASIABENCH${String(i).padStart(11, '0')}`, lease.expiresAt, { at, type: 'issued', by: lease.principal });
      active++;
    });
    const seed = (now() - t0) / 1000;

    // An hour later: every active lease has expired, every pending one is past its bound.
    offsetMs = 3600_000;
    const sweep = createSweepHandler(rt);
    progress(`sweep: running the sweep handler (clock +1 h) over ${opts.leases} due leases`);
    const t1 = now();
    const first = (await sweep({ source: 'aws.scheduler' })) as SweepReport;
    const sweepS = (now() - t1) / 1000;
    const statusesAfter = await statusCounts(stack);
    progress('sweep: rerun');
    const t2 = now();
    const rerun = (await sweep({ source: 'aws.scheduler' })) as SweepReport;
    const rerunS = (now() - t2) / 1000;
    const statusesAfterRerun = await statusCounts(stack);
    const due = await rt.leases.listDue(Math.floor(clock.now() / 1000), undefined, 10);
    const rerunChangedNothing =
      rerun.expired === 0 && rerun.settled === 0 && rerun.revokedWhileSettling === 0 && rerun.errors === 0 && due.leases.length === 0 &&
      JSON.stringify(statusesAfter) === JSON.stringify(statusesAfterRerun);
    return {
      leases: opts.leases,
      active,
      pending,
      seed_s: round(seed, 2),
      sweep_s: round(sweepS, 2),
      first: pick(first),
      rerun: { ...pick(rerun), seconds: round(rerunS, 3) },
      statusesAfter,
      rerunChangedNothing,
    };
  } finally {
    rt.ddb.destroy();
    rt.sts.destroy();
    rt.iam.destroy();
  }
}
