/**
 * tvm as one construct: the functions, the HTTP API, the lease table, the schedules, the vendor
 * secrets, the alarms and a dashboard, built from a loaded tvm.yaml. Each function gets its own
 * role holding exactly the actions it needs; those statements are the security model, and each
 * is bound with the env var that names its resource (`bindLeaseTable`, `bindRevoker`,
 * `bindVendorSecrets`), so the two cannot drift apart.
 *
 * Every resource is created in this construct's scope (the files beside this one take it as
 * `scope`), so the logical ids are those of the stack tvm has always deployed.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import type { HttpApi, HttpStage } from 'aws-cdk-lib/aws-apigatewayv2';
import type { Alarm, Dashboard } from 'aws-cdk-lib/aws-cloudwatch';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { Role } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Topic } from 'aws-cdk-lib/aws-sns';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { TvmConfig } from '../../functions/core/config.js';
import { DEFAULT_DENY_POLICY_NAME } from '../../functions/shared/env.js';
import { createAlarms } from './alarms.js';
import { AuditQueries } from './audit-queries.js';
import { cedarWasmPath, writeBundledConfig } from './bundling.js';
import { createTvmFunction, FUNCTION_NAMES, type FunctionName } from './functions.js';
import { bindGrantRoles, bindRevoker, type GrantRoles } from './grant-roles.js';
import { createHttpApi } from './http-api.js';
import { bindLeaseTable, createLeaseTable, type LeaseTableAccess, type LeaseTableBindOptions } from './lease-table.js';
import type { BindableFunction } from './permissions.js';
import { addSchedule } from './schedules.js';
import { addSecretsManagerRotation, bindVendorSecrets, createVendorSecrets, type VendorSecrets, type VendorSecretsAccess } from './vendor-secrets.js';

export { BUNDLED_CONFIG_PATH } from './bundling.js';
export { FUNCTION_NAMES, METRICS_NAMESPACE, SERVICE_NAME, USES_CEDAR, type FunctionName } from './functions.js';
export { ROUTES } from './http-api.js';
export { INDEXES, type LeaseTableAccess, type LeaseTableBindOptions } from './lease-table.js';
export type { BindableFunction } from './permissions.js';
export type { VendorSecrets, VendorSecretsAccess } from './vendor-secrets.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface TokenVendingMachineProps {
  /** The loaded tvm.yaml (`loadConfig`), bundled into every function as JSON. */
  readonly config: TvmConfig;
  /** The folder holding `<name>/lambda.ts` (the Lambda entry) for each function. @default the repository's `functions/` */
  readonly functionsDir?: string;
  /**
   * Roles vend may assume and leases/sweep may put the deny policy on, beyond the configured
   * grants' `roleArn`s (for example a path pattern `arn:aws:iam::123456789012:role/tvm/*`).
   * @default none
   */
  readonly additionalGrantRoleArns?: string[];
  /** How often the sweep marks expiries and cleans up deny entries. @default 1 minute */
  readonly sweepEvery?: Duration;
  /** How often rotate checks due rotations and expired overlaps. @default 5 minutes */
  readonly rotateCheckEvery?: Duration;
  /** HTTP API stage throttling. @default 50 requests/s, burst 100 */
  readonly throttle?: { rateLimit: number; burstLimit: number };
  /** Retention of the function and access logs (the audit trail). @default one year */
  readonly logRetention?: RetentionDays;
  /** VendDenied per 5 minutes that counts as a spike. @default 50 */
  readonly denialsSpikeThreshold?: number;
  /** Name of the tvm-owned inline deny policy on grant roles. @default 'tvm-revocations' */
  readonly denyPolicyName?: string;
}

/**
 * The whole tvm service.
 *
 * @example
 * const config = loadConfig('config/tvm.yaml');
 * const tvm = new TokenVendingMachine(this, 'Tvm', { config });
 * new VendableRole(this, 'ReportsRead', { vendRole: tvm.vendRole });
 */
export class TokenVendingMachine extends Construct {
  readonly key: Key;
  readonly table: Table;
  readonly api: HttpApi;
  readonly stage: HttpStage;
  /** The API's base URL (ends with `/`). */
  readonly url: string;
  readonly functions: Record<FunctionName, NodejsFunction>;
  readonly roles: Record<FunctionName, Role>;
  /** The role vendable roles must trust (`VendableRole`'s `vendRole`). */
  readonly vendRole: Role;
  readonly vendorSecrets: Record<string, VendorSecrets>;
  readonly deadLetterQueue: Queue;
  readonly alarmTopic: Topic;
  readonly alarms: Alarm[];
  readonly dashboard: Dashboard;
  private readonly grantRoles: GrantRoles;

