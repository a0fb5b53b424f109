/**
 * The lease table: leases, replay markers, rate counters and vendor rotation state, one table
 * with two indexes. `bindLeaseTable` gives a function the table's name and its permission in one
 * call, so the two cannot drift apart.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, type ITable, ProjectionType, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';
import { ENV } from '../../functions/shared/env.js';
import { type BindableFunction, keyVia, roleOf } from './permissions.js';

/** The GSIs the lease store queries. */
export const INDEXES = {
  /** Sparse: pending and active leases, sharded, by due time (sweep, bulk revocation). */
  due: { partitionKey: 'dueShard', sortKey: 'dueAt', sortKeyType: AttributeType.NUMBER },
  /** Leases of one principal, by issue time. */
  principal: { partitionKey: 'principal', sortKey: 'issuedAt', sortKeyType: AttributeType.STRING },
} as const;

/** `read`: get and query. `write`: also conditional puts and updates. Never deletes: TTL removes records. */
export type LeaseTableAccess = 'read' | 'write';

export interface LeaseTableBindOptions {
  /** Scan the table too: only the admin listing of leases across every state needs it. @default false */
  readonly scan?: boolean;
}

const ITEM_ACTIONS: Record<LeaseTableAccess, string[]> = {
  read: ['dynamodb:GetItem'],
  write: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
};

const KEY_ACTIONS: Record<LeaseTableAccess, string[]> = {
  read: ['kms:Decrypt', 'kms:DescribeKey'],
  write: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'],
};

/** The table (`Table`, in `scope`), encrypted with `key`, retained and deletion-protected. */
export function createLeaseTable(scope: Construct, key: IKey): Table {
  const table = new Table(scope, 'Table', {
    partitionKey: { name: 'pk', type: AttributeType.STRING },
    billingMode: BillingMode.PAY_PER_REQUEST,
    timeToLiveAttribute: 'ttl',
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    encryption: TableEncryption.CUSTOMER_MANAGED,
    encryptionKey: key,
    deletionProtection: true,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  for (const [indexName, index] of Object.entries(INDEXES)) {
    table.addGlobalSecondaryIndex({
      indexName,
      partitionKey: { name: index.partitionKey, type: AttributeType.STRING },
      sortKey: { name: index.sortKey, type: index.sortKeyType },
      projectionType: ProjectionType.ALL,
    });
  }
  return table;
}

/**
 * Sets `TVM_TABLE` on `fn` and grants exactly `access` on the table, its named indexes (never
 * `index/*`) and the key through DynamoDB.
 *
 * @example
 * bindLeaseTable(table, key, fn, 'write');
 */
export function bindLeaseTable(table: ITable, key: IKey, fn: BindableFunction, access: LeaseTableAccess, options: LeaseTableBindOptions = {}): void {
  const role = roleOf(fn);
  fn.addEnvironment(ENV.table, table.tableName);
  const items = [...ITEM_ACTIONS[access], ...(options.scan ? ['dynamodb:Scan'] : [])].sort();
  const indexArns = Object.keys(INDEXES).map((index) => `${table.tableArn}/index/${index}`);
  role.addToPrincipalPolicy(new PolicyStatement({ sid: 'LeaseTableItems', actions: items, resources: [table.tableArn] }));
  role.addToPrincipalPolicy(new PolicyStatement({ sid: 'LeaseTableQueries', actions: ['dynamodb:Query'], resources: [table.tableArn, ...indexArns] }));
  role.addToPrincipalPolicy(keyVia(key, 'KeyViaDynamoDB', 'dynamodb', KEY_ACTIONS[access]));
}
