/**
 * Fixed-window rate counters in the leases table: one item per key and window
 * (`rate#<key>#<window start>`), incremented by a conditional update, so concurrent requests on
 * any number of instances share one count; its `ttl` lets DynamoDB delete it after the window.
 */
import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { windowStart } from '../core/full-windows.js';
import type { RateLimiter } from '../core/ports.js';

/** Seconds a counter outlives its window before TTL may delete it. */
const KEEP_SECONDS = 3600;

export class DynamoRateLimiter implements RateLimiter {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async take(key: string, max: number, windowSeconds: number, nowEpoch: number): Promise<boolean> {
    const start = windowStart(nowEpoch, windowSeconds);
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: `rate#${key}#${start}` },
          UpdateExpression: 'ADD #n :one SET #ttl = if_not_exists(#ttl, :ttl)',
          ConditionExpression: 'attribute_not_exists(#n) OR #n < :max',
          ExpressionAttributeNames: { '#n': 'count', '#ttl': 'ttl' },
          ExpressionAttributeValues: { ':one': 1, ':max': max, ':ttl': start + windowSeconds + KEEP_SECONDS },
        }),
      );
      return true;
    } catch (e) {
      if ((e as Error).name === 'ConditionalCheckFailedException') return false;
      throw e;
    }
  }
}
