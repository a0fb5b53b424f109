/**
 * Vendor rotation state in the lease table: one item per vendor, `pk` = `vendor#<name>`, the
 * state as a map, and a lock (`lockOwner`, `lockExpiresAt` epoch ms) taken with a conditional
 * write that only an expired lock or its owner passes, so two rotations of one vendor never run
 * at once and a crashed run blocks no one past its expiry. A save passes only while its owner's
 * lock is unexpired, so a run that outlived its lock cannot overwrite the run that took it over.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { emptyVendorState, LockLost, type VendorState, type VendorStateStore } from '../core/vendor-ports.js';

export function vendorPk(vendor: string): string {
  return `vendor#${vendor}`;
}

function conditionFailed(e: unknown): boolean {
  return e instanceof ConditionalCheckFailedException || (e as Error)?.name === 'ConditionalCheckFailedException';
}

export class DynamoVendorStateStore implements VendorStateStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async get(vendor: string): Promise<VendorState | undefined> {
    const out = await this.ddb.send(new GetCommand({ TableName: this.table, Key: { pk: vendorPk(vendor) }, ConsistentRead: true }));
    const state = out.Item?.state as VendorState | undefined;
    if (!state) return undefined;
    return { ...emptyVendorState(vendor), ...state };
  }

  async acquire(vendor: string, owner: string, nowMs: number, expiresAtMs: number): Promise<boolean> {
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: vendorPk(vendor) },
          UpdateExpression: 'SET lockOwner = :o, lockExpiresAt = :e',
          ConditionExpression: 'attribute_not_exists(lockOwner) OR lockExpiresAt < :now OR lockOwner = :o',
          ExpressionAttributeValues: { ':o': owner, ':e': expiresAtMs, ':now': nowMs },
        }),
      );
      return true;
    } catch (e) {
      if (conditionFailed(e)) return false;
      throw e;
    }
  }

  async save(state: VendorState, owner: string, nowMs: number): Promise<void> {
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: vendorPk(state.vendor) },
          UpdateExpression: 'SET #state = :s',
          ConditionExpression: 'lockOwner = :o AND lockExpiresAt > :now',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':s': JSON.parse(JSON.stringify(state)) as VendorState, ':o': owner, ':now': nowMs },
        }),
      );
    } catch (e) {
      if (conditionFailed(e)) throw new LockLost(state.vendor);
      throw e;
    }
  }

  async release(vendor: string, owner: string): Promise<void> {
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: vendorPk(vendor) },
          UpdateExpression: 'REMOVE lockOwner, lockExpiresAt',
          ConditionExpression: 'lockOwner = :o',
          ExpressionAttributeValues: { ':o': owner },
        }),
      );
    } catch (e) {
      if (!conditionFailed(e)) throw e;
    }
  }
}
