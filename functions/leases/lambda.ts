/**
 * The leases function's Lambda entry: its environment parsed once; DynamoDB, IAM (the revoker),
 * the JWKS resolver and Cedar (self-revoke is authorized) built at module scope.
 */
import { createCedarPolicyEngine } from '../adapters/cedar-policy.js';
import { LogsInsightsEventSource } from '../adapters/logs-insights-event-source.js';
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
      // The audit trail is the functions' own logs, read with Logs Insights (the stack names the groups).
      events: env[ENV.auditLogGroups]
        ? new LogsInsightsEventSource({
            region: env.AWS_REGION,
            logGroups: (env[ENV.auditLogGroups] ?? '').split(','),
            // The function's role, as Lambda hands it over in the environment.
            credentials: async () => ({
              accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? '',
              secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? '',
              sessionToken: process.env.AWS_SESSION_TOKEN,
            }),
          })
        : undefined,
    });
    return { ...base, ...tokenParts(base), ...leaseParts(base), ...iamParts(base), policy: createCedarPolicyEngine(base.config) };
  }),
);
