/**
 * The broker function's Lambda entry: its environment parsed once; DynamoDB (replay guard), the
 * JWKS resolver, Cedar and the vendor runtime (Secrets Manager, the key cache) built at module scope.
 */
import { createCedarPolicyEngine } from '../adapters/cedar-policy.js';
import { loadCompiledConfig } from '../shared/compiled-config.js';
import { createBase, initFunction, tokenParts } from '../shared/compose.js';
import { ENV, parseEnv } from '../shared/env.js';
import { createLogger } from '../shared/logger.js';
import { vendorRuntime } from '../shared/vendor-runtime.js';
import { createBrokerHandler } from './handler.js';

const logger = createLogger();

export const handler = createBrokerHandler(
  initFunction('broker', logger, () => {
    const env = parseEnv('broker', process.env);
    const base = createBase({
      config: loadCompiledConfig(env[ENV.config]),
      table: env[ENV.table],
      region: env.AWS_REGION,
      vendors: { secretIds: env[ENV.vendorSecrets] },
      logger,
    });
    const rt = { ...base, ...tokenParts(base), policy: createCedarPolicyEngine(base.config) };
    vendorRuntime(rt); // built now, not on the first call
    return rt;
  }),
);
