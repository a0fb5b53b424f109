/**
 * The HTTP API: the routes of SPEC, each to its function; admin routes behind IAM (SigV4),
 * workload routes authenticated in the function; a throttled default stage with JSON access logs.
 */
import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import { HttpApi, HttpMethod, HttpStage, LogGroupLogDestination, type IHttpRouteAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { FUNCTION_NAMES, type FunctionName } from './functions.js';
import { pascal } from './permissions.js';

/** Every route, the function serving it, and whether it is an admin (IAM-authorized) route. */
export const ROUTES: readonly { path: string; method: HttpMethod; fn: FunctionName; admin: boolean }[] = [
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

export interface HttpApiOptions {
  readonly retention: RetentionDays;
  readonly throttle?: { rateLimit: number; burstLimit: number };
}

/** `Api`, `ApiAccessLogs` and `DefaultStage` in `scope`. */
export function createHttpApi(scope: Construct, functions: Record<FunctionName, LambdaFunction>, options: HttpApiOptions): { api: HttpApi; stage: HttpStage } {
  const api = new HttpApi(scope, 'Api', {
    description: 'tvm: token vending machine',
    createDefaultStage: false,
  });
  const accessLogs = new LogGroup(scope, 'ApiAccessLogs', { retention: options.retention, removalPolicy: RemovalPolicy.RETAIN });
  const stage = new HttpStage(scope, 'DefaultStage', {
    httpApi: api,
    stageName: '$default',
    autoDeploy: true,
    throttle: options.throttle ?? { rateLimit: 50, burstLimit: 100 },
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

  const iam = new HttpIamAuthorizer();
  const integrations = {} as Record<FunctionName, HttpLambdaIntegration>;
  for (const name of FUNCTION_NAMES) integrations[name] = new HttpLambdaIntegration(`${pascal(name)}Integration`, functions[name]);
  for (const r of ROUTES) {
    const authorizer: IHttpRouteAuthorizer | undefined = r.admin ? iam : undefined;
    const [route] = api.addRoutes({ path: r.path, methods: [r.method], integration: integrations[r.fn], authorizer });
    if (!r.admin) {
      Validations.of(route).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          'Workload routes authenticate in the function: a JWT from any configured issuer (an API Gateway JWT authorizer takes one issuer), single-use jti replay checks, the raw Authorization header of the container-credentials protocol, and Cedar authorization per request.',
      });
    }
  }
  return { api, stage };
}
