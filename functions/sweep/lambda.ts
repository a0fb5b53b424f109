/**
 * The sweep function's Lambda entry: its environment parsed once; DynamoDB and IAM (the revoker)
 * built at module scope. No Cedar, no token verification.
 */
import { loadCompiledConfig } from '../shared/compiled-config.js';
import { createBase, initFunction, leaseParts } from '../shared/compose.js';
import { iamParts } from '../shared/compose-iam.js';
import { ENV, parseEnv } from '../shared/env.js';
import { createLogger } from '../shared/logger.js';
import { createSweepHandler } from './handler.js';

const logger = createLogger();

export const handler = createSweepHandler(
  initFunction('sweep', logger, () => {
    const env = parseEnv('sweep', process.env);
    const base = createBase({
      config: loadCompiledConfig(env[ENV.config]),
      table: env[ENV.table],
      region: env.AWS_REGION,
      denyPolicyName: env[ENV.denyPolicyName],
      account: env[ENV.account],
      logger,
    });
    return { ...base, ...leaseParts(base), ...iamParts(base) };
  }),
);
