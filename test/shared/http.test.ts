/**
 * HTTP plumbing shared by the handlers: bearer extraction (raw JWT on the container route), body
 * limits and parsing, the one error mapping (unknown errors leak nothing), request validation.
 */
import { describe, expect, it } from 'vitest';
import {
  AccessDenied,
  InvalidRequest,
  InvalidToken,
  NotFound,
  PayloadTooLarge,
  STATUS_BY_CODE,
  Throttled,
  TokenReplayed,
  TvmError,
  UpstreamTimeout,
  UpstreamUnavailable,
} from '../../functions/core/errors.js';
import {
  adminIdentity,
  bearerToken,
  errorResult,
  header,
  type HttpEvent,
  json,
  jsonBody,
  MAX_JSON_BODY_BYTES,
  rawBody,
  requestIdOf,
  sourceIp,
} from '../../functions/shared/http.js';
import { contextFromQuery, parseRequest, vendBodySchema } from '../../functions/shared/request.js';

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';

function event(over: { headers?: Record<string, string>; body?: string; isBase64Encoded?: boolean; requestContext?: unknown } = {}): HttpEvent {
  return {
    version: '2.0',
    routeKey: 'POST /v1/vend',
    rawPath: '/v1/vend',
    rawQueryString: '',
    headers: over.headers ?? {},
    body: over.body,
    isBase64Encoded: over.isBase64Encoded ?? false,
    requestContext: (over.requestContext ?? { requestId: 'req-1', http: { sourceIp: '10.0.0.7' } }) as HttpEvent['requestContext'],
  } as HttpEvent;
}

function refusal(f: () => unknown): { code: string; reason: string; status: number } {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TvmError);
    const t = e as TvmError;
    return { code: t.code, reason: t.reason, status: STATUS_BY_CODE[t.code] };
  }
  throw new Error('expected a refusal');
}

describe('bearerToken', () => {
  it.each([
    ['Bearer <jwt>', { authorization: `Bearer ${JWT}` }, false, JWT],
    ['lower-case scheme', { authorization: `bearer ${JWT}` }, false, JWT],
    ['several spaces and padding', { authorization: `  BEARER   ${JWT}  ` }, false, JWT],
    ['a header name in capitals', { Authorization: `Bearer ${JWT}` }, false, JWT],
    ['raw JWT on the container route', { authorization: JWT }, true, JWT],
    ['Bearer on the container route', { authorization: `Bearer ${JWT}` }, true, JWT],
    ['raw JWT with a trailing newline on the container route', { authorization: `${JWT}\n` }, true, JWT],
  ])('%s', (_name, headers, allowRaw, want) => {
    expect(bearerToken(event({ headers }), allowRaw)).toBe(want);
  });

  it.each([
    ['no header', {}, false, 'missing_authorization'],
    ['an empty header', { authorization: '' }, false, 'missing_authorization'],
    ['only spaces', { authorization: '   ' }, true, 'missing_authorization'],
    ['a raw JWT off the container route', { authorization: JWT }, false, 'malformed_authorization'],
    ['Basic credentials', { authorization: 'Basic dXNlcjpwYXNz' }, false, 'malformed_authorization'],
    ['Basic credentials on the container route', { authorization: 'Basic dXNlcjpwYXNz' }, true, 'malformed_authorization'],
    ['Bearer without a token', { authorization: 'Bearer' }, false, 'malformed_authorization'],
    ['two tokens', { authorization: `Bearer ${JWT} ${JWT}` }, false, 'malformed_authorization'],
    ['two tokens on the container route', { authorization: `${JWT} ${JWT}` }, true, 'malformed_authorization'],
  ])('%s → 401 %s', (_name, headers, allowRaw, reason) => {
    expect(refusal(() => bearerToken(event({ headers }), allowRaw))).toEqual({ code: 'invalid_token', reason, status: 401 });
  });
});

