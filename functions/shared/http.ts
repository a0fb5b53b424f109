/**
 * HTTP API (payload v2) plumbing shared by the handlers: body parsing with limits, bearer
 * extraction, and the one mapping from errors to answers. Unknown errors become `500 internal`
 * with nothing leaked.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { InvalidRequest, InvalidToken, PayloadTooLarge, STATUS_BY_CODE, TvmError } from '../core/errors.js';

export type HttpEvent = APIGatewayProxyEventV2 & {
  requestContext: APIGatewayProxyEventV2['requestContext'] & { authorizer?: { iam?: { userArn?: string; accountId?: string } } };
};
export type HttpResult = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };

export const MAX_JSON_BODY_BYTES = 16 * 1024;

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' };

export function json(statusCode: number, body: unknown): HttpResult {
  return { statusCode, headers: { ...JSON_HEADERS }, body: JSON.stringify(body) };
}

export function errorResult(err: unknown, requestId: string): HttpResult {
  if (err instanceof TvmError) return json(STATUS_BY_CODE[err.code], { error: err.code, message: err.message, requestId });
  return json(500, { error: 'internal', message: 'An internal error occurred.', requestId });
}

export function header(event: HttpEvent, name: string): string | undefined {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === want) return v;
  return undefined;
}

/** The raw body as a Buffer, refusing anything over `max` bytes. */
export function rawBody(event: HttpEvent, max: number): Buffer {
  if (!event.body) return Buffer.alloc(0);
  const buf = event.isBase64Encoded ? Buffer.from(event.body, 'base64') : Buffer.from(event.body, 'utf8');
  if (buf.length > max) throw new PayloadTooLarge('body_too_large', { bytes: buf.length });
  return buf;
}

/** Parses a JSON object body (`application/json` required when a body is present). */
export function jsonBody(event: HttpEvent, max = MAX_JSON_BODY_BYTES): Record<string, unknown> {
  const buf = rawBody(event, max);
  if (buf.length === 0) throw new InvalidRequest('body_missing', undefined, 'A JSON body is required.');
  const type = header(event, 'content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) throw new InvalidRequest('content_type', { type }, 'Content-Type must be application/json.');
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new InvalidRequest('malformed_json', undefined, 'The body is not valid JSON.');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidRequest('body_not_object', undefined, 'The body must be a JSON object.');
  return parsed as Record<string, unknown>;
}

/**
 * The JWT from `Authorization`: `Bearer <jwt>`, or (`allowRaw`) the raw JWT that AWS SDKs send
 * from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.
 */
export function bearerToken(event: HttpEvent, allowRaw = false): string {
  const value = header(event, 'authorization')?.trim();
  if (!value) throw new InvalidToken('missing_authorization');
  const m = /^Bearer\s+(\S+)$/i.exec(value);
  if (m) return m[1];
  if (allowRaw && !/\s/.test(value)) return value;
  throw new InvalidToken('malformed_authorization');
}

export function sourceIp(event: HttpEvent): string | undefined {
  return event.requestContext?.http?.sourceIp;
}

export function requestIdOf(event: HttpEvent): string {
  return event.requestContext?.requestId ?? 'unknown';
}

/** The IAM identity API Gateway authorized (admin routes). Absent → the route was misconfigured or called directly. */
export function adminIdentity(event: HttpEvent): string {
  const iam = event.requestContext?.authorizer?.iam;
  if (!iam?.userArn) throw new InvalidToken('admin_auth_missing');
  return iam.userArn;
}
