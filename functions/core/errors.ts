/**
 * Every error tvm raises on purpose. Callers switch on `code`, never on the message.
 * The message is a fixed phrase safe to show a caller; `detail` goes to the log only.
 */
export type ErrorCode =
  | 'invalid_request'
  | 'invalid_token'
  | 'access_denied'
  | 'not_found'
  | 'token_replayed'
  | 'payload_too_large'
  | 'throttled'
  | 'upstream_unavailable'
  | 'upstream_refused'
  | 'upstream_timeout'
  | 'internal';

export class TvmError extends Error {
  readonly code: ErrorCode;
  /** Machine-readable reason for the audit log (e.g. `token_expired`, `policy_deny`). */
  readonly reason: string;
  /** Detail for the log; never sent to a caller. */
  readonly detail?: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, reason: string, detail?: Record<string, unknown>) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
    this.detail = detail;
  }
}

export class InvalidRequest extends TvmError {
  constructor(reason: string, detail?: Record<string, unknown>, message = 'The request is not valid.') {
    super('invalid_request', message, reason, detail);
  }
}
export class InvalidToken extends TvmError {
  constructor(reason: string, detail?: Record<string, unknown>) {
    super('invalid_token', 'The token is not valid.', reason, detail);
  }
}
export class AccessDenied extends TvmError {
  constructor(reason: string, detail?: Record<string, unknown>) {
    super('access_denied', 'Access is denied.', reason, detail);
  }
}
export class NotFound extends TvmError {
  constructor(reason = 'not_found', detail?: Record<string, unknown>) {
    super('not_found', 'Not found.', reason, detail);
  }
}
export class TokenReplayed extends TvmError {
  constructor(detail?: Record<string, unknown>) {
    super('token_replayed', 'The token has already been used.', 'token_replayed', detail);
  }
}
export class PayloadTooLarge extends TvmError {
  constructor(reason = 'payload_too_large', detail?: Record<string, unknown>) {
    super('payload_too_large', 'The request is too large.', reason, detail);
  }
}
export class Throttled extends TvmError {
  constructor(reason = 'throttled', detail?: Record<string, unknown>) {
    super('throttled', 'Too many requests; retry later.', reason, detail);
  }
}
export class UpstreamUnavailable extends TvmError {
  constructor(reason = 'upstream_unavailable', detail?: Record<string, unknown>) {
    super('upstream_unavailable', 'A service tvm depends on is unavailable; retry later.', reason, detail);
  }
}
export class UpstreamTimeout extends TvmError {
  constructor(reason = 'upstream_timeout', detail?: Record<string, unknown>) {
    super('upstream_timeout', 'A service tvm depends on did not answer in time.', reason, detail);
  }
}

/**
 * A vendor said the key does not work (401/403 on a test or a brokered call). 502: the vendor,
 * not tvm and not the caller, refused.
 */
export class KeyRejected extends TvmError {
  constructor(readonly status: number) {
    super('upstream_refused', 'A service tvm depends on refused the request.', `key_rejected_${status}`, { status });
  }
}

/** A vendor refused a management call (create, test, revoke, list) for a reason other than availability. */
export class VendorRefused extends TvmError {
  constructor(
    readonly operation: string,
    readonly status: number,
    /** The vendor's own words, for the log only. */
    readonly vendorMessage?: string,
  ) {
    super('upstream_refused', 'A service tvm depends on refused the request.', `vendor_refused_${operation}_${status}`, { operation, status });
  }
}

/** A rotation run no longer holds its vendor's lock (it expired, another run took it): nothing more is written. */
export class LockLost extends TvmError {
  constructor(readonly vendor: string) {
    super('throttled', 'Too many requests; retry later.', 'lock_lost', { vendor });
  }
}

/**
 * The secret store (Secrets Manager, or the embedded store) refused or failed a call; `awsName`
 * is Secrets Manager's exception name (`ResourceExistsException`, `InvalidParameterException`, …).
 */
export class SecretStoreError extends TvmError {
  constructor(
    readonly awsName: string,
    detail?: Record<string, unknown>,
  ) {
    super('upstream_unavailable', 'A service tvm depends on is unavailable; retry later.', 'secret_store_error', { awsName, ...detail });
  }
}

/** HTTP status for each code: the one map the handlers and the local server use. */
export const STATUS_BY_CODE: Record<ErrorCode, number> = {
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
};
