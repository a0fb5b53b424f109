/**
 * The per-principal rate counters against real dynalite with the stack's table: a window holds
 * exactly `max`, concurrent takes never overshoot, the next window starts afresh, keys are apart.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRateLimiter } from '../../functions/adapters/dynamodb-rate-limiter.js';
import { ensureTable, startDynalite, type EmbeddedDynamo } from '../../local/dynamo.js';

const TABLE = 'rates';
const T = 1_800_000_000; // a multiple of 60: the start of a window
let dynamo: EmbeddedDynamo;
let raw: DynamoDBClient;
let ddb: DynamoDBDocumentClient;
let rates: DynamoRateLimiter;

beforeAll(async () => {
  dynamo = await startDynalite({});
  raw = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
  await ensureTable(raw, TABLE);
  ddb = DynamoDBDocumentClient.from(raw);
  rates = new DynamoRateLimiter(ddb, TABLE);
});
afterAll(async () => {
  raw?.destroy();
  await dynamo?.close();
});

describe('DynamoRateLimiter', () => {
  it('lets exactly max through in a window, then refuses until the next window', async () => {
    const got = [];
    for (let i = 0; i < 5; i++) got.push(await rates.take('vend#dev|a', 3, 60, T + i));
    expect(got).toEqual([true, true, true, false, false]);
    expect(await rates.take('vend#dev|a', 3, 60, T + 59)).toBe(false);
    expect(await rates.take('vend#dev|a', 3, 60, T + 60)).toBe(true);
    expect(await rates.take('vend#dev|b', 3, 60, T + 1)).toBe(true);
  });

  it('never overshoots under concurrent takes', async () => {
    const got = await Promise.all(Array.from({ length: 20 }, () => rates.take('vend#dev|c', 7, 60, T)));
    expect(got.filter(Boolean)).toHaveLength(7);
  });

  it('stores a count and a TTL past the window, nothing else', async () => {
    await rates.take('vend#dev|d', 2, 60, T + 10);
    const item = (await ddb.send(new GetCommand({ TableName: TABLE, Key: { pk: `rate#vend#dev|d#${T}` } }))).Item;
    expect(item).toEqual({ pk: `rate#vend#dev|d#${T}`, count: 1, ttl: T + 60 + 3600 });
  });

  it('a store fault is thrown, not answered as a full window (the caller refuses with 503, not 429)', async () => {
    const missing = new DynamoRateLimiter(ddb, 'no-such-table');
    await expect(missing.take('vend#dev|e', 3, 60, T)).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});
