/**
 * Measures the sweep over 10,000 due leases in the embedded DynamoDB (dynalite) through the real
 * lease store: prints the time, asserts only the outcome. Opt-in (about half a minute):
 *   TVM_BENCH=1 npx vitest run test/e2e/revocation-sweep-bench.test.ts
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { dueShardOf, DynamoLeaseStore } from '../../functions/adapters/dynamodb-lease-store.js';
import { sweepLeases } from '../../functions/core/sweep-leases.js';
import { ensureTable, startDynalite } from '../../local/dynamo.js';
import { fixedClock, makeLease, memoryAudit, MemoryRevoker, T0 } from '../core/revoke-fakes.js';

const N = Number(process.env.TVM_BENCH_LEASES ?? 10_000);

describe.skipIf(!process.env.TVM_BENCH)('sweep benchmark', () => {
  it(`sweeps ${N} due leases`, async () => {
    const dynamo = await startDynalite({});
    const client = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    await ensureTable(client, 'bench');
    const ddb = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    const clock = fixedClock(T0);
    const pending = Math.floor(N / 100);
    const items = Array.from({ length: N }, (_, i) => {
      const lease = makeLease({ status: i < pending ? 'pending' : 'active' }, clock);
      const dueAt = i < pending ? Math.floor(T0 / 1000) + 300 : Math.floor(Date.parse(lease.expiresAt) / 1000);
      return { ...lease, pk: lease.leaseId, dueShard: dueShardOf(lease.leaseId), dueAt };
    });
    const seeded = performance.now();
    for (let i = 0; i < items.length; i += 25 * 8) {
      await Promise.all(
        Array.from({ length: 8 }, (_, j) => items.slice(i + j * 25, i + (j + 1) * 25)).filter((c) => c.length).map((chunk) =>
          ddb.send(new BatchWriteCommand({ RequestItems: { bench: chunk.map((Item) => ({ PutRequest: { Item } })) } })),
        ),
      );
    }
    console.log(`[measure] seeded ${N} leases in ${Math.round(performance.now() - seeded)} ms`);

    clock.advance(3600);
    const deps = { leases: new DynamoLeaseStore(ddb, 'bench', { pendingTimeoutSeconds: 300 }), revoker: new MemoryRevoker(clock), clock, audit: memoryAudit() };
    const started = performance.now();
    const report = await sweepLeases(deps, { pageSize: 100, concurrency: 25 });
    const ms = performance.now() - started;
    console.log(`[measure] sweep of ${N} due leases (${N - pending} active → expired, ${pending} pending → settled): ${Math.round(ms)} ms, ${report.pages} pages, ${(ms / N).toFixed(2)} ms a lease`);
    expect(report).toMatchObject({ expired: N - pending, settled: pending, errors: 0, complete: true });
    const rerun = await sweepLeases(deps);
    expect(rerun).toMatchObject({ expired: 0, settled: 0, pages: 1 });
    client.destroy();
    await dynamo.close();
  }, 600_000);
});
