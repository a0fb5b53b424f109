/**
 * tvm's five functions: each its own role (Lambda only), log group and bundle. What a function
 * may touch beyond its logs is bound afterwards (`bindLeaseTable`, `bindRevoker`,
 * `bindVendorSecrets`), each binding setting the env var and the grant together.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { ROTATE_FUNCTION_TIMEOUT_SECONDS } from '../../functions/core/rotation/lock.js';
import { ENV } from '../../functions/shared/env.js';
import { BUNDLED_CONFIG_PATH, type BundleFiles, bundlingOptions } from './bundling.js';
import { pascal } from './permissions.js';

/** The functions tvm deploys, by the folder of their handler under `functions/`. */
export const FUNCTION_NAMES = ['vend', 'leases', 'broker', 'sweep', 'rotate'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** The functions that decide with Cedar (and so carry its .wasm); sweep and rotate do not. */
export const USES_CEDAR: readonly FunctionName[] = ['vend', 'leases', 'broker'];

/** Powertools metrics (EMF) the functions emit; the alarms are built on them. */
export const METRICS_NAMESPACE = 'tvm';
export const SERVICE_NAME = 'tvm';

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

export interface TvmFunctionOptions {
  /** The folder holding `<name>/lambda.ts`. */
  readonly functionsDir: string;
  /** The package root whose lock file bundling uses (skipped when it has none). */
  readonly projectRoot: string;
  readonly retention: RetentionDays;
  readonly files: BundleFiles;
}

/** Function `name` (`<Name>Function`), its role (`<Name>Role`) and log group (`<Name>Logs`), in `scope`. */
export function createTvmFunction(scope: Construct, name: FunctionName, options: TvmFunctionOptions): { fn: NodejsFunction; role: Role } {
  const suffix = pascal(name);
  // Bundle from this package's root and lock file wherever `cdk` is run from.
  const lockFile = join(options.projectRoot, 'package-lock.json');
  const project = existsSync(lockFile) ? { depsLockFilePath: lockFile, projectRoot: options.projectRoot } : {};
  const logGroup = new LogGroup(scope, `${suffix}Logs`, { retention: options.retention, removalPolicy: RemovalPolicy.RETAIN });
  const role = new Role(scope, `${suffix}Role`, {
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
  const fn = new NodejsFunction(scope, `${suffix}Function`, {
    entry: join(options.functionsDir, name, 'lambda.ts'),
    ...project,
    handler: 'handler',
    runtime: Runtime.NODEJS_24_X,
    architecture: Architecture.ARM_64,
    role,
    logGroup,
    ...SPECS[name],
    environment: {
      [ENV.config]: BUNDLED_CONFIG_PATH,
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
    },
    bundling: bundlingOptions(options.files, USES_CEDAR.includes(name)),
  });
  return { fn, role };
}
