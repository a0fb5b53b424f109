/**
 * The EventBridge Scheduler schedules that run sweep and rotate, each with its own role, retries
 * and the dead-letter queue; failed async runs land in the same queue.
 */
import { Aws, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { CfnFunction, Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { Schedule, ScheduleExpression } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { pascal } from './permissions.js';

/** `<Name>Schedule` (and `<Name>ScheduleRole`) in `scope`: invokes `fn` every `every`. */
export function addSchedule(scope: Construct, name: string, fn: LambdaFunction, every: Duration, deadLetterQueue: Queue): Schedule {
  fn.configureAsyncInvoke({
    retryAttempts: 1,
    maxEventAge: Duration.hours(1),
    onFailure: new SqsDestination(deadLetterQueue),
  });
  const role = new Role(scope, `${pascal(name)}ScheduleRole`, {
    assumedBy: new ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } } }),
    description: `tvm ${name} schedule`,
  });
  const schedule = new Schedule(scope, `${pascal(name)}Schedule`, {
    description: `tvm ${name}`,
    schedule: ScheduleExpression.rate(every),
    target: new LambdaInvoke(fn, {
      role,
      deadLetterQueue,
      retryAttempts: 2,
      maxEventAge: Duration.minutes(10),
    }),
  });
  const stack = Stack.of(scope);
  const fnLogicalId = stack.resolve(stack.getLogicalId(fn.node.defaultChild as CfnFunction));
  Validations.of(role).acknowledge({
    id: `AwsSolutions-IAM5[Resource::<${fnLogicalId}.Arn>:*]`,
    reason: `lambda:InvokeFunction on the ${name} function and its versions (ARN:*), as CDK's grantInvoke writes it: one function, one action.`,
  });
  return schedule;
}
