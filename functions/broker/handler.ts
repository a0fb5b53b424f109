/**
 * `ANY /v1/broker/{vendor}/{proxy+}`: authenticate → brokerRequest → relay the vendor's answer.
 * One audit event per call on every path: principal, vendor, method, path, status, duration;
 * never the key, never a body, never the query string.
 */
import { brokerRequest, MAX_BROKER_BODY_BYTES } from '../core/broker-request.js';
import { authenticate } from '../shared/authenticate.js';
import { inEnvelope } from '../shared/envelope.js';
import { header, rawBody, sourceIp, type HttpEvent, type HttpResult } from '../shared/http.js';
import { contextSchema, parseRequest } from '../shared/request.js';
import type { BrokerRuntime } from '../shared/runtime.js';
import { vendorRuntime } from '../shared/vendor-runtime.js';

/** The vendor path: from the raw (still encoded) path when it has the route's prefix, else the decoded `proxy`. */
export function vendorPath(event: HttpEvent, vendor: string): string {
  const prefix = `/v1/broker/${vendor}`;
  const raw = event.rawPath ?? '';
  if (raw.startsWith(`${prefix}/`)) return raw.slice(prefix.length);
  return `/${event.pathParameters?.proxy ?? ''}`;
}

export function createBrokerHandler(rt: BrokerRuntime) {
  return function brokerHandler(event: HttpEvent): Promise<HttpResult> {
    const vendor = event.pathParameters?.vendor ?? '';
    const method = (event.requestContext?.http?.method ?? 'GET').toUpperCase();
    return inEnvelope(
      rt,
      event,
      'broker',
      async (record) => {
        Object.assign(record, { vendor, method });
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
          { vendors: rt.config.vendors, policy: rt.policy, http: vr.http, keys: vr.keyCacheFor(vendor), keysFor: vr.keysFor },
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
        return {
          statusCode: answer.status,
          headers: { ...answer.headers, 'cache-control': answer.headers['cache-control'] ?? 'no-store' },
          body: answer.body.toString('base64'),
          isBase64Encoded: true,
        };
      },
      {
        finish(record, status) {
          record.outcome = status < 400 || record.upstreamStatus !== undefined ? 'relayed' : status === 401 || status === 403 ? 'denied' : status < 500 ? 'refused' : 'failed';
          if (status >= 500) rt.metrics.count('BrokerErrors');
        },
      },
    );
  };
}
