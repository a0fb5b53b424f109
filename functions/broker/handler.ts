/**
 * `ANY /v1/broker/{vendor}/{proxy+}`: authenticate → brokerRequest → relay the vendor's answer.
 * One audit event per call on every path: principal, vendor, method, path, status, duration;
 * never the key, never a body, never the query string.
 */
import { brokerRequest, MAX_BROKER_BODY_BYTES } from '../core/broker-request.js';
import { TvmError } from '../core/errors.js';
import { authenticate } from '../shared/authenticate.js';
import { errorResult, header, rawBody, requestIdOf, sourceIp, type HttpEvent, type HttpResult } from '../shared/http.js';
import { contextSchema, parseRequest } from '../shared/request.js';
import { lambdaRuntime, type Runtime } from '../shared/runtime.js';
import { vendorRuntime } from '../shared/vendor-runtime.js';

/** The vendor path: from the raw (still encoded) path when it has the route's prefix, else the decoded `proxy`. */
export function vendorPath(event: HttpEvent, vendor: string): string {
  const prefix = `/v1/broker/${vendor}`;
  const raw = event.rawPath ?? '';
  if (raw.startsWith(`${prefix}/`)) return raw.slice(prefix.length);
  return `/${event.pathParameters?.proxy ?? ''}`;
}

export function createBrokerHandler(rt: Runtime) {
  return async function brokerHandler(event: HttpEvent): Promise<HttpResult> {
    const started = rt.clock.now();
    const requestId = requestIdOf(event);
    const vendor = event.pathParameters?.vendor ?? '';
    const method = (event.requestContext?.http?.method ?? 'GET').toUpperCase();
    const record: Record<string, unknown> = { requestId, vendor, method, sourceIp: sourceIp(event) };
    let status = 500;
    try {
      const who = await authenticate(rt, event);
      Object.assign(record, { principal: who.principal, issuer: who.issuer.name, tokenSha256: who.tokenSha256 });
      const path = vendorPath(event, vendor);
      record.path = path;
      const context = parseRequest(contextSchema, {
        task: header(event, 'x-tvm-task'),
        tool: header(event, 'x-tvm-tool'),
        sensitivity: header(event, 'x-tvm-sensitivity'),
        environment: header(event, 'x-tvm-environment'),
      });
      const body = rawBody(event, MAX_BROKER_BODY_BYTES);
      const vr = vendorRuntime(rt);
      const answer = await brokerRequest(
        { vendors: rt.config.vendors, policy: rt.policy, http: vr.http, keys: vr.keyCache, keysFor: vr.keysFor },
        {
          who,
          vendor,
          method,
          path,
          rawQuery: event.rawQueryString || undefined,
          headers: event.headers ?? {},
          body,
          context: Object.fromEntries(Object.entries(context).filter(([, v]) => v !== undefined)),
          sourceIp: sourceIp(event),
        },
        record,
      );
      status = answer.status;
      if (status >= 500) rt.metrics.count('BrokerErrors');
      return {
        statusCode: answer.status,
        headers: { ...answer.headers, 'cache-control': answer.headers['cache-control'] ?? 'no-store' },
        body: answer.body.toString('base64'),
        isBase64Encoded: true,
      };
    } catch (e) {
      const answer = errorResult(e, requestId);
      status = answer.statusCode;
      Object.assign(record, { reason: e instanceof TvmError ? e.reason : 'internal', ...(e instanceof TvmError && e.detail ? { detail: e.detail } : {}) });
      if (!(e instanceof TvmError)) rt.logger.error('unexpected error', { requestId, error: (e as Error)?.message });
      if (status >= 500) rt.metrics.count('BrokerErrors');
      return answer;
    } finally {
      const outcome = status < 400 ? 'relayed' : record.upstreamStatus !== undefined ? 'relayed' : status === 401 || status === 403 ? 'denied' : status < 500 ? 'refused' : 'failed';
      rt.audit.event('broker', { ...record, outcome, status, durationMs: rt.clock.now() - started });
      rt.metrics.flush();
    }
  };
}

let bound: ReturnType<typeof createBrokerHandler> | undefined;
export const handler = (event: HttpEvent): Promise<HttpResult> => (bound ??= createBrokerHandler(lambdaRuntime()))(event);
