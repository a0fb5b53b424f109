import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { type CfnRole, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { type CfnFunction, Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTION_NAMES, type FunctionName } from '../../infra/constructs/token-vending-machine.js';
import { VendableRole } from '../../infra/constructs/vendable-role.js';
import type { TvmStack } from '../../infra/tvm-stack.js';
import { actionsOf, buildStack, fixtureConfig, statementsOfRole, synthTemplate, type Statement } from './helpers.js';

let stack: TvmStack;
let template: Template;

beforeAll(() => {
  ({ stack, template } = synthTemplate());
});

const logicalId = (c: { node: { defaultChild?: unknown } }) => stack.resolve(stack.getLogicalId(c.node.defaultChild as CfnRole)) as string;
const roleStatements = (name: FunctionName) => statementsOfRole(template, logicalId(stack.tvm.roles[name]));
const ref = (c: { node: { defaultChild?: unknown } }) => ({ Ref: logicalId(c) });
const arnOf = (c: { node: { defaultChild?: unknown } }) => ({ 'Fn::GetAtt': [logicalId(c), 'Arn'] });

const GRANT_ROLES = ['arn:aws:iam::123456789012:role/tvm/reports-read', 'arn:aws:iam::210987654321:role/tvm/deploy'];

describe('lease table', () => {
  it('is on-demand, keyed by pk alone, TTL on ttl, PITR, customer-managed KMS, deletion-protected and retained', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: arnOf(stack.tvm.key) },
        DeletionProtectionEnabled: true,
      }),
    });
  });

  it('has the sparse due index and the principal index, all attributes projected', () => {
    const [table] = Object.values(template.findResources('AWS::DynamoDB::Table'));
    expect(table.Properties.GlobalSecondaryIndexes).toEqual([
      {
        IndexName: 'due',
        KeySchema: [
          { AttributeName: 'dueShard', KeyType: 'HASH' },
          { AttributeName: 'dueAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: 'principal',
        KeySchema: [
          { AttributeName: 'principal', KeyType: 'HASH' },
          { AttributeName: 'issuedAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ]);
    expect(table.Properties.AttributeDefinitions).toEqual(
      expect.arrayContaining([
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'dueShard', AttributeType: 'S' },
        { AttributeName: 'dueAt', AttributeType: 'N' },
        { AttributeName: 'principal', AttributeType: 'S' },
        { AttributeName: 'issuedAt', AttributeType: 'S' },
      ]),
    );
  });

  it('uses a KMS key with rotation, retained', () => {
    template.hasResource('AWS::KMS::Key', { DeletionPolicy: 'Retain', Properties: Match.objectLike({ EnableKeyRotation: true }) });
  });
});

describe('functions', () => {
  it('are five Node.js 24 arm64 functions with their own role and log group', () => {
    const fns = template.findResources('AWS::Lambda::Function');
    expect(Object.keys(fns)).toHaveLength(5);
    for (const name of FUNCTION_NAMES) {
      const fn = fns[logicalId(stack.tvm.functions[name])];
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        Role: arnOf(stack.tvm.roles[name]),
        LoggingConfig: { LogGroup: ref(stack.tvm.functions[name].logGroup as never) },
      });
      expect(fn.Properties.Environment.Variables).toMatchObject({
        TVM_TABLE: ref(stack.tvm.table),
        TVM_CONFIG: 'tvm-config.json',
        POWERTOOLS_SERVICE_NAME: 'tvm',
        POWERTOOLS_METRICS_NAMESPACE: 'tvm',
      });
    }
  });

  it('set the deny policy name for leases and sweep, the vendor secrets map for broker and rotate, nothing extra for vend', () => {
    const env = (name: FunctionName) =>
      template.findResources('AWS::Lambda::Function')[logicalId(stack.tvm.functions[name])].Properties.Environment.Variables;
    expect(env('leases').TVM_DENY_POLICY_NAME).toBe('tvm-revocations');
    expect(env('sweep').TVM_DENY_POLICY_NAME).toBe('tvm-revocations');
    expect(env('vend').TVM_DENY_POLICY_NAME).toBeUndefined();
    expect(env('vend').TVM_VENDOR_SECRETS).toBeUndefined();
    for (const name of ['broker', 'rotate'] as const) {
      const map = stack.resolve(env(name).TVM_VENDOR_SECRETS);
      const text = JSON.stringify(map);
      for (const vendor of ['datadog', 'openai']) {
        const s = stack.tvm.vendorSecrets[vendor];
        expect(text).toContain(logicalId(s.key));
        expect(text).toContain(logicalId(s.management));
      }
    }
  });

  it('keep logs for a year', () => {
    const groups = template.findResources('AWS::Logs::LogGroup');
    expect(Object.keys(groups)).toHaveLength(6); // five functions + API access logs
    for (const g of Object.values(groups)) expect(g.Properties.RetentionInDays).toBe(365);
  });
});

describe('HTTP API', () => {
  it('has exactly the routes of the spec, admin routes behind IAM, workload routes authenticated in the function', () => {
    const routes = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map((r) => [
      r.Properties.RouteKey,
      r.Properties.AuthorizationType ?? 'NONE',
    ]);
    expect(routes.sort()).toEqual(
      [
        ['POST /v1/vend', 'NONE'],
        ['GET /v1/credentials/{grant}', 'NONE'],
        ['GET /v1/leases/{id}', 'NONE'],
        ['POST /v1/leases/{id}/revoke', 'NONE'],
        ['ANY /v1/broker/{vendor}/{proxy+}', 'NONE'],
        ['GET /v1/admin/leases', 'AWS_IAM'],
        ['GET /v1/admin/leases/{id}', 'AWS_IAM'],
        ['POST /v1/admin/revoke', 'AWS_IAM'],
        ['GET /v1/admin/events', 'AWS_IAM'],
        ['POST /v1/admin/sweep', 'AWS_IAM'],
        ['GET /v1/admin/vendors', 'AWS_IAM'],
        ['POST /v1/admin/vendors/{name}/rotate', 'AWS_IAM'],
      ].sort(),
    );
  });

  it('routes each path to its function with payload format 2.0', () => {
    const integrations = template.findResources('AWS::ApiGatewayV2::Integration');
    const target = (routeKey: string) => {
      const route = Object.values(template.findResources('AWS::ApiGatewayV2::Route')).find((r) => r.Properties.RouteKey === routeKey)!;
      const integrationId = (route.Properties.Target['Fn::Join'][1][1] as { Ref: string }).Ref;
      const integration = integrations[integrationId].Properties;
      expect(integration.PayloadFormatVersion).toBe('2.0');
      return integration.IntegrationUri;
    };
    expect(target('POST /v1/vend')).toEqual(arnOf(stack.tvm.functions.vend));
    expect(target('GET /v1/credentials/{grant}')).toEqual(arnOf(stack.tvm.functions.vend));
    expect(target('POST /v1/leases/{id}/revoke')).toEqual(arnOf(stack.tvm.functions.leases));
    expect(target('POST /v1/admin/revoke')).toEqual(arnOf(stack.tvm.functions.leases));
    expect(target('ANY /v1/broker/{vendor}/{proxy+}')).toEqual(arnOf(stack.tvm.functions.broker));
    expect(target('POST /v1/admin/sweep')).toEqual(arnOf(stack.tvm.functions.sweep));
    expect(target('POST /v1/admin/vendors/{name}/rotate')).toEqual(arnOf(stack.tvm.functions.rotate));
  });

  it('has a throttled default stage with JSON access logs', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('"requestId":"\\$context.requestId"') },
    });
  });
});