describe('jsonBody', () => {
  const ok = { 'content-type': 'application/json' };

  it.each([
    ['a plain JSON object', { headers: ok, body: '{"grant":"reports-read"}' }],
    ['a charset parameter', { headers: { 'content-type': 'application/json; charset=utf-8' }, body: '{"grant":"reports-read"}' }],
    ['a capitalised type and header name', { headers: { 'Content-Type': 'Application/JSON' }, body: '{"grant":"reports-read"}' }],
    ['a base64 body', { headers: ok, body: Buffer.from('{"grant":"reports-read"}').toString('base64'), isBase64Encoded: true }],
  ])('parses %s', (_name, e) => {
    expect(jsonBody(event(e))).toEqual({ grant: 'reports-read' });
  });

  it('accepts a body of exactly the limit', () => {
    const body = `{"p":"${'x'.repeat(MAX_JSON_BODY_BYTES - 8)}"}`;
    expect(Buffer.byteLength(body)).toBe(MAX_JSON_BODY_BYTES);
    expect(jsonBody(event({ headers: ok, body })).p).toHaveLength(MAX_JSON_BODY_BYTES - 8);
  });

  it.each([
    ['one byte over the limit', { headers: ok, body: `{"p":"${'x'.repeat(MAX_JSON_BODY_BYTES - 7)}"}` }],
    ['over the limit in multi-byte characters', { headers: ok, body: `{"p":"${'é'.repeat(MAX_JSON_BODY_BYTES / 2)}"}` }],
    ['over the limit once base64-decoded', { headers: ok, body: Buffer.alloc(MAX_JSON_BODY_BYTES + 1, 0x20).toString('base64'), isBase64Encoded: true }],
    ['over the limit without a content type', { body: 'x'.repeat(MAX_JSON_BODY_BYTES + 1) }],
  ])('%s → 413', (_name, e) => {
    expect(refusal(() => jsonBody(event(e)))).toEqual({ code: 'payload_too_large', reason: 'body_too_large', status: 413 });
  });

  it.each([
    ['no body', { headers: ok }, 'body_missing'],
    ['an empty body', { headers: ok, body: '' }, 'body_missing'],
    ['no content type', { body: '{}' }, 'content_type'],
    ['text/plain', { headers: { 'content-type': 'text/plain' }, body: '{}' }, 'content_type'],
    ['form encoding', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant=x' }, 'content_type'],
    ['a look-alike type', { headers: { 'content-type': 'application/jsonp' }, body: '{}' }, 'content_type'],
    ['another JSON-ish type', { headers: { 'content-type': 'application/json-patch+json' }, body: '{}' }, 'content_type'],
    ['malformed JSON', { headers: ok, body: '{"grant":' }, 'malformed_json'],
    ['a trailing comma', { headers: ok, body: '{"grant":"x",}' }, 'malformed_json'],
    ['an array', { headers: ok, body: '[{"grant":"x"}]' }, 'body_not_object'],
    ['null', { headers: ok, body: 'null' }, 'body_not_object'],
    ['a string', { headers: ok, body: '"grant"' }, 'body_not_object'],
    ['a number', { headers: ok, body: '42' }, 'body_not_object'],
  ])('%s → 400 %s', (_name, e, reason) => {
    expect(refusal(() => jsonBody(event(e)))).toEqual({ code: 'invalid_request', reason, status: 400 });
  });

  it('a __proto__ key stays an own property and pollutes nothing', () => {
    const body = jsonBody(event({ headers: ok, body: '{"__proto__":{"polluted":true},"grant":"x"}' }));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(body)).toBe(Object.prototype);
  });

  it('rawBody answers an empty buffer without a body and refuses over its own limit', () => {
    expect(rawBody(event(), 10)).toHaveLength(0);
    expect(rawBody(event({ body: '0123456789' }), 10)).toHaveLength(10);
    expect(refusal(() => rawBody(event({ body: '0123456789a' }), 10))).toMatchObject({ code: 'payload_too_large' });
  });
});

describe('errorResult', () => {
  it.each([
    [new InvalidRequest('bad_field', { field: 'grant' }), 400, 'invalid_request'],
    [new InvalidToken('token_expired', { issuer: 'secret-issuer' }), 401, 'invalid_token'],
    [new AccessDenied('policy_deny', { policies: ['internal-policy-id'] }), 403, 'access_denied'],
    [new NotFound('lease_unknown'), 404, 'not_found'],
    [new TokenReplayed({ issuer: 'dev' }), 409, 'token_replayed'],
    [new PayloadTooLarge('body_too_large'), 413, 'payload_too_large'],
    [new Throttled('sts_throttled', { roleArn: 'arn:aws:iam::123456789012:role/secret' }), 429, 'throttled'],
    [new UpstreamUnavailable('sts_failed', { message: 'internal detail' }), 503, 'upstream_unavailable'],
    [new UpstreamTimeout('sts_timeout'), 504, 'upstream_timeout'],
  ])('%s → %s with the fixed phrase and no detail', (err, status, code) => {
    const r = errorResult(err, 'req-1');
    expect(r.statusCode).toBe(status);
    expect(r.headers).toMatchObject({ 'content-type': 'application/json', 'cache-control': 'no-store' });
    const body = JSON.parse(r.body);
    expect(body).toEqual({ error: code, message: err.message, requestId: 'req-1' });
    // Neither the reason nor the detail reaches the caller.
    if (err.reason !== err.code) expect(r.body).not.toContain(err.reason);
    for (const v of Object.values(err.detail ?? {})) expect(r.body).not.toContain(JSON.stringify(v).replace(/^\[|\]$/g, ''));
  });

  it.each([
    ['an Error', new Error('connect ECONNREFUSED 10.1.2.3:443 secret=AKIA1234')],
    ['a TypeError', new TypeError("Cannot read properties of undefined (reading 'secretAccessKey')")],
    ['a thrown string', 'secret=AKIA1234'],
    ['undefined', undefined],
    ['an object with a code', { code: 'access_denied', message: 'secret=AKIA1234' }],
  ])('%s → 500 internal, nothing leaked', (_name, err) => {
    const r = errorResult(err, 'req-2');
    expect(r.statusCode).toBe(500);
    expect(JSON.parse(r.body)).toEqual({ error: 'internal', message: expect.any(String), requestId: 'req-2' });
    expect(r.body).not.toMatch(/AKIA|ECONNREFUSED|secretAccessKey|10\.1\.2\.3|at \w|\.ts:/);
  });

  it('every error code has a status', () => {
    expect(Object.keys(STATUS_BY_CODE).sort()).toEqual(
      ['access_denied', 'internal', 'invalid_request', 'invalid_token', 'not_found', 'payload_too_large', 'throttled', 'token_replayed', 'upstream_refused', 'upstream_timeout', 'upstream_unavailable'],
    );
  });

  it('json answers are not cached', () => {
    expect(json(200, { a: 1 })).toEqual({ statusCode: 200, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, body: '{"a":1}' });
  });
});

