/**
 * Leases in one DynamoDB table, partition key `pk` = the lease id (never the subject, so one busy
 * workload cannot make a hot partition). Live leases (pending, active) carry `dueShard`/`dueAt`:
 * a sparse index the sweep and bulk revocation query instead of scanning the table.
 */
import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { InvalidRequest } from '../core/errors.js';
import { canTransition, dueAt, isLive, sourcesOf } from '../core/lease.js';
import type { Lease, LeaseEvent, LeasePage, LeaseQuery, LeaseStatus, LeaseStore } from '../core/ports.js';

export const DUE_INDEX = 'due';
export const PRINCIPAL_INDEX = 'principal';
export const DUE_SHARDS = 16;
/** Round trips one listing page may take (each ≤ 1 MB read, a few tens of ms). */
const MAX_ROUNDS = 25;

type CursorKind = 'p' | 'd' | 's';

function encodeCursor(kind: CursorKind, key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify({ i: kind, k: key })).toString('base64url');
}

function badCursor(): InvalidRequest {
  return new InvalidRequest('bad_cursor', undefined, 'Invalid field: next.');
}

/** The key a cursor resumes from, if it was made for this kind of listing; else a 400. */
function decodeCursor(cursor: string | undefined, kind: CursorKind): Record<string, unknown> | undefined {
  if (cursor === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw badCursor();
  }
  const { i, k } = (parsed ?? {}) as { i?: unknown; k?: unknown };
  if (i !== kind || !k || typeof k !== 'object' || Array.isArray(k)) throw badCursor();
  const key = k as Record<string, unknown>;
  if (typeof key.pk !== 'string' || Object.values(key).some((v) => typeof v !== 'string' && typeof v !== 'number')) throw badCursor();
  return key;
}

export function dueShardOf(leaseId: string): string {
  return `due#${createHash('sha256').update(leaseId).digest()[0] % DUE_SHARDS}`;
}

type Item = Lease & { pk: string; dueShard?: string; dueAt?: number };

function toLease(item: Record<string, unknown>): Lease {
  const { pk: _pk, dueShard: _s, dueAt: _d, ...lease } = item as unknown as Item;
  return lease;
}

export interface DynamoLeaseStoreOptions {
  /** Seconds a lease may stay pending before the sweep settles it. */
  pendingTimeoutSeconds: number;
}