describe('schedules', () => {
  it('run sweep every minute and rotate every 5 minutes with retries and a dead-letter queue', () => {
    const schedules = Object.values(template.findResources('AWS::Scheduler::Schedule')).map((s) => s.Properties);
    const dlq = arnOf(stack.tvm.deadLetterQueue);
    const byTarget = (name: FunctionName) => schedules.find((s) => JSON.stringify(s.Target.Arn) === JSON.stringify(arnOf(stack.tvm.functions[name])))!;
    expect(schedules).toHaveLength(2);
    expect(byTarget('sweep').ScheduleExpression).toBe('rate(1 minute)');
    expect(byTarget('rotate').ScheduleExpression).toBe('rate(5 minutes)');
    for (const s of schedules) {
      expect(s.Target.DeadLetterConfig).toEqual({ Arn: dlq });
      expect(s.Target.RetryPolicy).toEqual({ MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 600 });
    }
  });

  it('send failed async runs of sweep and rotate to the dead-letter queue', () => {
    const configs = Object.values(template.findResources('AWS::Lambda::EventInvokeConfig')).map((c) => c.Properties);
    expect(configs).toHaveLength(2);
    for (const c of configs) expect(c.DestinationConfig.OnFailure.Destination).toEqual(arnOf(stack.tvm.deadLetterQueue));
  });

  it('follow the configured sweep interval', () => {
    const t = synthTemplate({ sweepEvery: Duration.minutes(2) }).template;
    const exprs = Object.values(t.findResources('AWS::Scheduler::Schedule')).map((s) => s.Properties.ScheduleExpression);
    expect(exprs).toContain('rate(2 minutes)');
  });

  it('encrypt the dead-letter queue and refuse plain HTTP to it', () => {
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600 });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });
});

