/**
 * The lease table exactly as the CDK stack defines it: the synthesized AWS::DynamoDB::Table's key
 * schema, attributes, GSIs and TTL, replayed as CreateTable/UpdateTimeToLive on an emulator (moto).
 * Nothing here restates the schema: change the construct and these tests follow it.
 */
import { CreateTableCommand, type DynamoDBClient, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { loadConfig } from '../../functions/shared/load-config.js';
import { TvmStack } from '../../infra/tvm-stack.js';
import { FIXTURE_CONFIG, STUB_FUNCTIONS } from '../infra/helpers.js';

interface CfnTableProps {
  KeySchema: { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
  AttributeDefinitions: { AttributeName: string; AttributeType: 'S' | 'N' | 'B' }[];
  GlobalSecondaryIndexes?: { IndexName: string; KeySchema: CfnTableProps['KeySchema']; Projection: { ProjectionType: 'ALL' | 'KEYS_ONLY' | 'INCLUDE' } }[];
  BillingMode?: 'PAY_PER_REQUEST' | 'PROVISIONED';
  TimeToLiveSpecification?: { AttributeName: string; Enabled: boolean };
}

let cached: CfnTableProps | undefined;

/**
 * The table's properties from the synthesized template (bundling skipped). With
 * `TVM_INFRA_TABLE_CACHE` (scripts/mutation.mjs sets a fresh file per run: Stryker re-runs a test
 * file per mutant, and the synth costs 10–60 s each time) the first synth is kept in that file.
 */
export function infraTableProps(): CfnTableProps {
  if (cached) return cached;
  const cacheFile = process.env.TVM_INFRA_TABLE_CACHE;
  if (cacheFile && existsSync(cacheFile)) {
    cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as CfnTableProps;
    return cached;
  }
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  new TvmStack(app, 'Tvm', { config: loadConfig(FIXTURE_CONFIG), functionsDir: STUB_FUNCTIONS });
  const template = app.synth().getStackByName('Tvm').template as { Resources: Record<string, { Type: string; Properties: CfnTableProps }> };
  const tables = Object.values(template.Resources).filter((r) => r.Type === 'AWS::DynamoDB::Table');
  if (tables.length !== 1) throw new Error(`expected one AWS::DynamoDB::Table in the stack, found ${tables.length}`);
  cached = tables[0].Properties;
  if (cacheFile) writeFileSync(cacheFile, JSON.stringify(cached));
  return cached;
}

/** Creates `table` on the emulator with the stack's definition. */
export async function createInfraTable(client: DynamoDBClient, table: string): Promise<CfnTableProps> {
  const p = infraTableProps();
  await client.send(
    new CreateTableCommand({
      TableName: table,
      KeySchema: p.KeySchema,
      AttributeDefinitions: p.AttributeDefinitions,
      GlobalSecondaryIndexes: p.GlobalSecondaryIndexes,
      BillingMode: p.BillingMode ?? 'PAY_PER_REQUEST',
    }),
  );
  if (p.TimeToLiveSpecification?.Enabled) {
    await client.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: p.TimeToLiveSpecification }));
  }
  return p;
}
