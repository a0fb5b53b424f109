/**
 * The error taxonomy (`core/errors.ts`): each kind's stable code, its default reason, the HTTP
 * status it answers with, and the fixed phrase a caller is shown (`shared/http.ts` sends
 * `err.message`), so a changed phrase or status is a visible change of the API.
 */
import { describe, expect, it } from 'vitest';
import {
  AccessDenied,
  InvalidRequest,
  InvalidToken,
  KeyRejected,
  LockLost,
  NotFound,
  PayloadTooLarge,
  SecretStoreError,
  STATUS_BY_CODE,
  Throttled,
  TokenReplayed,
  TvmError,
  UpstreamTimeout,
  UpstreamUnavailable,
  VendorRefused,
} from '../../functions/core/errors.js';

const UNAVAILABLE = 'A service tvm depends on is unavailable; retry later.';
const REFUSED = 'A service tvm depends on refused the request.';
const RETRY = 'Too many requests; retry later.';

describe('each error kind: name, code, reason, status and the phrase a caller sees', () => {
  const detail = { why: 'x' };
  it.each<[string, () => TvmError, { name: string; code: string; reason: string; status: number; message: string; detail?: unknown }]>([
    ['InvalidRequest', () => new InvalidRequest('bad_body', detail), { name: 'InvalidRequest', code: 'invalid_request', reason: 'bad_body', status: 400, message: 'The request is not valid.', detail }],
    [
      'InvalidRequest with its own phrase',
      () => new InvalidRequest('bad_path', undefined, 'The path is not valid.'),
      { name: 'InvalidRequest', code: 'invalid_request', reason: 'bad_path', status: 400, message: 'The path is not valid.', detail: undefined },
    ],
    ['InvalidToken', () => new InvalidToken('token_expired', detail), { name: 'InvalidToken', code: 'invalid_token', reason: 'token_expired', status: 401, message: 'The token is not valid.', detail }],
    ['AccessDenied', () => new AccessDenied('policy_deny', detail), { name: 'AccessDenied', code: 'access_denied', reason: 'policy_deny', status: 403, message: 'Access is denied.', detail }],
    ['NotFound', () => new NotFound(), { name: 'NotFound', code: 'not_found', reason: 'not_found', status: 404, message: 'Not found.', detail: undefined }],
    ['NotFound with a reason', () => new NotFound('no_such_lease', detail), { name: 'NotFound', code: 'not_found', reason: 'no_such_lease', status: 404, message: 'Not found.', detail }],
    ['TokenReplayed', () => new TokenReplayed(detail), { name: 'TokenReplayed', code: 'token_replayed', reason: 'token_replayed', status: 409, message: 'The token has already been used.', detail }],
    ['PayloadTooLarge', () => new PayloadTooLarge(), { name: 'PayloadTooLarge', code: 'payload_too_large', reason: 'payload_too_large', status: 413, message: 'The request is too large.' }],
    ['PayloadTooLarge with a reason', () => new PayloadTooLarge('body_too_large', detail), { name: 'PayloadTooLarge', code: 'payload_too_large', reason: 'body_too_large', status: 413, message: 'The request is too large.', detail }],
    ['Throttled', () => new Throttled(), { name: 'Throttled', code: 'throttled', reason: 'throttled', status: 429, message: RETRY }],
    ['Throttled with a reason', () => new Throttled('principal_rate', detail), { name: 'Throttled', code: 'throttled', reason: 'principal_rate', status: 429, message: RETRY, detail }],
    ['UpstreamUnavailable', () => new UpstreamUnavailable(), { name: 'UpstreamUnavailable', code: 'upstream_unavailable', reason: 'upstream_unavailable', status: 503, message: UNAVAILABLE }],
    [
      'UpstreamUnavailable with a reason',
      () => new UpstreamUnavailable('vendor_500', detail),
      { name: 'UpstreamUnavailable', code: 'upstream_unavailable', reason: 'vendor_500', status: 503, message: UNAVAILABLE, detail },
    ],
    ['UpstreamTimeout', () => new UpstreamTimeout(), { name: 'UpstreamTimeout', code: 'upstream_timeout', reason: 'upstream_timeout', status: 504, message: 'A service tvm depends on did not answer in time.' }],
    [
      'UpstreamTimeout with a reason',
      () => new UpstreamTimeout('sts_timeout', detail),
      { name: 'UpstreamTimeout', code: 'upstream_timeout', reason: 'sts_timeout', status: 504, message: 'A service tvm depends on did not answer in time.', detail },
    ],
    ['KeyRejected', () => new KeyRejected(403), { name: 'KeyRejected', code: 'upstream_refused', reason: 'key_rejected_403', status: 502, message: REFUSED, detail: { status: 403 } }],
    [
      'VendorRefused',
      () => new VendorRefused('create', 400, 'the vendor says no'),
      { name: 'VendorRefused', code: 'upstream_refused', reason: 'vendor_refused_create_400', status: 502, message: REFUSED, detail: { operation: 'create', status: 400 } },
    ],
    ['LockLost', () => new LockLost('datadog'), { name: 'LockLost', code: 'throttled', reason: 'lock_lost', status: 429, message: RETRY, detail: { vendor: 'datadog' } }],
    [
      'SecretStoreError',
      () => new SecretStoreError('ResourceExistsException', { step: 'createSecret' }),
      { name: 'SecretStoreError', code: 'upstream_unavailable', reason: 'secret_store_error', status: 503, message: UNAVAILABLE, detail: { awsName: 'ResourceExistsException', step: 'createSecret' } },
    ],
    [
      'SecretStoreError without detail',
      () => new SecretStoreError('ThrottlingException'),
      { name: 'SecretStoreError', code: 'upstream_unavailable', reason: 'secret_store_error', status: 503, message: UNAVAILABLE, detail: { awsName: 'ThrottlingException' } },
    ],
  ])('%s', (_label, make, want) => {
    const err = make();
    expect(err).toBeInstanceOf(TvmError);
    expect(err).toBeInstanceOf(Error);
    expect({ name: err.name, code: err.code, reason: err.reason, status: STATUS_BY_CODE[err.code], message: err.message, detail: err.detail }).toEqual({
      detail: undefined,
      ...want,
    });
  });

  it('the vendor errors keep what the log needs, and the vendor’s own words stay out of the caller’s phrase', () => {
    const refused = new VendorRefused('revoke', 403, 'secret detail from the vendor');
    expect([refused.operation, refused.status, refused.vendorMessage]).toEqual(['revoke', 403, 'secret detail from the vendor']);
    expect(refused.message).not.toContain('secret detail');
    expect(new KeyRejected(401).status).toBe(401);
    expect(new LockLost('openai').vendor).toBe('openai');
    expect(new SecretStoreError('InvalidParameterException').awsName).toBe('InvalidParameterException');
  });
});

describe('STATUS_BY_CODE', () => {
  it('maps every code to its HTTP status', () => {
    expect(STATUS_BY_CODE).toEqual({
      invalid_request: 400,
      invalid_token: 401,
      access_denied: 403,
      not_found: 404,
      token_replayed: 409,
      payload_too_large: 413,
      throttled: 429,
      internal: 500,
      upstream_refused: 502,
      upstream_unavailable: 503,
      upstream_timeout: 504,
    });
  });
});
