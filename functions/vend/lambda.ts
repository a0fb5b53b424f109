/**
 * The vend function's Lambda entry: parses its environment once, builds only what vend uses
 * (DynamoDB, STS, the JWKS resolver, Cedar) at module scope, and exports the handler. A bad
 * environment or config fails the init, logged.
 */
import { createCedarPolicyEngine } from '../adapters/cedar-policy.js';
import { randomIds } from '../adapters/random-ids.js';
import { loadCompiledConfig } from '../shared/compiled-config.js';
import { createBase, initFunction, leaseParts, tokenParts } from '../shared/compose.js';
import { stsParts } from '../shared/compose-sts.js';
import { ENV, parseEnv } from '../shared/env.js';
import { createLogger } from '../shared/logger.js';
import { createVendHandler } from './handler.js';

const logger = createLogger();

export const handler = createVendHandler(
  initFunction('vend', logger, () => {
    const env = parseEnv('vend', process.env);
    const base = createBase({ config: loadCompiledConfig(env[ENV.config]), table: env[ENV.table], region: env.AWS_REGION, logger });
    return { ...base, ...tokenParts(base), ...leaseParts(base), ...stsParts(base), policy: createCedarPolicyEngine(base.config), ids: randomIds };
  }),
);
