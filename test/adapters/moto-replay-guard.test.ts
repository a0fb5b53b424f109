/**
 * Conformance against moto: the real DynamoReplayGuard over moto's DynamoDB, on a table created
 * from the synthesized stack. A token id is claimed once until its expiry; after it the claim is
 * free again (correctness never waits for TTL deletion); concurrent claims admit exactly one;
 * the table holds a digest of the id, never the id.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoReplayGuard } from '../../functions/adapters/dynamodb-replay-guard.js';
import { createInfraTable, infraTableProps } from '../helpers/infra-table.js';
import { hasMoto, MOTO_CREDENTIALS, startMoto, type Moto } from '../helpers/moto.js';

const TABLE = 'tvm-replay-moto';
const T0_S = Date.UTC(2031, 0, 1) / 1000;

describe.skipIf(!hasMoto('replay guard conformance'))('DynamoReplayGuard against moto', () => {
  let moto: Moto;
  let raw: DynamoDBClient;
  let ddb: DynamoDBDocumentClient;
  let nowS = T0_S;
  const clock = { now: () => nowS * 1000 };

  beforeAll(async () => {
    const starting = startMoto();
    infraTableProps(); // synthesizes the stack (CPU) while moto boots
    moto = await starting;
    raw = new DynamoDBClient({ region: 'us-east-1', credentials: MOTO_CREDENTIALS, endpoint: moto.endpoint, maxAttempts: 1 });
    ddb = DynamoDBDocumentClient.from(raw);
    await createInfraTable(raw, TABLE);
  }, 240_000); // synthesizing the stack takes 10–60 s on a loaded machine
  afterAll(async () => {
    raw?.destroy();
    await moto?.close();
  });

  const key = () => `https://ci.example.com#jti-${randomUUID()}`;

  it('admits a token id once, until it expires', async () => {
    nowS = T0_S;
    const g = new DynamoReplayGuard(ddb, TABLE, clock);
    const k = key();
    expect(await g.claim(k, T0_S + 300)).toBe(true);
    expect(await g.claim(k, T0_S + 300)).toBe(false);
    nowS = T0_S + 300; // at its expiry: still held (the condition is ttl < now)
    expect(await g.claim(k, T0_S + 600)).toBe(false);
    nowS = T0_S + 301; // past it: the stale item is overwritten, whether or not TTL deleted it
    expect(await g.claim(k, T0_S + 900)).toBe(true);
    expect(await g.claim(k, T0_S + 900)).toBe(false);
    expect(await g.claim(key(), T0_S + 900)).toBe(true);
  });

  it('admits exactly one of 20 concurrent claims of the same id', async () => {
    nowS = T0_S;
    const g = new DynamoReplayGuard(ddb, TABLE, clock);
    const k = key();
    const results = await Promise.all(Array.from({ length: 20 }, () => g.claim(k, T0_S + 300)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('stores a digest of the id with its expiry, never the id', async () => {
    nowS = T0_S;
    const g = new DynamoReplayGuard(ddb, TABLE, clock);
    const k = key();
    await g.claim(k, T0_S + 300);
    const items = (await raw.send(new ScanCommand({ TableName: TABLE }))).Items ?? [];
    const text = JSON.stringify(items);
    expect(text).not.toContain(k.split('#')[1]);
    expect(items.every((i) => /^jti#[0-9a-f]{64}$/.test(i.pk.S!))).toBe(true);
    expect(items.some((i) => i.ttl?.N === String(T0_S + 300))).toBe(true);
  });

  it('passes an error that is not a failed condition through (fail closed: the caller refuses)', async () => {
    const g = new DynamoReplayGuard(ddb, 'no-such-table', clock);
    await expect(g.claim(key(), T0_S + 300)).rejects.toThrow(/ResourceNotFound|not found|non-existent/i);
  });
});
