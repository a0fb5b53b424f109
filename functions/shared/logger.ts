/**
 * The one structured logger (Powertools) and the audit sink over it. Audit events carry hashes
 * and ids, never a token, secret key, session token or vendor key.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Audit } from '../core/ports.js';

export function createLogger(serviceName = 'tvm'): Logger {
  return new Logger({ serviceName, logLevel: (process.env.TVM_LOG_LEVEL as 'INFO' | undefined) ?? 'INFO' });
}

export function createAudit(logger: Logger): Audit {
  return {
    event(type, fields) {
      logger.info(type, { audit: true, event: type, ...fields });
    },
  };
}
