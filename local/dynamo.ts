/**
 * The embedded DynamoDB (dynalite) and the table tvm uses, created at start if absent with the
 * same keys and indexes as the CDK stack.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, ResourceNotFoundException } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { DUE_INDEX, PRINCIPAL_INDEX } from '../functions/adapters/dynamodb-lease-store.js';

export interface EmbeddedDynamo {
  endpoint: string;
  close(): Promise<void>;
}

/** Starts dynalite on loopback; `path` keeps the data on disk, without it the data lives in memory. */
export async function startDynalite(opts: { port?: number; path?: string }): Promise<EmbeddedDynamo> {
  // Its files hold every lease (and the data folder's other stores): readable by this user only.
  if (opts.path) mkdirSync(opts.path, { recursive: true, mode: 0o700 }), chmodSync(opts.path, 0o700);
  const server = dynalite({ path: opts.path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        // dynalite's close also closes its leveldb, so a restart on the same data can open it.
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}

/** The table: partition key `pk`; sparse GSI `due` (dueShard, dueAt) and GSI `principal` (principal, issuedAt). */
export const TABLE_DEFINITION = {
  AttributeDefinitions: [
    { AttributeName: 'pk', AttributeType: 'S' },
    { AttributeName: 'dueShard', AttributeType: 'S' },
    { AttributeName: 'dueAt', AttributeType: 'N' },
    { AttributeName: 'principal', AttributeType: 'S' },
    { AttributeName: 'issuedAt', AttributeType: 'S' },
  ],
  KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
  BillingMode: 'PAY_PER_REQUEST',
  GlobalSecondaryIndexes: [
    {
      IndexName: DUE_INDEX,
      KeySchema: [
        { AttributeName: 'dueShard', KeyType: 'HASH' },
        { AttributeName: 'dueAt', KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'ALL' },
    },
    {
      IndexName: PRINCIPAL_INDEX,
      KeySchema: [
        { AttributeName: 'principal', KeyType: 'HASH' },
        { AttributeName: 'issuedAt', KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'ALL' },
    },
  ],
} as const;

export async function ensureTable(client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
    return;
  } catch (e) {
    if (!(e instanceof ResourceNotFoundException) && (e as Error).name !== 'ResourceNotFoundException') throw e;
  }
  await client.send(new CreateTableCommand({ TableName: table, ...TABLE_DEFINITION } as never));
  // dynalite answers CreateTable while the table is still CREATING (even with createTableMs 0, it
  // turns ACTIVE on a later tick) and refuses items until then: wait for ACTIVE, bounded.
  for (let i = 0; i < 500; i++) {
    const out = await client.send(new DescribeTableCommand({ TableName: table }));
    if (out.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`table ${table} did not become ACTIVE`);
}