export class DynamoLeaseStore implements LeaseStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly options: DynamoLeaseStoreOptions,
  ) {}

  async createPending(lease: Lease): Promise<void> {
    if (lease.status !== 'pending') throw new Error(`createPending: a new lease is pending, not ${lease.status}`);
    const item: Item = {
      ...lease,
      pk: lease.leaseId,
      dueShard: dueShardOf(lease.leaseId),
      dueAt: dueAt(lease, this.options.pendingTimeoutSeconds),
    };
    await this.ddb.send(new PutCommand({ TableName: this.table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
  }

  async activate(leaseId: string, accessKeyId: string, expiresAt: string, event: LeaseEvent): Promise<Lease> {
    const from = sourcesOf('active');
    const values: Record<string, unknown> = { ':active': 'active', ':k': accessKeyId, ':e': expiresAt, ':ev': [event] };
    from.forEach((s, i) => (values[`:f${i}`] = s));
    // an active lease is due when its session expires (its issue time plays no part)
    values[':d'] = dueAt({ status: 'active', issuedAt: '', expiresAt }, this.options.pendingTimeoutSeconds);
    const out = await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: leaseId },
        ConditionExpression: `#s IN (${from.map((_, i) => `:f${i}`).join(', ')})`,
        UpdateExpression: 'SET #s = :active, accessKeyId = :k, expiresAt = :e, dueAt = :d, events = list_append(events, :ev)',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW',
      }),
    );
    return toLease(out.Attributes!);
  }

  async fail(leaseId: string, event: LeaseEvent): Promise<void> {
    await this.transition(leaseId, sourcesOf('failed'), 'failed', {}, event);
  }

  async get(leaseId: string): Promise<Lease | undefined> {
    const out = await this.ddb.send(new GetCommand({ TableName: this.table, Key: { pk: leaseId }, ConsistentRead: true }));
    return out.Item && typeof out.Item.leaseId === 'string' ? toLease(out.Item) : undefined;
  }

  async transition(
    leaseId: string,
    from: LeaseStatus[],
    to: LeaseStatus,
    fields: Partial<Pick<Lease, 'revokedAt' | 'revokeReason' | 'revokedBy'>>,
    event: LeaseEvent,
  ): Promise<Lease | undefined> {
    // The state machine in core/lease.ts decides what may be written; a move it does not allow is
    // a bug in the caller and is refused before anything is sent. Only `activate` enters a live
    // state (it sets the new due time).
    const illegal = from.filter((f) => !canTransition(f, to));
    if (!from.length || illegal.length || isLive(to)) throw new Error(`illegal lease transition: ${from.join('|') || '(none)'} → ${to}`);
    const names: Record<string, string> = { '#s': 'status' };
    const values: Record<string, unknown> = { ':to': to, ':ev': [event] };
    const sets = ['#s = :to', 'events = list_append(events, :ev)'];
    from.forEach((s, i) => (values[`:f${i}`] = s));
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      names[`#${k}`] = k;
      values[`:${k}`] = v;
      sets.push(`#${k} = :${k}`);
    }
    try {
      const out = await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: leaseId },
          ConditionExpression: `attribute_exists(pk) AND #s IN (${from.map((_, i) => `:f${i}`).join(', ')})`,
          // a lease leaving the live states leaves the due index (core/lease.ts: dueAt is undefined)
          UpdateExpression: `SET ${sets.join(', ')} REMOVE dueShard, dueAt`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toLease(out.Attributes!);
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException || (e as Error).name === 'ConditionalCheckFailedException') return undefined;
      throw e;
    }
  }

  async list(query: LeaseQuery): Promise<Lease[]> {
    const limit = Math.min(query.limit ?? 100, 1000);
    const out: Lease[] = [];
    let next: string | undefined;
    do {
      const page = await this.page({ ...query, limit: limit - out.length, next });
      out.push(...page.leases);
      next = page.next;
    } while (next && out.length < limit);
    return out.sort((a, b) => b.issuedAt.localeCompare(a.issuedAt));
  }

  /**
   * One page of a listing. By principal: the principal index, newest first, `since`/`until` in
   * the key condition. Live leases (`live`, or status pending/active): the sparse due index, shard
   * by shard. Anything else has no index that fits: a filtered scan. One item more than the page
   * is read to know whether more exist; the cursor is the last answered item's key (base64url
   * JSON). At most `MAX_ROUNDS` round trips a page, so a sparse filter over a big table still
   * answers well inside API Gateway's 29 s (with a cursor to go on from).
   */
  async page(query: LeaseQuery): Promise<LeasePage> {
    const limit = Math.max(1, Math.min(query.limit ?? 100, 1000));
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const filters: string[] = [];
    const eq = (attr: string, value: unknown) => {
      names[`#${attr}`] = attr;
      values[`:${attr}`] = value;
      filters.push(`#${attr} = :${attr}`);
    };
    if (query.grant !== undefined) eq('grant', query.grant);
    if (query.issuer !== undefined) eq('issuer', query.issuer);
    if (query.status !== undefined) eq('status', query.status);
    else if (query.live) {
      names['#status'] = 'status';
      Object.assign(values, { ':pending': 'pending', ':active': 'active' });
      filters.push('#status IN (:pending, :active)');
    }
    if (query.task !== undefined) {
      Object.assign(names, { '#ctx': 'context', '#task': 'task' });
      values[':task'] = query.task;
      filters.push('#ctx.#task = :task');
    }
    const range: string[] = [];
    names['#issuedAt'] = 'issuedAt';
    if (query.since !== undefined) (values[':since'] = query.since), range.push('#issuedAt >= :since');
    if (query.until !== undefined) (values[':until'] = query.until), range.push('#issuedAt <= :until');
    if (!range.length) delete names['#issuedAt'];
    const read = Math.min(1000, Math.max(limit + 1, 100));

    if (query.principal !== undefined) {
      const start = decodeCursor(query.next, 'p');
      names['#p'] = 'principal';
      values[':p'] = query.principal;
      const key = ['#p = :p', ...(range.length === 2 ? ['#issuedAt BETWEEN :since AND :until'] : range)].join(' AND ');
      return this.collectPage('p', limit, [
        (ExclusiveStartKey) =>
          new QueryCommand({
            TableName: this.table,
            IndexName: PRINCIPAL_INDEX,
            KeyConditionExpression: key,
            FilterExpression: filters.length ? filters.join(' AND ') : undefined,
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
            ScanIndexForward: false,
            Limit: read,
            ExclusiveStartKey,
          }),
      ], start, (item) => ({ pk: item.pk, principal: item.principal, issuedAt: item.issuedAt }));
    }
    filters.push(...range);
    if (query.live || query.status === 'pending' || query.status === 'active') {
      const start = decodeCursor(query.next, 'd');
      const first = start ? Number(String(start.dueShard).slice(4)) : 0;
      if (!Number.isInteger(first) || first < 0 || first >= DUE_SHARDS) throw badCursor();
      const shards = Array.from({ length: DUE_SHARDS - first }, (_, i) => (ExclusiveStartKey?: Record<string, unknown>) =>
        new QueryCommand({
          TableName: this.table,
          IndexName: DUE_INDEX,
          KeyConditionExpression: 'dueShard = :shard',
          FilterExpression: filters.length ? filters.join(' AND ') : undefined,
          ExpressionAttributeNames: Object.keys(names).length ? names : undefined,
          ExpressionAttributeValues: { ...values, ':shard': `due#${first + i}` },
          Limit: read,
          ExclusiveStartKey,
        }),
      );
      return this.collectPage('d', limit, shards, start, (item) => ({ pk: item.pk, dueShard: item.dueShard, dueAt: item.dueAt }));
    }
    const start = decodeCursor(query.next, 's');
    names['#lid'] = 'leaseId';
    filters.push('attribute_exists(#lid)');
    const page = await this.collectPage('s', limit, [
      (ExclusiveStartKey) =>
        new ScanCommand({
          TableName: this.table,
          FilterExpression: filters.join(' AND '),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: Object.keys(values).length ? values : undefined,
          Limit: read,
          ExclusiveStartKey,
        }),
    ], start, (item) => ({ pk: item.pk }));
    // A scan has no order: each page is answered newest first.
    page.leases.sort((a, b) => b.issuedAt.localeCompare(a.issuedAt));
    return page;
  }

  /**
   * Reads `sources` in order (shards), starting the first at `start`, until `limit` + 1 items or
   * `MAX_ROUNDS` round trips; the cursor resumes after the last item answered.
   */
  private async collectPage(
    kind: CursorKind,
    limit: number,
    sources: ((start?: Record<string, unknown>) => QueryCommand | ScanCommand)[],
    start: Record<string, unknown> | undefined,
    keyOf: (item: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<LeasePage> {
    const items: Record<string, unknown>[] = [];
    let rounds = 0;
    for (let i = 0; i < sources.length; i++) {
      let from = i === 0 ? start : undefined;
      do {
        if (rounds++ >= MAX_ROUNDS) return { leases: items.map(toLease), next: encodeCursor(kind, from!) };
        const page = await this.ddb.send(sources[i](from) as QueryCommand);
        for (const item of page.Items ?? []) {
          if (items.length === limit) return { leases: items.map(toLease), next: encodeCursor(kind, keyOf(items[limit - 1])) };
          items.push(item);
        }
        from = page.LastEvaluatedKey;
      } while (from);
    }
    return { leases: items.map(toLease) };
  }

  /** Pages over the due index, shard by shard; the cursor is `<shard>:<LastEvaluatedKey JSON>`. */
  private async pageDue(
    dueBy: number | undefined,
    cursor: string | undefined,
    limit: number,
  ): Promise<{ leases: Lease[]; cursor?: string }> {
    let shard = 0;
    let start: Record<string, unknown> | undefined;
    if (cursor) {
      const i = cursor.indexOf(':');
      shard = Number(cursor.slice(0, i));
      const rest = cursor.slice(i + 1);
      start = rest ? JSON.parse(rest) : undefined;
    }
    while (shard < DUE_SHARDS) {
      const page = await this.ddb.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: DUE_INDEX,
          KeyConditionExpression: dueBy === undefined ? 'dueShard = :shard' : 'dueShard = :shard AND dueAt <= :by',
          ExpressionAttributeValues: dueBy === undefined ? { ':shard': `due#${shard}` } : { ':shard': `due#${shard}`, ':by': dueBy },
          Limit: limit,
          ExclusiveStartKey: start,
        }),
      );
      const leases = (page.Items ?? []).map(toLease);
      if (page.LastEvaluatedKey) start = page.LastEvaluatedKey;
      else (shard++, (start = undefined));
      const next = shard < DUE_SHARDS ? `${shard}:${start ? JSON.stringify(start) : ''}` : undefined;
      // An empty page moves on without a round trip to the caller.
      if (leases.length || !next) return { leases, cursor: next };
    }
    return { leases: [] };
  }

  listDue(dueBy: number, cursor?: string, limit = 100): Promise<{ leases: Lease[]; cursor?: string }> {
    return this.pageDue(dueBy, cursor, limit);
  }

  listLive(cursor?: string, limit = 100): Promise<{ leases: Lease[]; cursor?: string }> {
    return this.pageDue(undefined, cursor, limit);
  }

}
