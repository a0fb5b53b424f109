/** HTTP API (payload v2) events for calling handlers directly. */
import { randomUUID } from 'node:crypto';
import type { HttpEvent } from '../../functions/shared/http.js';

export function httpEvent(
  routeKey: string,
  opts: { headers?: Record<string, string>; body?: unknown; pathParameters?: Record<string, string>; query?: Record<string, string>; admin?: boolean } = {},
): HttpEvent {
  const [method, path] = routeKey.split(' ');
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  return {
    version: '2.0',
    routeKey,
    rawPath: path,
    rawQueryString: '',
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
    queryStringParameters: opts.query,
    pathParameters: opts.pathParameters,
    body,
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'test',
      domainName: 'test',
      domainPrefix: 'test',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
      ...(opts.admin ? { authorizer: { iam: { userArn: 'arn:aws:iam::000000000000:user/admin', accountId: '000000000000' } } } : {}),
    },
  } as HttpEvent;
}
