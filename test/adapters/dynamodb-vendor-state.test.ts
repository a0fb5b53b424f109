/** DynamoVendorStateStore against dynalite (the local stack's DynamoDB): the lock and state rules. */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe } from 'vitest';
import { DynamoVendorStateStore } from '../../functions/adapters/dynamodb-vendor-state.js';
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