describe('vendor secrets', () => {
  it('creates a key and a management secret per vendor, KMS-encrypted, holding the not-configured placeholder (never a generated value)', () => {
    const secrets = template.findResources('AWS::SecretsManager::Secret');
    expect(Object.keys(secrets)).toHaveLength(4);
    for (const s of Object.values(secrets)) {
      expect(s.Properties.KmsKeyId).toEqual(arnOf(stack.tvm.key));
      // A generated string would be taken for a credential (issue 9 item 2): tvm reads this one as "not configured".
      expect(s.Properties.SecretString).toBe('tvm:not-configured');
      expect(s.Properties.GenerateSecretString).toBeUndefined();
    }
  });

  it('wires Secrets Manager rotation of each key secret to the rotate function, with no schedule of its own (tvm schedules)', () => {
    const rotations = Object.values(template.findResources('AWS::SecretsManager::RotationSchedule')).map((r) => r.Properties);
    expect(rotations).toHaveLength(2);
    const of = (vendor: string) => rotations.find((r) => r.SecretId.Ref === logicalId(stack.tvm.vendorSecrets[vendor].key))!;
    expect(of('datadog')).toEqual({
      SecretId: ref(stack.tvm.vendorSecrets.datadog.key),
      RotationLambdaARN: arnOf(stack.tvm.functions.rotate),
      RotateImmediatelyOnUpdate: false,
    });
    expect(of('openai').RotationRules).toBeUndefined();
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: arnOf(stack.tvm.functions.rotate),
      Principal: 'secretsmanager.amazonaws.com',
      SourceAccount: { Ref: 'AWS::AccountId' },
    });
  });

  it('has no vendor resources when no vendors are configured', () => {
    const { template: t } = synthTemplate({ config: { ...fixtureConfig(), vendors: [] } });
    t.resourceCountIs('AWS::SecretsManager::Secret', 0);
    t.resourceCountIs('AWS::SecretsManager::RotationSchedule', 0);
  });
});

