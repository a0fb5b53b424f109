/**
 * Leases in one DynamoDB table, partition key `pk` = the lease id (never the subject, so one busy
 * workload cannot make a hot partition). Live leases (pending, active) carry `dueShard`/`dueAt`:
 * a sparse index the sweep and bulk revocation query instead of scanning the table.
 */
import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { isLive } from '../core/lease.js';
import type { Lease, LeaseEvent, LeaseQuery, LeaseStatus, LeaseStore } from '../core/ports.js';

export const DUE_INDEX = 'due';
export const PRINCIPAL_INDEX = 'principal';
export const DUE_SHARDS = 16;

export function dueShardOf(leaseId: string): string {
  return `due#${createHash('sha256').update(leaseId).digest()[0] % DUE_SHARDS}`;
}

type Item = Lease & { pk: string; dueShard?: string; dueAt?: number };

function toLease(item: Record<string, unknown>): Lease {
  const { pk: _pk, dueShard: _s, dueAt: _d, ...lease } = item as unknown as Item;
  return lease;
}

function epoch(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
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
    const item: Item = {
      ...lease,
      pk: lease.leaseId,
      dueShard: dueShardOf(lease.leaseId),
      dueAt: epoch(lease.issuedAt) + this.options.pendingTimeoutSeconds,
    };
    await this.ddb.send(new PutCommand({ TableName: this.table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
  }

  async activate(leaseId: string, accessKeyId: string, expiresAt: string, event: LeaseEvent): Promise<Lease> {
    const out = await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: leaseId },
        ConditionExpression: '#s = :pending',
        UpdateExpression: 'SET #s = :active, accessKeyId = :k, expiresAt = :e, dueAt = :d, events = list_append(events, :ev)',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':pending': 'pending', ':active': 'active', ':k': accessKeyId, ':e': expiresAt, ':d': epoch(expiresAt), ':ev': [event] },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return toLease(out.Attributes!);
  }

  async fail(leaseId: string, event: LeaseEvent): Promise<void> {
    await this.transition(leaseId, ['pending'], 'failed', {}, event);
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
    const remove = isLive(to) ? '' : ' REMOVE dueShard, dueAt';
    try {
      const out = await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: leaseId },
          ConditionExpression: `attribute_exists(pk) AND #s IN (${from.map((_, i) => `:f${i}`).join(', ')})`,
          UpdateExpression: `SET ${sets.join(', ')}${remove}`,
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
    const filters: string[] = [];
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    for (const k of ['grant', 'issuer', 'status'] as const) {
      if (query[k] === undefined) continue;
      filters.push(`#${k} = :${k}`);
      names[`#${k}`] = k;
      values[`:${k}`] = query[k];
    }
    const out: Lease[] = [];
    if (query.principal !== undefined) {
      names['#p'] = 'principal';
      values[':p'] = query.principal;
      await this.collect(out, limit, (ExclusiveStartKey) =>
        new QueryCommand({
          TableName: this.table,
          IndexName: PRINCIPAL_INDEX,
          KeyConditionExpression: '#p = :p',
          FilterExpression: filters.length ? filters.join(' AND ') : undefined,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ScanIndexForward: false,
          ExclusiveStartKey,
        }),
      );
      return out;
    }
    if (query.status === 'pending' || query.status === 'active') {
      for (let s = 0; s < DUE_SHARDS && out.length < limit; s++) {
        await this.collect(out, limit, (ExclusiveStartKey) =>
          new QueryCommand({
            TableName: this.table,
            IndexName: DUE_INDEX,
            KeyConditionExpression: 'dueShard = :shard',
            FilterExpression: filters.join(' AND '),
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: { ...values, ':shard': `due#${s}` },
            ExclusiveStartKey,
          }),
        );
      }
      return out;
    }
    // Admin listing across every state: a filtered scan (rare, paged, capped by `limit`).
    names['#lid'] = 'leaseId';
    filters.push('attribute_exists(#lid)');
    await this.collect(out, limit, (ExclusiveStartKey) =>
      new ScanCommand({
        TableName: this.table,
        FilterExpression: filters.join(' AND '),
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: Object.keys(values).length ? values : undefined,
        ExclusiveStartKey,
      }),
    );
    return out.sort((a, b) => b.issuedAt.localeCompare(a.issuedAt));
  }

  private async collect(
    out: Lease[],
    limit: number,
    command: (start?: Record<string, unknown>) => QueryCommand | ScanCommand,
  ): Promise<void> {
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.ddb.send(command(start) as QueryCommand);
      for (const item of page.Items ?? []) {
        if (out.length >= limit) return;
        out.push(toLease(item));
      }
      start = page.LastEvaluatedKey;
    } while (start && out.length < limit);
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
