/**
 * What every binding needs: the role a function runs as, and the KMS key used only through the
 * service that stores the data.
 */
import { Aws } from 'aws-cdk-lib';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';

/** A Lambda function that environment variables can be added to (a `Function`, a `NodejsFunction`). */
export interface BindableFunction extends IFunction {
  addEnvironment(key: string, value: string): unknown;
}

/**
 * The function's role. A function without one (an imported function) cannot be granted anything
 * by CDK: refuse, rather than set the env var and let the grant silently go nowhere.
 */
export function roleOf(fn: IFunction): IRole {
  if (!fn.role) throw new Error(`${fn.node.path}: a function without a role cannot be bound (the grant would go nowhere)`);
  return fn.role;
}

/** `actions` on the key, only when the call comes through `service` in this region. */
export function keyVia(key: IKey, sid: string, service: string, actions: string[]): PolicyStatement {
  return new PolicyStatement({
    sid,
    actions,
    resources: [key.keyArn],
    conditions: { StringEquals: { 'kms:ViaService': `${service}.${Aws.REGION}.amazonaws.com` } },
  });
}

/** `FooBar` from `foo-bar`, for construct ids. */
export function pascal(name: string): string {
  return name
    .split(/[^a-zA-Z0-9]+/)
    .filter(Boolean)
    .map((p) => p[0].toUpperCase() + p.slice(1))
    .join('');
}
