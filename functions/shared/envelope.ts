/**
 * The envelope every HTTP handler runs a request in: errors mapped to the SPEC answer (unknown
 * ones become `500 internal`, logged with their stack, nothing leaked), one audit event on every
 * path, metrics flushed.
 */
import { TvmError } from '../core/errors.js';
import type { AuditRecord } from '../core/ports.js';
import { errorResult, requestIdOf, sourceIp, type HttpEvent, type HttpResult } from './http.js';
import type { Base } from './compose.js';
import { mappedStack } from './mapped-stack.js';


export interface EnvelopeOptions {
  /** Adds fields to the audit event once the status is known (outcome words, metrics). */
  finish?: (record: AuditRecord, status: number) => void;
}

export async function inEnvelope(
  rt: Pick<Base, 'logger' | 'audit' | 'metrics' | 'clock'>,
  event: HttpEvent,
  auditType: string,
  work: (record: AuditRecord) => Promise<HttpResult>,
  options: EnvelopeOptions = {},
): Promise<HttpResult> {
  const started = rt.clock.now();
  const requestId = requestIdOf(event);
  const record: AuditRecord = { requestId, route: event.routeKey, sourceIp: sourceIp(event) };
  let status = 500;
  try {
    const answer = await work(record);
    status = answer.statusCode;
    return answer;
  } catch (e) {
    const answer = errorResult(e, requestId);
    status = answer.statusCode;
    if (e instanceof TvmError) Object.assign(record, { reason: e.reason, ...(e.detail ? { detail: e.detail } : {}) });
    else {
      record.reason = 'internal';
      rt.logger.error('unexpected error', { requestId, error: mappedStack((e as Error)?.stack) });
    }
    return answer;
  } finally {
    if (status === 401) rt.metrics.count('TokenRejected');
    options.finish?.(record, status);
    rt.audit.event(auditType, { ...record, status, durationMs: rt.clock.now() - started });
    rt.metrics.flush();
  }
}
