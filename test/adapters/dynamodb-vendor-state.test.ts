/** DynamoVendorStateStore against dynalite (the local stack's DynamoDB): the lock and state rules. */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoVendorStateStore } from '../../functions/adapters/dynamodb-vendor-state.js';
import { emptyVendorState } from '../../functions/core/vendor-ports.js';
import { ensureTable, startDynalite, type EmbeddedDynamo } from '../../local/dynamo.js';
import { vendorStateStoreContract } from './vendor-state-contract.js';

const TABLE = 'vendor-state-test';
let dynamo: EmbeddedDynamo;
let raw: DynamoDBClient;
let ddb: DynamoDBDocumentClient;

beforeAll(async () => {
  dynamo = await startDynalite({});
  raw = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
  ddb = DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
  await ensureTable(raw, TABLE);
});
afterAll(async () => {
  raw?.destroy();
  await dynamo?.close();
});

describe('DynamoVendorStateStore (dynalite)', () => {
  vendorStateStoreContract(() => new DynamoVendorStateStore(ddb, TABLE));
});

describe('DynamoVendorStateStore when DynamoDB fails (not a lost condition)', () => {
  // A table that does not exist: every call fails with ResourceNotFoundException, which must reach
  // the caller (the rotation stops and reports) — not read as "lock held by another", "lock lost"
  // or a silent release.
  const broken = () => new DynamoVendorStateStore(ddb, 'no-such-table');
  it('acquire, save and release throw the store error', async () => {
    await expect(broken().acquire('datadog', 'me', 1_000, 2_000)).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(broken().save(emptyVendorState('datadog'), 'me', 1_000)).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(broken().release('datadog', 'me')).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});
