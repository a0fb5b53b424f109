/**
 * Why a request was answered as it was, in words, from its audit events: callers get fixed
 * phrases (nothing about which issuers, grants or policies exist), admins get the reason here.
 */
import type { AuditEvent } from './audit-events.js';
import { MAX_DURATION_SECONDS, MIN_DURATION_SECONDS } from './config.js';

type Words = (e: AuditEvent) => string;

const list = (v: unknown) => (Array.isArray(v) && v.length ? v.map(String).join(', ') : undefined);
const d = (e: AuditEvent) => (e.detail ?? {}) as Record<string, unknown>;
const issuerOf = (e: AuditEvent) => (typeof d(e).issuer === 'string' ? ` (issuer ${d(e).issuer})` : '');

/** Every reason code tvm's handlers and use cases raise, in words. A test derives the codes from functions/. */
export const REASONS: Record<string, Words> = {
  // token
  missing_authorization: () => 'no Authorization header: the request carried no token',
  malformed_authorization: () => 'the Authorization header is not "Bearer <JWT>"',
  malformed: () => 'the token is not a well-formed JWT (three base64url parts, JSON header and claims)',
  jwe_not_accepted: () => 'the token is an encrypted JWT (JWE); tvm accepts signed JWTs only',
  non_canonical_encoding: () => 'the token\'s base64url parts are not in canonical form (padding, or bits past the end), which tvm refuses',
  bad_exp: (e) => `the token's exp claim is missing or not a whole number of seconds${issuerOf(e)}`,
  claim_unsupported: (e) => `the token carries a claim tvm cannot pass to policies${typeof d(e).claim === 'string' ? ` (${d(e).claim}${typeof d(e).why === 'string' ? `: ${d(e).why}` : ''})` : ''}`,
  token_too_large: () => 'the token is larger than tvm accepts (16 KiB)',
  nested_jwt_refused: () => 'the token is a nested JWT (cty: JWT), which tvm refuses',
  missing_iss: () => 'the token has no iss claim',
  unknown_issuer: (e) => `the token's issuer is not a configured issuer${typeof d(e).iss === 'string' ? ` (iss ${d(e).iss})` : ''}`,
  token_expired: (e) => `the token had expired${typeof d(e).exp === 'number' ? ` at ${new Date((d(e).exp as number) * 1000).toISOString()}` : ''} when it was presented${issuerOf(e)}`,
  foreign_audience: (e) => `the token's audience${d(e).aud ? ` ${JSON.stringify(d(e).aud)}` : ''} is not one the issuer's configuration accepts${issuerOf(e)}`,
  claim_aud_check_failed: (e) => `the token's audience (aud) is not one the issuer's configuration accepts${issuerOf(e)}`,
  claim_iss_check_failed: (e) => `the token's iss does not match the configured issuer${issuerOf(e)}`,
  claim_nbf_check_failed: (e) => `the token is not valid yet (nbf is in the future)${issuerOf(e)}`,
  claim_iat_check_failed: (e) => `the token is older than the issuer's maxTokenAgeSeconds, or its iat is unusable${issuerOf(e)}`,
  claim_exp_invalid: (e) => `the token's exp claim is not a number${issuerOf(e)}`,
  iat_in_future: (e) => `the token was issued in the future (iat past now plus the allowed skew)${issuerOf(e)}`,
  bad_sub: (e) => `the token's sub is missing, empty or longer than 512 characters${issuerOf(e)}`,
  missing_jti: (e) => `the issuer requires single-use tokens and this one has no usable jti${issuerOf(e)}`,
  token_replayed: (e) => `the token had already been used once (single-use tokens)${issuerOf(e)}`,
  alg_not_allowed: (e) => `the token is signed with an algorithm the issuer's configuration does not allow${issuerOf(e)}`,
  unknown_kid: (e) => `no key in the issuer's JWKS matches the token's kid${issuerOf(e)}`,
  bad_signature: (e) => `the token's signature does not verify against the issuer's keys${issuerOf(e)}`,
  jwks_timeout: (e) => `the issuer's JWKS did not answer in time, so the token could not be checked (fail closed)${issuerOf(e)}`,
  jwks_invalid: (e) => `the issuer's JWKS answer is not a valid key set (fail closed)${issuerOf(e)}`,
  jwks_unreachable: (e) => `the issuer's JWKS could not be reached (fail closed)${issuerOf(e)}`,
  jwks_backoff: (e) => `the issuer's JWKS failed recently, so tvm refused without fetching it again until its backoff passes (fail closed)${issuerOf(e)}`,
  replay_store_unavailable: () => 'the single-use check could not reach the table, so the token was refused (fail closed)',
  invalid_token: () => 'the token is not valid',
  admin_auth_missing: () => 'an admin route was called without IAM (SigV4) authorization',
  // policy and grant
  policy_deny: (e) => {
    const p = list(e.policies ?? d(e).policies);
    const errors = list(d(e).errors);
    return (p ? `policy ${p} forbids this request` : 'no policy permits this request (deny by default)') + (errors ? `; policy evaluation errors: ${errors}` : '');
  },
  policy_error: (e) => `policy evaluation failed, so the request was denied (fail closed): ${list(d(e).errors) ?? 'errors in the log'}`,
  unknown_grant: (e) => `the grant${typeof d(e).grant === 'string' ? ` "${d(e).grant}"` : e.grant ? ` "${e.grant}"` : ''} is not configured`,
  duration_out_of_bounds: (e) => `the requested duration${d(e).requested !== undefined ? ` (${d(e).requested} s)` : ''} is outside ${MIN_DURATION_SECONDS}–${MAX_DURATION_SECONDS} seconds (a duration within them but over the grant's max is shortened to the max, not refused)`,
  placeholder_missing: (e) => `the session policy or tags name a value the request did not carry${typeof d(e).placeholder === 'string' ? ` (${d(e).placeholder})` : ''}`,
  placeholder_unsafe: (e) => `a value filled into the session policy contains characters tvm refuses there${typeof d(e).placeholder === 'string' ? ` (${d(e).placeholder})` : ''}`,
  session_policy_too_large: () => 'the rendered session policy is larger than STS accepts',
  packed_policy_too_large: () => 'STS refused the session policy and tags as too large once packed',
  max_live_leases: () => 'the principal already holds the grant\'s maxLiveLeasesPerPrincipal live leases',
  principal_rate: () => 'the principal vended faster than its per-principal rate allows',
  source_ip_unknown: () => 'the grant binds sessions to the caller\'s IP and the request\'s source IP is unknown (fail closed)',
  deny_policy_full: () => 'the role\'s deny policy has no room even for this principal\'s own fallback, so the self-revocation was refused',
  vendor_not_configured: () => 'the vendor\'s management credential has not been set (not configured)',
  not_a_vendor_key_secret: () => 'the secret Secrets Manager asked to rotate is not one of tvm\'s vendor key secrets',
  unknown_rotation_step: () => 'Secrets Manager asked for a rotation step tvm does not know',
  throttled: () => 'too many requests for this principal (rate bound or maxLiveLeasesPerPrincipal)',
  // request shape
  bad_field: (e) => `the request field ${typeof d(e).field === 'string' ? `"${d(e).field}" ` : ''}is not valid${typeof d(e).issue === 'string' ? ` (${d(e).issue})` : ''}`,
  body_missing: () => 'the request had no body',
  body_not_object: () => 'the body is not a JSON object',
  body_too_large: () => 'the body is larger than tvm accepts',
  malformed_json: () => 'the body is not valid JSON',
  content_type: () => 'the body is not sent as application/json',
  payload_too_large: () => 'the request is larger than tvm accepts',
  bad_lease_id: () => 'the lease id is not in tvm\'s format',
  bad_cursor: () => 'the paging cursor (next) was not made by this listing',
  bad_principal: () => 'the principal is not of the form issuer|sub',
  lease_not_found: () => 'no such lease (or it belongs to another principal)',
  no_route: () => 'no such route',
  unknown_route: () => 'no such route',
  not_found: () => 'not found',
  // broker
  unknown_vendor: () => 'the vendor is not configured',
  path_not_allowed: (e) => `the vendor path${typeof d(e).path === 'string' ? ` ${d(e).path}` : e.path ? ` ${e.path}` : ''} is not in the vendor's broker allow-list`,
  bad_path: () => 'the vendor path is not canonical (encoded slash, backslash, NUL or a dot segment)',
  vendor_key_missing: () => 'tvm holds no current key for this vendor',
  vendor_secret_not_configured: () => 'the vendor\'s management credential has not been set (not configured)',
  vendor_timeout: () => 'the vendor did not answer in time',
  vendor_unreachable: () => 'the vendor could not be reached',
  vendor_answer_malformed: () => 'the vendor\'s answer could not be read',
  upstream_answer_too_large: () => 'the vendor\'s answer was larger than tvm relays',
  management_credential_invalid: () => 'the vendor refused tvm\'s management credential',
  management_credential_missing: () => 'the vendor\'s management credential is missing from its secret',
  rotation_in_progress: () => 'a rotation of this vendor was already running',
  lock_lost: () => 'the rotation lost its lock to another run',
  secret_store_timeout: () => 'Secrets Manager did not answer in time',
  secret_store_unavailable: () => 'Secrets Manager could not be reached',
  secret_store_error: () => 'Secrets Manager answered an error',
  // the audit trail itself
  events_not_configured: () => 'this deployment has no audit log groups configured for the events route',
  logs_unreachable: () => 'CloudWatch Logs could not be reached',
  logs_failed: () => 'CloudWatch Logs refused the Logs Insights call',
  logs_query_failed: () => 'the Logs Insights query failed or was cancelled',
  logs_query_timeout: () => 'the Logs Insights query did not finish within the route\'s budget: narrow the time window',
  logs_window_too_wide: () => 'the 10,000 newest log lines of the window held no matching event, so the page could not tell whether older ones exist: narrow the time window',
  // AWS and the lease store
  sts_access_denied: () => 'STS refused AssumeRole: the grant role\'s trust policy does not trust tvm (or its conditions failed)',
  sts_failed: () => 'STS AssumeRole failed',
  sts_no_credentials: () => 'STS answered without credentials',
  sts_throttled: () => 'STS throttled AssumeRole',
  sts_timeout: () => 'STS did not answer in time',
  lease_store_unavailable: () => 'the lease could not be written, so no credentials left tvm (fail closed)',
  limits_unavailable: () => 'the per-principal limits could not be read (the lease store failed), so the vend was refused (fail closed)',
  no_revoker_role: () => 'the grant role is in an account with no revoker role configured (accounts.<id>.revokerRoleArn), so tvm cannot deny its sessions',
  revoker_role_unavailable: () => 'the other account\'s revoker role could not be assumed, so the revocation could not be written there yet',
  lease_activate_failed: () => 'the lease could not be marked active, so the credentials STS issued did not leave tvm; the sweep denies that session',
  iam_failed: () => 'IAM refused or failed the deny-policy write on the role',
  iam_throttled: () => 'IAM throttled the deny-policy write',
  deny_policy_contention: () => 'too many concurrent writers on the role\'s deny policy; retry',
  deny_policy_no_room: () => 'the role\'s other inline policies leave no room even for the fallback deny',
  deny_record_regressed: () => 'the role\'s deny record moved backwards (another writer); refused',
  deny_record_missing: () => 'the role\'s deny record disappeared while its policy was being written; refused',
  deny_failed: () => 'the deny-policy write on the role failed',
  record_failed: () => 'the session was denied on the role but the lease record could not be updated',
  internal: () => 'an internal error (the function log has the stack under this request id)',
};

