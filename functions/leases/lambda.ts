/**
 * The leases function's Lambda entry: its environment parsed once; DynamoDB, IAM (the revoker),
 * the JWKS resolver and Cedar (self-revoke is authorized) built at module scope.
 */
import { createCedarPolicyEngine } from '../adapters/cedar-policy.js';
import { loadCompiledConfig } from '../shared/compiled-config.js';
import { createBase, initFunction, leaseParts, tokenParts } from '../shared/compose.js';
import { iamParts } from '../shared/compose-iam.js';
import { ENV, parseEnv } from '../shared/env.js';
import { createLogger } from '../shared/logger.js';
import { createLeasesHandler } from './handler.js';

const logger = createLogger();

export const handler = createLeasesHandler(
  initFunction('leases', logger, () => {
    const env = parseEnv('leases', process.env);
    const base = createBase({
      config: loadCompiledConfig(env[ENV.config]),
      table: env[ENV.table],
      region: env.AWS_REGION,
      denyPolicyName: env[ENV.denyPolicyName],
      account: env[ENV.account],
      logger,
    });
    return { ...base, ...tokenParts(base), ...leaseParts(base), ...iamParts(base), policy: createCedarPolicyEngine(base.config) };
  }),
);