describe('alarms and dashboard', () => {
  it('alarm on vend 5xx rate, denials, rotation, sweep, revocation fallback, DLQ and function errors, to an encrypted topic', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const text = JSON.stringify(alarms);
    for (const metric of ['VendErrors', 'VendDenied', 'RotationFailures', 'SweepErrors', 'RevocationFallback', 'BrokerErrors', 'ApproximateNumberOfMessagesVisible']) {
      expect(text).toContain(`"MetricName":"${metric}"`);
    }
    expect(alarms.filter((a) => a.MetricName === 'Errors' && a.Namespace === 'AWS/Lambda')).toHaveLength(5);
    for (const a of alarms) expect(a.AlarmActions).toEqual([ref(stack.tvm.alarmTopic)]);
    expect(text).toContain('"Namespace":"tvm"');
    expect(text).toContain('"Dimensions":[{"Name":"service","Value":"tvm"}]');
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: arnOf(stack.tvm.key) });
  });

  it('has a dashboard', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  it('outputs the API URL and the vend role', () => {
    template.hasOutput('ApiUrl', Match.anyValue());
    template.hasOutput('VendRoleArn', { Value: arnOf(stack.tvm.roles.vend) });
  });
});

describe('least privilege', () => {
  const allStatements = () => {
    const out: Statement[] = [];
    for (const p of Object.values(template.findResources('AWS::IAM::Policy'))) out.push(...p.Properties.PolicyDocument.Statement);
    for (const r of Object.values(template.findResources('AWS::IAM::Role')))
      for (const p of r.Properties.Policies ?? []) out.push(...p.PolicyDocument.Statement);
    return out;
  };

  it('has no IAM statement with a wildcard action', () => {
    for (const s of allStatements()) for (const a of [s.Action].flat()) expect(a).not.toMatch(/(^\*$|:\*$)/);
  });

  // Logs Insights' GetQueryResults and StopQuery name a query id and support no resource-level
  // permission (the Service Authorization Reference lists no resource type): the only "*".
  const RESOURCELESS = ['logs:GetQueryResults', 'logs:StopQuery'];

  it('has no IAM statement on Resource "*" (but the resource-less Logs Insights reads)', () => {
    for (const s of allStatements()) {
      if ([s.Resource].flat().includes('*')) expect([s.Action].flat().sort()).toEqual(RESOURCELESS);
    }
  });

  it('attaches no managed policies', () => {
    for (const r of Object.values(template.findResources('AWS::IAM::Role'))) expect(r.Properties.ManagedPolicyArns).toBeUndefined();
  });

  const EXPECTED: Record<FunctionName, string[]> = {
    vend: [
      'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem',
      'kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey',
      'logs:CreateLogStream', 'logs:PutLogEvents',
      'sts:AssumeRole', 'sts:SetSourceIdentity', 'sts:TagSession',
    ],
    leases: [
      'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:UpdateItem',
      'iam:DeleteRolePolicy', 'iam:GetRolePolicy', 'iam:ListRolePolicies', 'iam:PutRolePolicy',
      'kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey',
      'logs:CreateLogStream', 'logs:PutLogEvents',
      'logs:GetQueryResults', 'logs:StartQuery', 'logs:StopQuery',
      'sts:AssumeRole',
    ],
    sweep: [
      'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem',
      'iam:DeleteRolePolicy', 'iam:GetRolePolicy', 'iam:ListRolePolicies', 'iam:PutRolePolicy',
      'kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey',
      'logs:CreateLogStream', 'logs:PutLogEvents',
      'sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage',
      'sts:AssumeRole',
    ],
    rotate: [
      'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem',
      'kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey',
      'logs:CreateLogStream', 'logs:PutLogEvents',
      'secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage',
      'sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage',
    ],
    broker: [
      'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem',
      'kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey',
      'logs:CreateLogStream', 'logs:PutLogEvents',
      'secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue',
    ],
  };

  it.each(FUNCTION_NAMES)('the %s role has exactly its actions', (name) => {
    expect(actionsOf(roleStatements(name))).toEqual(EXPECTED[name].sort());
  });

  it('function roles are assumable by Lambda only', () => {
    for (const name of FUNCTION_NAMES) {
      const role = template.findResources('AWS::IAM::Role')[logicalId(stack.tvm.roles[name])];
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
      ]);
    }
  });

  it('vend assumes only the configured grant roles and writes nothing in IAM', () => {
    const sts = roleStatements('vend').filter((s) => actionsOf([s]).some((a) => a.startsWith('sts:')));
    expect(sts).toHaveLength(1);
    expect(sts[0].Resource).toEqual(GRANT_ROLES);
    expect(actionsOf(roleStatements('vend')).filter((a) => a.startsWith('iam:'))).toEqual([]);
  });

  it('leases and sweep touch inline policies of the own-account grant roles only (the other account through its revoker role)', () => {
    for (const name of ['leases', 'sweep'] as const) {
      const iam = roleStatements(name).filter((s) => actionsOf([s]).some((a) => a.startsWith('iam:')));
      expect(iam).toHaveLength(1);
      expect(iam[0].Resource).toEqual(GRANT_ROLES[0]);
    }
  });

  it('adds grant roles given beyond the config', () => {
    const { stack: s2, template: t2 } = synthTemplate({ additionalGrantRoleArns: ['arn:aws:iam::123456789012:role/tvm/extra'] });
    const stmts = statementsOfRole(t2, s2.resolve(s2.getLogicalId(s2.tvm.roles.vend.node.defaultChild as CfnRole)));
    expect(stmts.find((x) => x.Sid === 'AssumeGrantRoles')!.Resource).toEqual([...GRANT_ROLES, 'arn:aws:iam::123456789012:role/tvm/extra']);
  });

  it('the broker reads only vendor key secrets, never the management credentials, and writes none', () => {
    const secrets = roleStatements('broker').filter((s) => actionsOf([s]).some((a) => a.startsWith('secretsmanager:')));
    expect(secrets).toHaveLength(1);
    expect(secrets[0].Resource).toEqual([ref(stack.tvm.vendorSecrets.datadog.key), ref(stack.tvm.vendorSecrets.openai.key)]);
    const brokerKms = roleStatements('broker').find((s) => s.Sid === 'KeyViaSecretsManager')!;
    expect(brokerKms.Action).toEqual('kms:Decrypt');
  });

  it('rotate writes the key secrets and only reads the management secrets', () => {
    const stmts = roleStatements('rotate');
    expect(stmts.find((s) => s.Sid === 'RotateVendorKeys')!.Resource).toEqual([
      ref(stack.tvm.vendorSecrets.datadog.key),
      ref(stack.tvm.vendorSecrets.openai.key),
    ]);
    const mgmt = stmts.find((s) => s.Sid === 'ReadVendorManagement')!;
    expect(actionsOf([mgmt])).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
    expect(mgmt.Resource).toEqual([ref(stack.tvm.vendorSecrets.datadog.management), ref(stack.tvm.vendorSecrets.openai.management)]);
  });

  it('uses the KMS key only through DynamoDB and Secrets Manager', () => {
    for (const name of FUNCTION_NAMES) {
      for (const s of roleStatements(name).filter((x) => actionsOf([x]).some((a) => a.startsWith('kms:')))) {
        expect(s.Resource).toEqual(arnOf(stack.tvm.key));
        expect(JSON.stringify(s.Condition)).toMatch(/kms:ViaService/);
      }
    }
  });

  it('names the indexes it queries, never index/*', () => {
    const text = JSON.stringify(allStatements());
    expect(text).not.toContain('/index/*');
  });

  it('snapshot of every IAM statement, so a change is reviewed', () => {
    const byRole: Record<string, Statement[]> = {};
    for (const name of FUNCTION_NAMES) byRole[name] = roleStatements(name);
    for (const name of ['sweep', 'rotate']) {
      const role = Object.entries(template.findResources('AWS::IAM::Role')).find(([id]) => id.includes(`${name[0].toUpperCase()}${name.slice(1)}ScheduleRole`))!;
      byRole[`${name}-schedule`] = statementsOfRole(template, role[0]);
      byRole[`${name}-schedule-trust`] = role[1].Properties.AssumeRolePolicyDocument.Statement;
    }
    expect(byRole).toMatchSnapshot();
  });
});

