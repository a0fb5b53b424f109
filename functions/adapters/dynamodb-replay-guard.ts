/**
 * Single-use tokens: one conditional put per `iss#jti`, kept (TTL) until the token expires.
 * Correctness does not depend on TTL deletion: an item past its `ttl` is overwritten.
 */
import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Clock, ReplayGuard } from '../core/ports.js';

export class DynamoReplayGuard implements ReplayGuard {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: Clock,
  ) {}

  async claim(key: string, expiresAtEpoch: number): Promise<boolean> {
    // The jti is hashed: the table holds no token material.
    const pk = `jti#${createHash('sha256').update(key).digest('hex')}`;
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk, ttl: expiresAtEpoch },
          ConditionExpression: 'attribute_not_exists(pk) OR #ttl < :now',
          ExpressionAttributeNames: { '#ttl': 'ttl' },
          ExpressionAttributeValues: { ':now': Math.floor(this.clock.now() / 1000) },
        }),
      );
      return true;
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException || (e as Error).name === 'ConditionalCheckFailedException') return false;
      throw e;
    }
  }
}
