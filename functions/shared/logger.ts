/**
 * The one structured logger (Powertools) and the audit sink over it. Audit events carry hashes
 * and ids, never a token, secret key, session token or vendor key.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Audit } from '../core/ports.js';

/** A logger whose JSON lines go to `sink` instead of stdout (the local stack and the tests read them). */
class SinkLogger extends Logger {
  sink?: (line: string) => void;
  protected override printLog(logLevel: number, log: Parameters<Logger['printLog']>[1]): void {
    if (!this.sink) return super.printLog(logLevel, log);
    log.prepareForPrint();
    this.sink(JSON.stringify(log.getAttributes()));
  }
}

export function createLogger(opts: { serviceName?: string; sink?: (line: string) => void } = {}): Logger {
  const logger = new SinkLogger({ serviceName: opts.serviceName ?? 'tvm', logLevel: (process.env.TVM_LOG_LEVEL as 'INFO' | undefined) ?? 'INFO' });
  logger.sink = opts.sink;
  return logger;
}

export function createAudit(logger: Logger): Audit {
  return {
    event(type, fields) {
      logger.info(type, { audit: true, event: type, ...fields });
    },
  };
}
