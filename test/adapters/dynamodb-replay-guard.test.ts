/**
 * The single-use token guard against real dynalite: one conditional put per `iss#jti`, an expired
 * entry overwritten (correctness never waits for TTL deletion), no token material stored.
 */
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoReplayGuard } from '../../functions/adapters/dynamodb-replay-guard.js';
import { ensureTable, startDynalite, type EmbeddedDynamo } from '../../local/dynamo.js';

const T0 = Date.UTC(2027, 0, 15, 8, 0, 0);
const T0_S = T0 / 1000;
const TABLE = 'replay-test';
const CREDENTIALS = { accessKeyId: 'x', secretAccessKey: 'x' };

let dynamo: EmbeddedDynamo;
let raw: DynamoDBClient;
let ddb: DynamoDBDocumentClient;
let nowMs = T0;
const clock = { now: () => nowMs };

beforeAll(async () => {
  dynamo = await startDynalite({});
  raw = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
  ddb = DynamoDBDocumentClient.from(raw);
  await ensureTable(raw, TABLE);
});
afterAll(async () => {
  raw?.destroy();
  await dynamo?.close();
});

describe('DynamoReplayGuard', () => {
  const guard = () => new DynamoReplayGuard(ddb, TABLE, clock);

  it('accepts a key once, then refuses it', async () => {
    nowMs = T0;
    const g = guard();
    expect(await g.claim('https://issuer.example.com#jti-1', T0_S + 360)).toBe(true);
    expect(await g.claim('https://issuer.example.com#jti-1', T0_S + 360)).toBe(false);
    // A second guard (another Lambda instance) sees the same claim.
    expect(await guard().claim('https://issuer.example.com#jti-1', T0_S + 360)).toBe(false);
  });

  it.each([
    ['another jti', 'https://issuer.example.com#jti-2'],
    ['the same jti from another issuer', 'https://other.example.com#jti-1'],
  ])('keeps %s apart', async (_name, key) => {
    nowMs = T0;
    await guard().claim('https://issuer.example.com#jti-1', T0_S + 360);
    expect(await guard().claim(key, T0_S + 360)).toBe(true);
  });

  it.each([
    ['before its ttl', 0, false],
    ['at its ttl', 360, false],
    ['after its ttl (not yet deleted by TTL)', 361, true],
  ])('a replay %s → accepted: %s', async (name, afterS, accepted) => {
    nowMs = T0;
    const key = `https://issuer.example.com#ttl-${name}`;
    expect(await guard().claim(key, T0_S + 360)).toBe(true);
    nowMs = T0 + afterS * 1000;
    expect(await guard().claim(key, T0_S + 360 + afterS)).toBe(accepted);
  });

  it('concurrent claims of one key: exactly one wins', async () => {
    nowMs = T0;
    const results = await Promise.all(Array.from({ length: 8 }, () => guard().claim('https://issuer.example.com#race', T0_S + 360)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('stores a digest of the key, never the jti, with the ttl', async () => {
    nowMs = T0;
    const jti = 'secret-looking-jti-value';
    await guard().claim(`https://issuer.example.com#${jti}`, T0_S + 360);
    const out = await raw.send(new ScanCommand({ TableName: TABLE }));
    const text = JSON.stringify(out.Items);
    expect(text).not.toContain(jti);
    expect(text).not.toContain('issuer.example.com');
    for (const item of out.Items ?? []) {
      expect(item.pk.S).toMatch(/^jti#[0-9a-f]{64}$/);
      expect(Number(item.ttl.N)).toBeGreaterThan(T0_S);
    }
  });

  describe('when DynamoDB is unreachable', () => {
    let dead: Server;
    let port: number;
    beforeAll(async () => {
      // A loopback listener that drops every connection: the store is down, nothing leaves the host.
      dead = createServer((socket) => socket.destroy());
      await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
      port = (dead.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => dead.close(() => resolve())));

    it('throws (the caller maps it to 503), never answers a claim', async () => {
      const client = new DynamoDBClient({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
      const g = new DynamoReplayGuard(DynamoDBDocumentClient.from(client), TABLE, clock);
      await expect(g.claim('https://issuer.example.com#down', T0_S + 360)).rejects.toBeInstanceOf(Error);
      client.destroy();
    });
  });
});