describe('event accessors', () => {
  it('header is case-insensitive and answers undefined when absent', () => {
    const e = event({ headers: { 'X-Thing': 'v' } });
    expect(header(e, 'x-thing')).toBe('v');
    expect(header(e, 'X-THING')).toBe('v');
    expect(header(e, 'other')).toBeUndefined();
    expect(header({ ...e, headers: undefined } as unknown as HttpEvent, 'x-thing')).toBeUndefined();
  });

  it('sourceIp and requestIdOf read the request context, with a fallback id', () => {
    expect(sourceIp(event())).toBe('10.0.0.7');
    expect(requestIdOf(event())).toBe('req-1');
    expect(requestIdOf(event({ requestContext: {} }))).toBe('unknown');
    expect(sourceIp(event({ requestContext: {} }))).toBeUndefined();
  });

  it('adminIdentity needs the IAM authorizer', () => {
    expect(adminIdentity(event({ requestContext: { authorizer: { iam: { userArn: 'arn:aws:iam::123456789012:user/admin' } } } }))).toBe(
      'arn:aws:iam::123456789012:user/admin',
    );
    expect(refusal(() => adminIdentity(event()))).toEqual({ code: 'invalid_token', reason: 'admin_auth_missing', status: 401 });
  });
});

describe('request validation', () => {
  it.each([
    [{ grant: 'reports-read' }],
    [{ grant: 'reports-read', durationSeconds: 900, context: { task: 't', tool: 'cli', sensitivity: 'restricted', environment: 'prod' } }],
  ])('accepts %j', (body) => {
    expect(parseRequest(vendBodySchema, body)).toEqual(body);
  });

  it.each([
    ['an unknown field', { grant: 'x', role: 'admin' }, 'body'],
    ['an unknown context field', { grant: 'x', context: { user: 'x' } }, 'context'],
    ['no grant', {}, 'grant'],
    ['an empty grant', { grant: '' }, 'grant'],
    ['a duration as text', { grant: 'x', durationSeconds: '900' }, 'durationSeconds'],
    ['a fractional duration', { grant: 'x', durationSeconds: 900.5 }, 'durationSeconds'],
    ['an unknown sensitivity', { grant: 'x', context: { sensitivity: 'secret' } }, 'context.sensitivity'],
    ['a control character in context', { grant: 'x', context: { task: 'a\u0000b' } }, 'context.task'],
    ['an over-long context value', { grant: 'x', context: { task: 't'.repeat(257) } }, 'context.task'],
  ])('refuses %s → 400 bad_field naming %s', (_name, body, field) => {
    try {
      parseRequest(vendBodySchema, body);
    } catch (e) {
      expect(e).toMatchObject({ code: 'invalid_request', reason: 'bad_field', detail: { field } });
      return;
    }
    throw new Error('expected a refusal');
  });

  it('context from the container route query: known keys only, validated', () => {
    expect(contextFromQuery({ task: 't', sensitivity: 'internal', other: 'ignored' })).toEqual({ task: 't', sensitivity: 'internal' });
    expect(contextFromQuery(undefined)).toEqual({});
    expect(refusal(() => contextFromQuery({ sensitivity: 'top' }))).toEqual({ code: 'invalid_request', reason: 'bad_field', status: 400 });
  });
});