  constructor(scope: Construct, id: string, props: TokenVendingMachineProps) {
    super(scope, id);
    const { config } = props;
    const retention = props.logRetention ?? RetentionDays.ONE_YEAR;
    this.grantRoles = {
      roleArns: [...new Set([...config.grants.map((g) => g.roleArn), ...(props.additionalGrantRoleArns ?? [])])],
      accounts: config.accounts,
      denyPolicyName: props.denyPolicyName ?? DEFAULT_DENY_POLICY_NAME,
    };

    // ---- storage -------------------------------------------------------------------------
    this.key = new Key(this, 'Key', {
      description: 'tvm: leases table, vendor secrets and alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.table = createLeaseTable(this, this.key);
    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the sweep and rotate schedules and their async invocations.',
    });
    this.vendorSecrets = createVendorSecrets(this, config, this.key);

    // ---- functions ----------------------------------------------------------------------
    const files = { configFile: writeBundledConfig(config), wasmFile: cedarWasmPath() };
    const functionsDir = props.functionsDir ?? join(REPO_ROOT, 'functions');
    const functions = {} as Record<FunctionName, NodejsFunction>;
    const roles = {} as Record<FunctionName, Role>;
    for (const name of FUNCTION_NAMES) {
      ({ fn: functions[name], role: roles[name] } = createTvmFunction(this, name, { functionsDir, projectRoot: REPO_ROOT, retention, files }));
    }
    this.functions = functions;
    new AuditQueries(this, 'AuditQueries', { functions, reader: functions.leases });
    this.roles = roles;
    this.vendRole = roles.vend;

    // ---- permissions: exactly what each function does --------------------------------------
    // Every function writes the table (leases, replay markers, rate counters, rotation state);
    // only the admin listing of leases across every state scans.
    for (const name of FUNCTION_NAMES) this.bindLeaseTable(functions[name], 'write', { scan: name === 'leases' });
    bindGrantRoles(this.grantRoles, functions.vend);
    this.bindRevoker(functions.leases);
    this.bindRevoker(functions.sweep);
    this.bindVendorSecrets(functions.broker, 'read');
    this.bindVendorSecrets(functions.rotate, 'rotate');
    addSecretsManagerRotation(this, this.vendorSecrets, functions.rotate);

    // ---- schedules, API, alarms -------------------------------------------------------------
    addSchedule(this, 'sweep', functions.sweep, props.sweepEvery ?? Duration.minutes(1), this.deadLetterQueue);
    addSchedule(this, 'rotate', functions.rotate, props.rotateCheckEvery ?? Duration.minutes(5), this.deadLetterQueue);
    ({ api: this.api, stage: this.stage } = createHttpApi(this, functions, { retention, throttle: props.throttle }));
    this.url = this.stage.url;
    ({ alarmTopic: this.alarmTopic, alarms: this.alarms, dashboard: this.dashboard } = createAlarms(this, {
      key: this.key,
      functions,
      api: this.api,
      deadLetterQueue: this.deadLetterQueue,
      denialsSpikeThreshold: props.denialsSpikeThreshold ?? 50,
    }));
  }

  /** Gives `fn` the lease table: `TVM_TABLE` and exactly `access` on it (and the key through DynamoDB). */
  bindLeaseTable(fn: BindableFunction, access: LeaseTableAccess, options?: LeaseTableBindOptions): void {
    bindLeaseTable(this.table, this.key, fn, access, options);
  }

  /** Lets `fn` revoke: the deny policy's name and account in its env, the IAM calls (own account) and the revoker roles (others). */
  bindRevoker(fn: BindableFunction): void {
    bindRevoker(this.grantRoles, fn);
  }

  /** Gives `fn` the vendor secrets: `TVM_VENDOR_SECRETS` and `read` (the keys) or `rotate` (write keys, read management) on them. */
  bindVendorSecrets(fn: BindableFunction, access: VendorSecretsAccess): void {
    bindVendorSecrets(this.vendorSecrets, this.key, fn, access);
  }
}
