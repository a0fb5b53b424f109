/**
 * The alarms (to an encrypted SNS topic CloudWatch may publish to) and the dashboard, built on
 * the functions' Powertools metrics, their errors, the API and the dead-letter queue.
 */
import { Aws, Duration } from 'aws-cdk-lib';
import type { HttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
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
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { Key } from 'aws-cdk-lib/aws-kms';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { FUNCTION_NAMES, type FunctionName, METRICS_NAMESPACE, SERVICE_NAME } from './functions.js';
import { pascal } from './permissions.js';

export interface AlarmsOptions {
  readonly key: Key;
  readonly functions: Record<FunctionName, LambdaFunction>;
  readonly api: HttpApi;
  readonly deadLetterQueue: Queue;
  /** VendDenied + TokenRejected per 5 minutes that counts as a spike. */
  readonly denialsSpikeThreshold: number;
}

/** `AlarmTopic`, the alarms (`…Alarm`) and `Dashboard`, in `scope`. */
export function createAlarms(scope: Construct, o: AlarmsOptions): { alarmTopic: Topic; alarms: Alarm[]; dashboard: Dashboard } {
  const { functions } = o;
  const alarmTopic = new Topic(scope, 'AlarmTopic', { displayName: 'tvm alarms', masterKey: o.key, enforceSSL: true });
  // A topic policy replaces SNS's default one: without this Allow, CloudWatch may not publish.
  alarmTopic.addToResourcePolicy(
    new PolicyStatement({
      sid: 'CloudWatchAlarmsPublish',
      principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['sns:Publish'],
      resources: [alarmTopic.topicArn],
      conditions: {
        StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
        ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:cloudwatch:${Aws.REGION}:${Aws.ACCOUNT_ID}:alarm:*` },
      },
    }),
  );
  o.key.grant(new ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
  const action = new SnsAction(alarmTopic);
  const alarms: Alarm[] = [];
  const metric = (metricName: string, statistic = 'Sum') =>
    new Metric({ namespace: METRICS_NAMESPACE, metricName, dimensionsMap: { service: SERVICE_NAME }, statistic, period: Duration.minutes(5) });
  const alarm = (id: string, m: IMetric, threshold: number, description: string, evaluationPeriods = 1) => {
    const a = new Alarm(scope, id, {
      metric: m,
      threshold,
      evaluationPeriods,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      alarmDescription: description,
    });
    a.addAlarmAction(action);
    alarms.push(a);
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
    o.denialsSpikeThreshold,
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
    o.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' }),
    1,
    'A scheduled sweep or rotate run could not be delivered or failed after retries.',
  );
  alarm('BrokerErrorsAlarm', metric('BrokerErrors'), 10, 'Broker calls are failing (vendor unavailable or tvm errors).');
  for (const name of FUNCTION_NAMES) {
    alarm(`${pascal(name)}FunctionErrorsAlarm`, functions[name].metricErrors({ period: Duration.minutes(5) }), 1, `The ${name} function threw.`);
  }

  const dashboard = new Dashboard(scope, 'Dashboard', { defaultInterval: Duration.hours(3) });
  dashboard.addWidgets(
    new GraphWidget({ title: 'Vend', left: [metric('VendIssued'), metric('VendDenied'), metric('VendErrors')], width: 12 }),
    new GraphWidget({ title: 'Vend 5xx %', left: [vendErrorRate], width: 12 }),
  );
  dashboard.addWidgets(
    new GraphWidget({ title: 'Sweep and revocation', left: [metric('SweepSettled'), metric('SweepErrors'), metric('RevocationFallback')], width: 12 }),
    new GraphWidget({ title: 'Vendors', left: [metric('RotationFailures'), metric('BrokerErrors')], width: 12 }),
  );
  dashboard.addWidgets(
    new GraphWidget({
      title: 'API',
      left: [o.api.metricCount({ period: Duration.minutes(5) }), o.api.metricClientError({ period: Duration.minutes(5) }), o.api.metricServerError({ period: Duration.minutes(5) })],
      right: [o.api.metricLatency({ statistic: 'p99', period: Duration.minutes(5) })],
      width: 12,
    }),
    new GraphWidget({
      title: 'Function errors / DLQ depth',
      left: FUNCTION_NAMES.map((n) => functions[n].metricErrors({ period: Duration.minutes(5), label: n })),
      right: [o.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) })],
      width: 12,
    }),
  );
  dashboard.addWidgets(new AlarmStatusWidget({ title: 'Alarms', alarms, width: 24 }));
  return { alarmTopic, alarms, dashboard };
}
