/**
 * Conformance against moto, an AWS emulator nobody here wrote: the real DynamoLeaseStore over
 * moto's DynamoDB, on a table created from the synthesized stack (test/helpers/infra-table.ts).
 * fast-check drives random sequences of store calls and compares the table after each with the
 * state machine of core/lease.ts: statuses, refusals, and what the due index and the live listing
 * answer (paged across shards with a small page size).
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUE_INDEX, DynamoLeaseStore, PRINCIPAL_INDEX } from '../../functions/adapters/dynamodb-lease-store.js';
import { canTransition, dueAt, isLive, LEASE_STATUSES, transition } from '../../functions/core/lease.js';
import type { Lease, LeaseStatus } from '../../functions/core/ports.js';
import { createInfraTable, infraTableProps } from '../helpers/infra-table.js';
import { hasMoto, MOTO_CREDENTIALS, startMoto, type Moto } from '../helpers/moto.js';

const TABLE = 'tvm-leases-moto';
const PENDING_TIMEOUT = 300;
const T0_S = Date.UTC(2031, 0, 1) / 1000;
const iso = (s: number) => new Date(s * 1000).toISOString();

function lease(id: string, issuedAtS: number, lifeS: number): Lease {
  return {
    leaseId: id,
    status: 'pending',
    principal: 'dev|agent-1',
    issuer: 'dev',
    sub: 'agent-1',
    grant: 'reports-read',
    roleArn: 'arn:aws:iam::123456789012:role/tvm/reports-read',
    sessionName: `tvm-${id}`,
    sourceIdentity: 'dev.agent-1',
    context: { task: 'nightly' },
    decision: ['p'],
    tokenSha256: 'a'.repeat(64),
    durationSeconds: lifeS,
    issuedAt: iso(issuedAtS),
    expiresAt: iso(issuedAtS + lifeS),
    ttl: issuedAtS + lifeS + 86400,
    events: [{ at: iso(issuedAtS), type: 'requested' }],
  };
}

type Op =
  | { kind: 'create'; i: number; at: number; life: number }
  | { kind: 'activate'; i: number; life: number }
  | { kind: 'fail'; i: number }
  | { kind: 'transition'; i: number; from: LeaseStatus; to: LeaseStatus };

const N = 5; // leases per run
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('create' as const), i: fc.nat(N - 1), at: fc.integer({ min: -900, max: 900 }), life: fc.integer({ min: 900, max: 3600 }) }),
  fc.record({ kind: fc.constant('activate' as const), i: fc.nat(N - 1), life: fc.integer({ min: 60, max: 3600 }) }),
  fc.record({ kind: fc.constant('fail' as const), i: fc.nat(N - 1) }),
  fc.record({ kind: fc.constant('transition' as const), i: fc.nat(N - 1), from: fc.constantFrom(...LEASE_STATUSES), to: fc.constantFrom(...LEASE_STATUSES) }),
);

describe.skipIf(!hasMoto('lease store conformance'))('DynamoLeaseStore against moto', () => {
  let moto: Moto;
  let raw: DynamoDBClient;
  let store: DynamoLeaseStore;

  beforeAll(async () => {
    const starting = startMoto();
    infraTableProps(); // synthesizes the stack (CPU) while moto boots
    moto = await starting;
    raw = new DynamoDBClient({ region: 'us-east-1', credentials: MOTO_CREDENTIALS, endpoint: moto.endpoint, maxAttempts: 1 });
    const ddb = DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
    const props = await createInfraTable(raw, TABLE);
    expect(props.GlobalSecondaryIndexes?.map((g) => g.IndexName).sort()).toEqual([DUE_INDEX, PRINCIPAL_INDEX].sort());
    store = new DynamoLeaseStore(ddb, TABLE, { pendingTimeoutSeconds: PENDING_TIMEOUT });
  }, 240_000); // synthesizing the stack takes 10–60 s on a loaded machine
  afterAll(async () => {
    raw?.destroy();
    await moto?.close();
  });

  /** Every lease of this run in the due index by `by` (or live, without `by`), paging 3 at a time. */
  async function collect(ids: Set<string>, by?: number): Promise<string[]> {
    const out: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = by === undefined ? await store.listLive(cursor, 3) : await store.listDue(by, cursor, 3);
      for (const l of page.leases) if (ids.has(l.leaseId)) out.push(l.leaseId);
      cursor = page.cursor;
      if (++pages > 500) throw new Error('listDue does not end');
    } while (cursor);
    return out.sort();
  }

  it('follows the state machine for any sequence of calls, and its indexes agree (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
        const run = randomUUID().slice(0, 8);
        const ids = Array.from({ length: N }, (_, i) => `L${run}${i}`);
        const model = new Map<string, Lease>();
        for (const o of ops) {
          const id = ids[o.i];
          const m = model.get(id);
          if (o.kind === 'create') {
            const l = lease(id, T0_S + o.at, o.life);
            if (m) await expect(store.createPending(l)).rejects.toThrow();
            else {
              await store.createPending(l);
              model.set(id, l);
            }
          } else if (o.kind === 'activate') {
            const expiresAt = iso(T0_S + o.life);
            const to = m && transition(m.status, 'activate');
            if (!to) await expect(store.activate(id, 'ASIAMOTO', expiresAt, { at: iso(T0_S), type: 'issued' })).rejects.toThrow();
            else {
              const got = await store.activate(id, 'ASIAMOTO', expiresAt, { at: iso(T0_S), type: 'issued' });
              Object.assign(m!, { status: to, accessKeyId: 'ASIAMOTO', expiresAt, events: [...m!.events, { at: iso(T0_S), type: 'issued' }] });
              expect(got).toEqual(m);
            }
          } else if (o.kind === 'fail') {
            await store.fail(id, { at: iso(T0_S), type: 'failed' });
            const to = m && transition(m.status, 'fail');
            if (to) Object.assign(m!, { status: to, events: [...m!.events, { at: iso(T0_S), type: 'failed' }] });
          } else {
            const call = store.transition(id, [o.from], o.to, { revokedBy: 'moto' }, { at: iso(T0_S), type: o.to });
            if (!canTransition(o.from, o.to) || isLive(o.to)) {
              await expect(call).rejects.toThrow(/illegal lease transition/);
            } else if (m?.status === o.from) {
              Object.assign(m, { status: o.to, revokedBy: 'moto', events: [...m.events, { at: iso(T0_S), type: o.to }] });
              expect(await call).toEqual(m);
            } else {
              expect(await call).toBeUndefined();
            }
          }
        }
        for (const id of ids) expect(await store.get(id)).toEqual(model.get(id));
        const mine = new Set(ids);
        const live = [...model.values()].filter((l) => isLive(l.status));
        expect(await collect(mine)).toEqual(live.map((l) => l.leaseId).sort());
        for (const by of [T0_S, T0_S + 4000]) {
          const due = live.filter((l) => dueAt(l, PENDING_TIMEOUT)! <= by).map((l) => l.leaseId).sort();
          expect(await collect(mine, by)).toEqual(due);
        }
      }),
      { numRuns: 12, endOnFailure: true }, // no shrinking: each shrink step is dozens of moto calls
    );
  }, 300_000); // a few hundred moto round trips

  it('lists by principal through its index, newest first', async () => {
    const run = randomUUID().slice(0, 8);
    const principal = `dev|p-${run}`;
    for (const [k, at] of [['a', 0], ['b', 20], ['c', 10]] as const) {
      await store.createPending({ ...lease(`L${run}${k}`, T0_S + at, 900), principal });
    }
    expect((await store.list({ principal })).map((l) => l.leaseId)).toEqual([`L${run}b`, `L${run}c`, `L${run}a`]);
    expect((await store.list({ principal, limit: 1 })).map((l) => l.leaseId)).toEqual([`L${run}b`]);
  });

  it('keeps no secret in the table and no due-index keys on a settled lease', async () => {
    const id = `L${randomUUID().slice(0, 8)}x`;
    await store.createPending(lease(id, T0_S, 900));
    await store.activate(id, 'ASIAMOTOSETTLED', iso(T0_S + 900), { at: iso(T0_S), type: 'issued' });
    await store.transition(id, ['active'], 'revoked', { revokedAt: iso(T0_S + 1) }, { at: iso(T0_S + 1), type: 'revoked' });
    const items = (await raw.send(new ScanCommand({ TableName: TABLE }))).Items ?? [];
    const item = items.find((i) => i.pk?.S === id)!;
    expect(item).toBeDefined();
    expect(item.dueShard).toBeUndefined();
    expect(item.dueAt).toBeUndefined();
    expect(JSON.stringify(items)).not.toMatch(/secretAccessKey|sessionToken/i);
  });
});