/** A reason in words; a code tvm does not know is named as it is. */
export function reasonInWords(e: AuditEvent): string {
  const code = e.reason ?? '';
  const words = REASONS[code] ?? (code.startsWith('claim_') ? () => `the token's ${code.slice(6).replace(/_/g, ' ')} check failed` : code.startsWith('header_') ? () => `the token header carries ${code.slice(7, -8)}, which tvm refuses` : code.startsWith('vendor_refused_') ? () => `the vendor refused tvm's ${code.split('_')[2]} call (HTTP ${code.split('_')[3]})` : code.startsWith('vendor_') ? () => `the vendor answered ${code.slice(7)}` : undefined);
  return words ? words(e) : `reason code ${code}`;
}

/** The answer to "why?" for one request: its outcome and reason in words, from its events. */
export function explainRequest(requestId: string, events: AuditEvent[]): string[] {
  const mine = events.filter((e) => e.requestId === requestId).sort((a, b) => a.at.localeCompare(b.at));
  if (!mine.length) return [];
  const main = mine.find((e) => e.route !== undefined) ?? mine[0];
  const who = main.principal ? ` by ${main.principal}` : '';
  const what = main.grant ? ` for grant ${main.grant}` : main.vendor ? ` for vendor ${main.vendor}` : '';
  const lines = [`${main.at}  ${main.route ?? main.name}${who}${what}: ${main.type}${main.status ? ` (HTTP ${main.status})` : ''}`];
  if (main.reason) lines.push(`because ${reasonInWords(main)} [${main.reason}]`);
  else if (main.type === 'issued') lines.push(`issued lease ${main.leaseId ?? '?'}${main.policies?.length ? `, permitted by ${main.policies.join(', ')}` : ''}`);
  for (const e of mine) if (e !== main) lines.push(`  ${e.at}  ${e.type}${e.leaseId ? ` ${e.leaseId}` : ''}${e.reason ? `: ${reasonInWords(e)}` : ''}`);
  return lines;
}
