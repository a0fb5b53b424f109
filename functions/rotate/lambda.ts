/**
 * The rotate function's Lambda entry: its environment parsed once; DynamoDB (rotation state) and
 * the vendor runtime (Secrets Manager, one adapter per vendor) built at module scope. No Cedar.
 */
import { loadCompiledConfig } from '../shared/compiled-config.js';
import { createBase, initFunction } from '../shared/compose.js';
import { ENV, parseEnv } from '../shared/env.js';
import { createLogger } from '../shared/logger.js';
import { vendorRuntime } from '../shared/vendor-runtime.js';
import { createRotateHandler } from './handler.js';

const logger = createLogger();

export const handler = createRotateHandler(
  initFunction('rotate', logger, () => {
    const env = parseEnv('rotate', process.env);
    const base = createBase({
      config: loadCompiledConfig(env[ENV.config]),
      table: env[ENV.table],
      region: env.AWS_REGION,
      vendors: { secretIds: env[ENV.vendorSecrets] },
      logger,
    });
    vendorRuntime(base); // built now, not on the first call
    return base;
  }),
);