describe('bindings: the env var and its grant in one call', () => {
  // A function of the user's own beside tvm, bound with the construct's methods.
  const userFunction = () => {
    const { stack: s } = buildStack();
    const role = new Role(s, 'MineRole', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    const fn = new LambdaFunction(s, 'Mine', { runtime: Runtime.NODEJS_24_X, handler: 'index.handler', code: Code.fromInline('exports.handler=()=>1'), role });
    return { s, fn, role };
  };
  const bound = (s: TvmStack, fn: LambdaFunction, role: Role) => {
    const t = Template.fromStack(s, { skipCyclicalDependenciesCheck: true });
    const env = t.findResources('AWS::Lambda::Function')[s.resolve(s.getLogicalId(fn.node.defaultChild as CfnFunction))].Properties.Environment?.Variables ?? {};
    return { env, statements: statementsOfRole(t, s.resolve(s.getLogicalId(role.node.defaultChild as CfnRole))) };
  };

  it('bindLeaseTable(fn, "read") sets TVM_TABLE and grants reads and queries only, the key only to decrypt', () => {
    const { s, fn, role } = userFunction();
    s.tvm.bindLeaseTable(fn, 'read');
    const { env, statements } = bound(s, fn, role);
    expect(env.TVM_TABLE).toEqual({ Ref: s.resolve(s.getLogicalId(s.tvm.table.node.defaultChild as CfnRole)) });
    expect(actionsOf(statements)).toEqual(['dynamodb:GetItem', 'dynamodb:Query', 'kms:Decrypt', 'kms:DescribeKey']);
  });

  it('bindVendorSecrets(fn, "read") sets TVM_VENDOR_SECRETS and reads the key secrets, never the management ones', () => {
    const { s, fn, role } = userFunction();
    s.tvm.bindVendorSecrets(fn, 'read');
    const { env, statements } = bound(s, fn, role);
    expect(JSON.stringify(s.resolve(env.TVM_VENDOR_SECRETS))).toContain(s.resolve(s.getLogicalId(s.tvm.vendorSecrets.datadog.key.node.defaultChild as CfnRole)));
    const secrets = statements.filter((x) => actionsOf([x]).some((a) => a.startsWith('secretsmanager:')));
    expect(secrets.flatMap((x) => x.Resource as unknown[])).toEqual([
      { Ref: s.resolve(s.getLogicalId(s.tvm.vendorSecrets.datadog.key.node.defaultChild as CfnRole)) },
      { Ref: s.resolve(s.getLogicalId(s.tvm.vendorSecrets.openai.key.node.defaultChild as CfnRole)) },
    ]);
    expect(actionsOf(secrets)).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
  });

  it('bindRevoker(fn) sets the deny policy name and account and grants the own-account deny policy and the revoker roles', () => {
    const { s, fn, role } = userFunction();
    s.tvm.bindRevoker(fn);
    const { env, statements } = bound(s, fn, role);
    expect(env.TVM_DENY_POLICY_NAME).toBe('tvm-revocations');
    expect(env.TVM_ACCOUNT).toEqual({ Ref: 'AWS::AccountId' });
    expect(statements.find((x) => x.Sid === 'RevocationDenyPolicy')!.Resource).toEqual(GRANT_ROLES[0]);
    expect(statements.find((x) => x.Sid === 'AssumeRevokerRoles')!.Resource).toEqual('arn:aws:iam::210987654321:role/tvm/tvm-revoker');
  });

  it('refuses a function without a role (the grant would go nowhere while the env var is set)', () => {
    const { stack: s } = buildStack();
    const imported = LambdaFunction.fromFunctionArn(s, 'Imported', 'arn:aws:lambda:us-east-1:123456789012:function:other') as unknown as LambdaFunction;
    (imported as unknown as { addEnvironment: () => void }).addEnvironment = () => {};
    expect(() => s.tvm.bindLeaseTable(imported, 'write')).toThrow(/without a role/);
  });
});

describe('cdk-nag', () => {
  it('the stack synthesizes clean with AwsSolutions (Template.fromStack throws otherwise)', () => {
    expect(template.toJSON().Resources).toBeDefined();
  });

  it('is really on: an unencrypted, plain-HTTP queue fails synth', () => {
    const { stack: s } = buildStack();
    new Queue(s, 'Careless', { enforceSSL: false });
    expect(() => Template.fromStack(s)).toThrow(/AwsSolutions-SQS/);
  });
});

describe('VendableRole', () => {
  const vendRoleArn = 'arn:aws:iam::111111111111:role/tvm-vend';
  it('trusts only the vend role, per action: AssumeRole with a source identity and the tvm:lease tag, TagSession with the lease tag and only tvm’s and the grant’s tag keys, SetSourceIdentity of tvm’s form; sessions capped at an hour', () => {
    const s = new Stack(new App(), 'S');
    new VendableRole(s, 'Reports', { vendRole: vendRoleArn, roleName: 'reports-read', sessionTagKeys: ['team'] });
    const t = Template.fromStack(s);
    t.hasResourceProperties('AWS::IAM::Role', {
      RoleName: 'reports-read',
      Path: '/tvm/',
      MaxSessionDuration: 3600,
      AssumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: vendRoleArn },
            Action: 'sts:AssumeRole',
            Condition: { Null: { 'sts:SourceIdentity': 'false', 'aws:RequestTag/tvm:lease': 'false' } },
          },
          {
            Effect: 'Allow',
            Principal: { AWS: vendRoleArn },
            Action: 'sts:TagSession',
            Condition: {
              Null: { 'aws:RequestTag/tvm:lease': 'false' },
              'ForAllValues:StringEquals': { 'aws:TagKeys': ['tvm:lease', 'tvm:grant', 'tvm:issuer', 'team'] },
            },
          },
          { Effect: 'Allow', Principal: { AWS: vendRoleArn }, Action: 'sts:SetSourceIdentity', Condition: { StringLike: { 'sts:SourceIdentity': ['?*.?*', '?*=?*'] } } },
        ],
      },
    });
  });

  it('pins the source identity to the given issuers, in both of tvm’s forms', () => {
    const s = new Stack(new App(), 'S');
    new VendableRole(s, 'Reports', { vendRole: vendRoleArn, issuers: ['github'] });
    const [role] = Object.values(Template.fromStack(s).findResources('AWS::IAM::Role'));
    const si = role.Properties.AssumeRolePolicyDocument.Statement.find((x: { Action: string }) => x.Action === 'sts:SetSourceIdentity');
    expect(si.Condition).toEqual({ StringLike: { 'sts:SourceIdentity': ['github.?*', 'github=?*'] } });
  });

  it('takes the vend role of a TokenVendingMachine in the same app', () => {
    const { stack: s } = buildStack();
    const role = new VendableRole(s, 'Mine', { vendRole: s.tvm.vendRole });
    const trust = s.resolve((role.role.assumeRolePolicy as unknown as { toJSON(): unknown }).toJSON());
    expect(JSON.stringify(trust)).toContain(s.resolve(s.getLogicalId(s.tvm.roles.vend.node.defaultChild as CfnRole)));
  });

  it.each([3601, 7200, 600])('refuses a maxSessionDuration of %i seconds', (seconds) => {
    const s = new Stack(new App(), 'S');
    expect(() => new VendableRole(s, 'R', { vendRole: vendRoleArn, maxSessionDuration: Duration.seconds(seconds) })).toThrow(/maxSessionDuration/);
  });
});

