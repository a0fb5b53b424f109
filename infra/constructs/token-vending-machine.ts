/**
 * tvm as one construct: the functions, the HTTP API, the lease table, the schedules, the vendor
 * secrets, the alarms and a dashboard, built from a loaded tvm.yaml. Each function gets its own
 * role holding exactly the actions it needs; those statements are the security model.
 */
import { AuditQueries } from './audit-queries.js';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aws, Duration, RemovalPolicy, SecretValue, Stack, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import { HttpApi, HttpMethod, HttpStage, LogGroupLogDestination, type IHttpRouteAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  MathExpression,
  Metric,
  TreatMissingData,
  type IMetric,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { AttributeType, BillingMode, ProjectionType, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Architecture, type CfnFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Schedule, ScheduleExpression } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import { CfnRotationSchedule, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { accountOf, type TvmConfig } from '../../functions/core/config.js';
import { ROTATE_FUNCTION_TIMEOUT_SECONDS } from '../../functions/core/rotation/lock.js';
import { NOT_CONFIGURED } from '../../functions/core/rotation/vendor-key.js';
import { compiledConfigJson } from '../../functions/shared/compiled-config.js';
import { DEFAULT_DENY_POLICY_NAME, ENV } from '../../functions/shared/env.js';

/** The functions tvm deploys, by the folder of their handler under `functions/`. */
export const FUNCTION_NAMES = ['vend', 'leases', 'broker', 'sweep', 'rotate'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** The functions that decide with Cedar (and so carry its .wasm); sweep and rotate do not. */
export const USES_CEDAR: readonly FunctionName[] = ['vend', 'leases', 'broker'];

/** The GSIs the lease store queries. */
export const INDEXES = {
  /** Sparse: pending and active leases, sharded, by due time (sweep, bulk revocation). */
  due: { partitionKey: 'dueShard', sortKey: 'dueAt' },
  /** Leases of one principal, by issue time. */
  principal: { partitionKey: 'principal', sortKey: 'issuedAt' },
} as const;

/** Powertools metrics (EMF) the functions emit; the alarms are built on them. */
export const METRICS_NAMESPACE = 'tvm';
export const SERVICE_NAME = 'tvm';

/** Where the bundled config sits in each function: relative to the task root, where Lambda unpacks the asset. */
export const BUNDLED_CONFIG_PATH = 'tvm-config.json';

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

interface FunctionSpec {
  timeout: Duration;
  memorySize: number;
  description: string;
}

const SPECS: Record<FunctionName, FunctionSpec> = {
  vend: { timeout: Duration.seconds(10), memorySize: 1024, description: 'tvm: exchange a workload token for leased STS credentials' },
  leases: { timeout: Duration.seconds(29), memorySize: 1024, description: 'tvm: read and revoke leases (self and admin)' },
  broker: { timeout: Duration.seconds(29), memorySize: 1024, description: 'tvm: forward calls to vendors with the key added' },
  sweep: { timeout: Duration.minutes(5), memorySize: 1024, description: 'tvm: mark expired leases and clean up deny entries' },
  // The rotation lock lasts this long (functions/core/rotation/lock.ts): one number for both.
  rotate: { timeout: Duration.seconds(ROTATE_FUNCTION_TIMEOUT_SECONDS), memorySize: 1024, description: 'tvm: rotate vendor keys (Secrets Manager four steps)' },
};

/**
 * DynamoDB item actions per function: reads and conditional writes; no deletes (TTL removes
 * records). Every function also queries the table and its indexes; only the admin listing of
 * leases across every state scans.
 */
const TABLE_ACTIONS: Record<FunctionName, string[]> = {
  vend: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
  leases: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Scan', 'dynamodb:UpdateItem'],
  broker: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
  sweep: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
  rotate: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
};

export interface VendorSecrets {
  /** The vendor API key tvm rotates and the broker adds to calls. */
  readonly key: Secret;
  /** The credential that creates and revokes keys at the vendor; never brokered. */
  readonly management: Secret;
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
  readonly alarms: Alarm[] = [];
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: TokenVendingMachineProps) {
    super(scope, id);
    const { config } = props;
    const functionsDir = props.functionsDir ?? join(REPO_ROOT, 'functions');
    // Bundle from this package's root and lock file wherever `cdk` is run from.
    const lockFile = join(REPO_ROOT, 'package-lock.json');
    const project = existsSync(lockFile) ? { depsLockFilePath: lockFile, projectRoot: REPO_ROOT } : {};
    const retention = props.logRetention ?? RetentionDays.ONE_YEAR;
    const grantRoleArns = [...new Set([...config.grants.map((g) => g.roleArn), ...(props.additionalGrantRoleArns ?? [])])];

    // ---- storage -------------------------------------------------------------------------
    this.key = new Key(this, 'Key', {
      description: 'tvm: leases table, vendor secrets and alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.table = new Table(this, 'Table', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'ttl',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: 'due',
      partitionKey: { name: INDEXES.due.partitionKey, type: AttributeType.STRING },
      sortKey: { name: INDEXES.due.sortKey, type: AttributeType.NUMBER },
      projectionType: ProjectionType.ALL,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: 'principal',
      partitionKey: { name: INDEXES.principal.partitionKey, type: AttributeType.STRING },
      sortKey: { name: INDEXES.principal.sortKey, type: AttributeType.STRING },
      projectionType: ProjectionType.ALL,
    });

    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the sweep and rotate schedules and their async invocations.',
    });

    // ---- vendor secrets --------------------------------------------------------------------
    this.vendorSecrets = {};
    for (const vendor of config.vendors) {
      const suffix = pascal(vendor.name);
      // Retained with the stack's deletion: the keys they hold stay live at the vendor until
      // someone revokes them, and the management credential was set by hand.
      // Both start as the placeholder tvm reads as "not configured" (never a generated value the
      // code would take for a credential): no rotation until an operator sets the management one.
      const placeholder = SecretValue.unsafePlainText(NOT_CONFIGURED);
      const key = new Secret(this, `Vendor${suffix}Key`, {
        description: `tvm: ${vendor.name} API key (rotated by tvm, used only through the broker)`,
        encryptionKey: this.key,
        removalPolicy: RemovalPolicy.RETAIN,
        secretStringValue: placeholder,
      });
      const management = new Secret(this, `Vendor${suffix}Management`, {
        description: `tvm: ${vendor.name} management credential (creates and revokes keys; set by an operator)`,
        encryptionKey: this.key,
        removalPolicy: RemovalPolicy.RETAIN,
        secretStringValue: placeholder,
      });
      Validations.of(key).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          "tvm rotates the key on its own EventBridge schedule (rotation.every) and is the secret's rotation Lambda; a second Secrets Manager schedule would rotate on a clock of its own (docs/vendors.md).",
      });
      Validations.of(management).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'The vendor management credential (Datadog application key, OpenAI admin key) can only be created by a person at the vendor; an operator rotates it. tvm rotates the API key secret.',
      });
      this.vendorSecrets[vendor.name] = { key, management };
    }
    const vendorSecretsEnv = JSON.stringify(
      Object.fromEntries(
        Object.entries(this.vendorSecrets).map(([name, s]) => [name, { key: s.key.secretArn, management: s.management.secretArn }]),
      ),
    );

    // ---- functions ----------------------------------------------------------------------
    const configFile = writeBundledConfig(config);
    const wasmFile = cedarWasmPath();
    const denyPolicyName = props.denyPolicyName ?? DEFAULT_DENY_POLICY_NAME;
    const extraEnv: Record<FunctionName, Record<string, string>> = {
      vend: {},
      leases: { [ENV.denyPolicyName]: denyPolicyName, [ENV.account]: Aws.ACCOUNT_ID },
      broker: { [ENV.vendorSecrets]: vendorSecretsEnv },
      sweep: { [ENV.denyPolicyName]: denyPolicyName, [ENV.account]: Aws.ACCOUNT_ID },
      rotate: { [ENV.vendorSecrets]: vendorSecretsEnv },
    };

    const functions = {} as Record<FunctionName, NodejsFunction>;
    const roles = {} as Record<FunctionName, Role>;
    for (const name of FUNCTION_NAMES) {
      const entry = join(functionsDir, name, 'lambda.ts');
      const suffix = pascal(name);
      const logGroup = new LogGroup(this, `${suffix}Logs`, { retention, removalPolicy: RemovalPolicy.RETAIN });
      const role = new Role(this, `${suffix}Role`, {
        assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
        description: `tvm ${name} function`,
      });
      role.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'Logs',
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [logGroup.logGroupArn],
        }),
      );
      const fn = new NodejsFunction(this, `${suffix}Function`, {
        entry,
        ...project,
        handler: 'handler',
        runtime: Runtime.NODEJS_24_X,
        architecture: Architecture.ARM_64,
        role,
        logGroup,
        ...SPECS[name],
        environment: {
          [ENV.table]: this.table.tableName,
          [ENV.config]: BUNDLED_CONFIG_PATH,
          POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
          POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
          NODE_OPTIONS: '--enable-source-maps',
          ...extraEnv[name],
        },
        bundling: {
          format: OutputFormat.CJS,
          target: 'node24',
          minify: true,
          sourceMap: true,
          bundleAwsSDK: true,
          externalModules: [],
          // The SDK's ES modules, so esbuild keeps only the commands a function sends (its
          // CommonJS build carries every command of every client it imports).
          mainFields: ['module', 'main'],
          commandHooks: {
            beforeBundling: () => [],
            beforeInstall: () => [],
            // The config travels with the code, so what was validated at synth is what runs;
            // cedar-wasm loads its .wasm from beside the CommonJS bundle.
            afterBundling: (_inputDir: string, outputDir: string) => [
              `cp ${shellQuote(configFile)} ${shellQuote(join(outputDir, 'tvm-config.json'))}`,
              ...(USES_CEDAR.includes(name) ? [`cp ${shellQuote(wasmFile)} ${shellQuote(join(outputDir, 'cedar_wasm_bg.wasm'))}`] : []),
            ],
          },
        },
      });
      functions[name] = fn;
      roles[name] = role;
    }
    this.functions = functions;
    new AuditQueries(this, 'AuditQueries', { functions, reader: functions.leases });
    this.roles = roles;
    this.vendRole = roles.vend;

    // ---- permissions: exactly what each function does --------------------------------------
    const tableArn = this.table.tableArn;
    const indexArns = Object.keys(INDEXES).map((index) => `${tableArn}/index/${index}`);
    for (const name of FUNCTION_NAMES) {
      roles[name].addToPrincipalPolicy(
        new PolicyStatement({ sid: 'LeaseTableItems', actions: TABLE_ACTIONS[name], resources: [tableArn] }),
      );
      roles[name].addToPrincipalPolicy(
        new PolicyStatement({ sid: 'LeaseTableQueries', actions: ['dynamodb:Query'], resources: [tableArn, ...indexArns] }),
      );
    }
    // The key only through the services that use it: the table for everyone; secrets only for
    // the two functions that read them, and only rotate writes them.
    const keyVia = (sid: string, service: string, actions: string[]) =>
      new PolicyStatement({
        sid,
        actions,
        resources: [this.key.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `${service}.${Aws.REGION}.amazonaws.com` } },
      });
    for (const name of FUNCTION_NAMES) {
      roles[name].addToPrincipalPolicy(
        keyVia('KeyViaDynamoDB', 'dynamodb', ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey']),
      );
    }
    if (config.vendors.length > 0) {
      roles.broker.addToPrincipalPolicy(keyVia('KeyViaSecretsManager', 'secretsmanager', ['kms:Decrypt']));
      roles.rotate.addToPrincipalPolicy(keyVia('KeyViaSecretsManager', 'secretsmanager', ['kms:Decrypt', 'kms:GenerateDataKey']));
    }

    if (grantRoleArns.length > 0) {
      roles.vend.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'AssumeGrantRoles',
          actions: ['sts:AssumeRole', 'sts:SetSourceIdentity', 'sts:TagSession'],
          resources: grantRoleArns,
        }),
      );
      // IAM has no condition key for an inline policy's name, so the tvm-owned policy name is
      // enforced by the code, and the roles are what IAM can pin. Listing and reading the
      // role's other inline policies measures the budget left before the fallback deny.
      // Roles in another account are edited through that account's revoker role instead.
      const ownRoles = grantRoleArns.filter((arn) => !((accountOf(arn) ?? '') in (config.accounts ?? {})));
      for (const name of ['leases', 'sweep'] as const) {
        if (ownRoles.length) {
          roles[name].addToPrincipalPolicy(
            new PolicyStatement({
              sid: 'RevocationDenyPolicy',
              actions: ['iam:DeleteRolePolicy', 'iam:GetRolePolicy', 'iam:ListRolePolicies', 'iam:PutRolePolicy'],
              resources: ownRoles,
            }),
          );
        }
      }
    }
    const revokerRoleArns = Object.values(config.accounts ?? {}).map((a) => a.revokerRoleArn);
    if (revokerRoleArns.length) {
      for (const name of ['leases', 'sweep'] as const) {
        roles[name].addToPrincipalPolicy(new PolicyStatement({ sid: 'AssumeRevokerRoles', actions: ['sts:AssumeRole'], resources: revokerRoleArns }));
      }
    }

    const keySecretArns = Object.values(this.vendorSecrets).map((s) => s.key.secretArn);
    const managementSecretArns = Object.values(this.vendorSecrets).map((s) => s.management.secretArn);
    if (keySecretArns.length > 0) {
      roles.rotate.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'RotateVendorKeys',
          actions: [
            'secretsmanager:DescribeSecret',
            'secretsmanager:GetSecretValue',
            'secretsmanager:PutSecretValue',
            'secretsmanager:UpdateSecretVersionStage',
          ],
          resources: keySecretArns,
        }),
      );
      roles.rotate.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'ReadVendorManagement',
          actions: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
          resources: managementSecretArns,
        }),
      );
      roles.broker.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'ReadVendorKeys',
          actions: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
          resources: keySecretArns,
        }),
      );
    }

    // ---- Secrets Manager rotation: RotateSecret runs the same four steps -------------------
    // No rotation rules: tvm's own schedule is the one clock (docs/vendors.md, "The Secrets
    // Manager schedule"); RotateSecret ("rotate now") still runs the rotate function's four steps.
    for (const vendorName of Object.keys(this.vendorSecrets)) {
      const secrets = this.vendorSecrets[vendorName];
      const suffix = pascal(vendorName);
      functions.rotate.addPermission(`SecretsManagerRotates${suffix}`, {
        principal: new ServicePrincipal('secretsmanager.amazonaws.com'),
        sourceAccount: Aws.ACCOUNT_ID,
      });
      const rotation = new CfnRotationSchedule(this, `Vendor${suffix}KeyRotation`, {
        secretId: secrets.key.secretArn,
        rotationLambdaArn: functions.rotate.functionArn,
        // The first key arrives once an operator has set the management credential.
        rotateImmediatelyOnUpdate: false,
      });
      rotation.node.addDependency(functions.rotate.permissionsNode.findChild(`SecretsManagerRotates${suffix}`));
    }

    // ---- schedules ------------------------------------------------------------------------
    const scheduled = (name: 'sweep' | 'rotate', every: Duration) => {
      functions[name].configureAsyncInvoke({
        retryAttempts: 1,
        maxEventAge: Duration.hours(1),
        onFailure: new SqsDestination(this.deadLetterQueue),
      });
      const role = new Role(this, `${pascal(name)}ScheduleRole`, {
        assumedBy: new ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } } }),
        description: `tvm ${name} schedule`,
      });
      const schedule = new Schedule(this, `${pascal(name)}Schedule`, {
        description: `tvm ${name}`,
        schedule: ScheduleExpression.rate(every),
        target: new LambdaInvoke(functions[name], {
          role,
          deadLetterQueue: this.deadLetterQueue,
          retryAttempts: 2,
          maxEventAge: Duration.minutes(10),
        }),
      });
      const fnLogicalId = Stack.of(this).resolve(Stack.of(this).getLogicalId(functions[name].node.defaultChild as CfnFunction));
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${fnLogicalId}.Arn>:*]`,
        reason: `lambda:InvokeFunction on the ${name} function and its versions (ARN:*), as CDK's grantInvoke writes it: one function, one action.`,
      });
      return schedule;
    };
    scheduled('sweep', props.sweepEvery ?? Duration.minutes(1));
    scheduled('rotate', props.rotateCheckEvery ?? Duration.minutes(5));

    // ---- HTTP API -----------------------------------------------------------------------
    this.api = new HttpApi(this, 'Api', {
      description: 'tvm: token vending machine',
      createDefaultStage: false,
    });
    const accessLogs = new LogGroup(this, 'ApiAccessLogs', { retention, removalPolicy: RemovalPolicy.RETAIN });
    this.stage = new HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: props.throttle ?? { rateLimit: 50, burstLimit: 100 },
      accessLogSettings: {
        destination: new LogGroupLogDestination(accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            ip: '$context.identity.sourceIp',
            caller: '$context.identity.userArn',
            requestTime: '$context.requestTime',
            method: '$context.httpMethod',
            routeKey: '$context.routeKey',
            status: '$context.status',
            protocol: '$context.protocol',
            responseLength: '$context.responseLength',
            latencyMs: '$context.responseLatency',
            integrationError: '$context.integrationErrorMessage',
          }),
        ),
      },
    });
    this.url = this.stage.url;

    const iam = new HttpIamAuthorizer();
    const integrations = {} as Record<FunctionName, HttpLambdaIntegration>;
    for (const name of FUNCTION_NAMES) integrations[name] = new HttpLambdaIntegration(`${pascal(name)}Integration`, functions[name]);
    const routes: { path: string; method: HttpMethod; fn: FunctionName; admin: boolean }[] = [
      { path: '/v1/vend', method: HttpMethod.POST, fn: 'vend', admin: false },
      { path: '/v1/credentials/{grant}', method: HttpMethod.GET, fn: 'vend', admin: false },
      { path: '/v1/leases/{id}', method: HttpMethod.GET, fn: 'leases', admin: false },
      { path: '/v1/leases/{id}/revoke', method: HttpMethod.POST, fn: 'leases', admin: false },
      { path: '/v1/broker/{vendor}/{proxy+}', method: HttpMethod.ANY, fn: 'broker', admin: false },
      { path: '/v1/admin/leases', method: HttpMethod.GET, fn: 'leases', admin: true },
      { path: '/v1/admin/leases/{id}', method: HttpMethod.GET, fn: 'leases', admin: true },
      { path: '/v1/admin/revoke', method: HttpMethod.POST, fn: 'leases', admin: true },
      { path: '/v1/admin/events', method: HttpMethod.GET, fn: 'leases', admin: true },
      { path: '/v1/admin/sweep', method: HttpMethod.POST, fn: 'sweep', admin: true },
      { path: '/v1/admin/vendors', method: HttpMethod.GET, fn: 'rotate', admin: true },
      { path: '/v1/admin/vendors/{name}/rotate', method: HttpMethod.POST, fn: 'rotate', admin: true },
    ];
    for (const r of routes) {
      const authorizer: IHttpRouteAuthorizer | undefined = r.admin ? iam : undefined;
      const [route] = this.api.addRoutes({ path: r.path, methods: [r.method], integration: integrations[r.fn], authorizer });
      if (!r.admin) {
        Validations.of(route).acknowledge({
          id: 'AwsSolutions-APIG4',
          reason:
            'Workload routes authenticate in the function: a JWT from any configured issuer (an API Gateway JWT authorizer takes one issuer), single-use jti replay checks, the raw Authorization header of the container-credentials protocol, and Cedar authorization per request.',
        });
      }
    }

    // ---- alarms and dashboard --------------------------------------------------------------
    this.alarmTopic = new Topic(this, 'AlarmTopic', { displayName: 'tvm alarms', masterKey: this.key, enforceSSL: true });
    // A topic policy replaces SNS's default one: without this Allow, CloudWatch may not publish.
    this.alarmTopic.addToResourcePolicy(
      new PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.alarmTopic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:cloudwatch:${Aws.REGION}:${Aws.ACCOUNT_ID}:alarm:*` },
        },
      }),
    );
    this.key.grant(new ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
    const action = new SnsAction(this.alarmTopic);
    const metric = (metricName: string, statistic = 'Sum') =>
      new Metric({ namespace: METRICS_NAMESPACE, metricName, dimensionsMap: { service: SERVICE_NAME }, statistic, period: Duration.minutes(5) });
    const alarm = (id: string, m: IMetric, threshold: number, description: string, evaluationPeriods = 1) => {
      const a = new Alarm(this, id, {
        metric: m,
        threshold,
        evaluationPeriods,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      a.addAlarmAction(action);
      this.alarms.push(a);
      return a;
    };

    const vendErrorRate = new MathExpression({
      expression: 'IF(issued + denied + errors >= 10, 100 * errors / (issued + denied + errors), 0)',
      usingMetrics: { issued: metric('VendIssued'), denied: metric('VendDenied'), errors: metric('VendErrors') },
      period: Duration.minutes(5),
      label: 'vend 5xx %',
    });
    alarm('VendErrorRateAlarm', vendErrorRate, 5, 'More than 5% of vend requests answered 5xx (at least 10 requests in 5 minutes).', 2);
    alarm(
      'VendDenialsSpikeAlarm',
      // Policy denials and rejected tokens (401: bad, expired or foreign tokens, i.e. probing).
      new MathExpression({
        expression: 'denied + rejected',
        usingMetrics: { denied: metric('VendDenied'), rejected: metric('TokenRejected') },
        period: Duration.minutes(5),
        label: 'denials and rejected tokens',
      }),
      props.denialsSpikeThreshold ?? 50,
      'Vend denials spiked: a misconfigured workload, or someone probing with tokens.',
    );
    alarm('RotationFailureAlarm', metric('RotationFailures'), 1, 'A vendor key rotation failed; the current key stays, the next run retries.');
    alarm(
      'SweepFailureAlarm',
      new MathExpression({
        expression: 'sweepErrors + lambdaErrors',
        usingMetrics: { sweepErrors: metric('SweepErrors'), lambdaErrors: functions.sweep.metricErrors({ period: Duration.minutes(5) }) },
        period: Duration.minutes(5),
        label: 'sweep failures',
      }),
      1,
      'The sweep failed: expiries and deny-entry cleanup are behind.',
    );
    alarm(
      'RevocationFallbackAlarm',
      metric('RevocationFallback'),
      1,
      "A revocation fell back to denying every earlier session of a role: the role's inline policy budget is full.",
    );
    alarm(
      'DeadLetterQueueAlarm',
      this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' }),
      1,
      'A scheduled sweep or rotate run could not be delivered or failed after retries.',
    );
    alarm('BrokerErrorsAlarm', metric('BrokerErrors'), 10, 'Broker calls are failing (vendor unavailable or tvm errors).');
    for (const name of FUNCTION_NAMES) {
      alarm(`${pascal(name)}FunctionErrorsAlarm`, functions[name].metricErrors({ period: Duration.minutes(5) }), 1, `The ${name} function threw.`);
    }

    this.dashboard = new Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    this.dashboard.addWidgets(
      new GraphWidget({ title: 'Vend', left: [metric('VendIssued'), metric('VendDenied'), metric('VendErrors')], width: 12 }),
      new GraphWidget({ title: 'Vend 5xx %', left: [vendErrorRate], width: 12 }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({ title: 'Sweep and revocation', left: [metric('SweepSettled'), metric('SweepErrors'), metric('RevocationFallback')], width: 12 }),
      new GraphWidget({ title: 'Vendors', left: [metric('RotationFailures'), metric('BrokerErrors')], width: 12 }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'API',
        left: [this.api.metricCount({ period: Duration.minutes(5) }), this.api.metricClientError({ period: Duration.minutes(5) }), this.api.metricServerError({ period: Duration.minutes(5) })],
        right: [this.api.metricLatency({ statistic: 'p99', period: Duration.minutes(5) })],
        width: 12,
      }),
      new GraphWidget({
        title: 'Function errors / DLQ depth',
        left: FUNCTION_NAMES.map((n) => functions[n].metricErrors({ period: Duration.minutes(5), label: n })),
        right: [this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) })],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(new AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24 }));

  }
}

/** `FooBar` from `foo-bar`, for construct ids. */
function pascal(name: string): string {
  return name
    .split(/[^a-zA-Z0-9]+/)
    .filter(Boolean)
    .map((p) => p[0].toUpperCase() + p.slice(1))
    .join('');
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Writes the config JSON the functions load, named by its content so synths stay stable. */
function writeBundledConfig(config: TvmConfig): string {
  const json = compiledConfigJson(config);
  const dir = join(tmpdir(), 'tvm-cdk');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `tvm-config-${createHash('sha256').update(json).digest('hex').slice(0, 16)}.json`);
  if (!existsSync(file)) {
    // Write then rename, so a concurrent synth never copies a half-written file.
    const partial = `${file}.${process.pid}.tmp`;
    writeFileSync(partial, json);
    renameSync(partial, file);
  }
  return file;
}

function cedarWasmPath(): string {
  const require = createRequire(import.meta.url);
  const file = join(dirname(require.resolve('@cedar-policy/cedar-wasm/nodejs')), 'cedar_wasm_bg.wasm');
  if (!existsSync(file)) throw new Error(`cedar-wasm's ${file} is missing; run npm ci`);
  return file;
}
