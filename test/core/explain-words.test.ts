/**
 * `tvm explain` and the events route answer an admin's "why?" in these words: each reason code's
 * text is what the admin reads, so each is pinned here as a literal (a changed word is a changed
 * answer, reviewed in the diff). The scan in explain.test.ts proves every code tvm raises has
 * words; this file proves which words, with and without the detail that fills them in.
 */
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../functions/core/audit-events.js';
import { MAX_DURATION_SECONDS, MIN_DURATION_SECONDS } from '../../functions/core/config.js';
import { explainRequest, reasonInWords, REASONS } from '../../functions/core/explain.js';

const AT = '2030-01-01T00:00:00.000Z';
const event = (reason: string | undefined, over: Partial<AuditEvent> = {}): AuditEvent => ({ at: AT, type: 'denied', name: 'vend', ...(reason === undefined ? {} : { reason }), ...over });
/** Every field some reason's words read from an event's detail. */
const DETAIL = {
  issuer: 'dev',
  claim: 'groups[0]',
  why: 'null',
  iss: 'https://x',
  exp: 1893456000,
  aud: ['a'],
  policies: ['p1', 'p2'],
  errors: ['e1'],
  field: 'grant',
  issue: 'too long',
  path: '/v1/x',
  requested: 60,
  grant: 'reports-reed',
  placeholder: 'claims.team',
};

/** The words of every code for an event that carries no detail. */
const PLAIN: [string, string][] = [
  ['missing_authorization', 'no Authorization header: the request carried no token'],
  ['malformed_authorization', 'the Authorization header is not "Bearer <JWT>"'],
  ['malformed', 'the token is not a well-formed JWT (three base64url parts, JSON header and claims)'],
  ['jwe_not_accepted', 'the token is an encrypted JWT (JWE); tvm accepts signed JWTs only'],
  ['non_canonical_encoding', 'the token\'s base64url parts are not in canonical form (padding, or bits past the end), which tvm refuses'],
  ['bad_exp', 'the token\'s exp claim is missing or not a whole number of seconds'],
  ['claim_unsupported', 'the token carries a claim tvm cannot pass to policies'],
  ['token_too_large', 'the token is larger than tvm accepts (16 KiB)'],
  ['nested_jwt_refused', 'the token is a nested JWT (cty: JWT), which tvm refuses'],
  ['missing_iss', 'the token has no iss claim'],
  ['unknown_issuer', 'the token\'s issuer is not a configured issuer'],
  ['token_expired', 'the token had expired when it was presented'],
  ['foreign_audience', 'the token\'s audience is not one the issuer\'s configuration accepts'],
  ['claim_aud_check_failed', 'the token\'s audience (aud) is not one the issuer\'s configuration accepts'],
  ['claim_iss_check_failed', 'the token\'s iss does not match the configured issuer'],
  ['claim_nbf_check_failed', 'the token is not valid yet (nbf is in the future)'],
  ['claim_iat_check_failed', 'the token is older than the issuer\'s maxTokenAgeSeconds, or its iat is unusable'],
  ['claim_exp_invalid', 'the token\'s exp claim is not a number'],
  ['iat_in_future', 'the token was issued in the future (iat past now plus the allowed skew)'],
  ['bad_sub', 'the token\'s sub is missing, empty or longer than 512 characters'],
  ['missing_jti', 'the issuer requires single-use tokens and this one has no usable jti'],
  ['token_replayed', 'the token had already been used once (single-use tokens)'],
  ['alg_not_allowed', 'the token is signed with an algorithm the issuer\'s configuration does not allow'],
  ['unknown_kid', 'no key in the issuer\'s JWKS matches the token\'s kid'],
  ['bad_signature', 'the token\'s signature does not verify against the issuer\'s keys'],
  ['jwks_timeout', 'the issuer\'s JWKS did not answer in time, so the token could not be checked (fail closed)'],
  ['jwks_invalid', 'the issuer\'s JWKS answer is not a valid key set (fail closed)'],
  ['jwks_unreachable', 'the issuer\'s JWKS could not be reached (fail closed)'],
  ['jwks_backoff', 'the issuer\'s JWKS failed recently, so tvm refused without fetching it again until its backoff passes (fail closed)'],
  ['replay_store_unavailable', 'the single-use check could not reach the table, so the token was refused (fail closed)'],
  ['invalid_token', 'the token is not valid'],
  ['admin_auth_missing', 'an admin route was called without IAM (SigV4) authorization'],
  ['policy_deny', 'no policy permits this request (deny by default)'],
  ['policy_error', 'policy evaluation failed, so the request was denied (fail closed): errors in the log'],
  ['unknown_grant', 'the grant is not configured'],
  ['duration_out_of_bounds', 'the requested duration is outside 900–3600 seconds (a duration within them but over the grant\'s max is shortened to the max, not refused)'],
  ['placeholder_missing', 'the session policy or tags name a value the request did not carry'],
  ['placeholder_unsafe', 'a value filled into the session policy contains characters tvm refuses there'],
  ['session_policy_too_large', 'the rendered session policy is larger than STS accepts'],
  ['packed_policy_too_large', 'STS refused the session policy and tags as too large once packed'],
  ['max_live_leases', 'the principal already holds the grant\'s maxLiveLeasesPerPrincipal live leases'],
  ['principal_rate', 'the principal vended faster than its per-principal rate allows'],
  ['source_ip_unknown', 'the grant binds sessions to the caller\'s IP and the request\'s source IP is unknown (fail closed)'],
  ['deny_policy_full', 'the role\'s deny policy has no room even for this principal\'s own fallback, so the self-revocation was refused'],
  ['vendor_not_configured', 'the vendor\'s management credential has not been set (not configured)'],
  ['not_a_vendor_key_secret', 'the secret Secrets Manager asked to rotate is not one of tvm\'s vendor key secrets'],
  ['unknown_rotation_step', 'Secrets Manager asked for a rotation step tvm does not know'],
  ['throttled', 'too many requests for this principal (rate bound or maxLiveLeasesPerPrincipal)'],
  ['bad_field', 'the request field is not valid'],
  ['body_missing', 'the request had no body'],
  ['body_not_object', 'the body is not a JSON object'],
  ['body_too_large', 'the body is larger than tvm accepts'],
  ['malformed_json', 'the body is not valid JSON'],
  ['content_type', 'the body is not sent as application/json'],
  ['payload_too_large', 'the request is larger than tvm accepts'],
  ['bad_lease_id', 'the lease id is not in tvm\'s format'],
  ['bad_cursor', 'the paging cursor (next) was not made by this listing'],
  ['bad_principal', 'the principal is not of the form issuer|sub'],
  ['lease_not_found', 'no such lease (or it belongs to another principal)'],
  ['no_route', 'no such route'],
  ['unknown_route', 'no such route'],
  ['not_found', 'not found'],
  ['unknown_vendor', 'the vendor is not configured'],
  ['path_not_allowed', 'the vendor path is not in the vendor\'s broker allow-list'],
  ['bad_path', 'the vendor path is not canonical (encoded slash, backslash, NUL or a dot segment)'],
  ['vendor_key_missing', 'tvm holds no current key for this vendor'],
  ['vendor_secret_not_configured', 'the vendor\'s management credential has not been set (not configured)'],
  ['vendor_timeout', 'the vendor did not answer in time'],
  ['vendor_unreachable', 'the vendor could not be reached'],
  ['vendor_answer_malformed', 'the vendor\'s answer could not be read'],
  ['upstream_answer_too_large', 'the vendor\'s answer was larger than tvm relays'],
  ['management_credential_invalid', 'the vendor refused tvm\'s management credential'],
  ['management_credential_missing', 'the vendor\'s management credential is missing from its secret'],
  ['rotation_in_progress', 'a rotation of this vendor was already running'],
  ['lock_lost', 'the rotation lost its lock to another run'],
  ['secret_store_timeout', 'Secrets Manager did not answer in time'],
  ['secret_store_unavailable', 'Secrets Manager could not be reached'],
  ['secret_store_error', 'Secrets Manager answered an error'],
  ['events_not_configured', 'this deployment has no audit log groups configured for the events route'],
  ['logs_unreachable', 'CloudWatch Logs could not be reached'],
  ['logs_failed', 'CloudWatch Logs refused the Logs Insights call'],
  ['logs_query_failed', 'the Logs Insights query failed or was cancelled'],
  ['logs_query_timeout', 'the Logs Insights query did not finish within the route\'s budget: narrow the time window'],
  ['logs_window_too_wide', 'the 10,000 newest log lines of the window held no matching event, so the page could not tell whether older ones exist: narrow the time window'],
  ['sts_access_denied', 'STS refused AssumeRole: the grant role\'s trust policy does not trust tvm (or its conditions failed)'],
  ['sts_failed', 'STS AssumeRole failed'],
  ['sts_no_credentials', 'STS answered without credentials'],
  ['sts_throttled', 'STS throttled AssumeRole'],
  ['sts_timeout', 'STS did not answer in time'],
  ['lease_store_unavailable', 'the lease could not be written, so no credentials left tvm (fail closed)'],
  ['limits_unavailable', 'the per-principal limits could not be read (the lease store failed), so the vend was refused (fail closed)'],
  ['no_revoker_role', 'the grant role is in an account with no revoker role configured (accounts.<id>.revokerRoleArn), so tvm cannot deny its sessions'],
  ['revoker_role_unavailable', 'the other account\'s revoker role could not be assumed, so the revocation could not be written there yet'],
  ['lease_activate_failed', 'the lease could not be marked active, so the credentials STS issued did not leave tvm; the sweep denies that session'],
  ['iam_failed', 'IAM refused or failed the deny-policy write on the role'],
  ['iam_throttled', 'IAM throttled the deny-policy write'],
  ['deny_policy_contention', 'too many concurrent writers on the role\'s deny policy; retry'],
  ['deny_policy_no_room', 'the role\'s other inline policies leave no room even for the fallback deny'],
  ['deny_record_regressed', 'the role\'s deny record moved backwards (another writer); refused'],
  ['deny_record_missing', 'the role\'s deny record disappeared while its policy was being written; refused'],
  ['deny_failed', 'the deny-policy write on the role failed'],
  ['record_failed', 'the session was denied on the role but the lease record could not be updated'],
  ['internal', 'an internal error (the function log has the stack under this request id)'],
];

/** The words that change when the event's detail carries what they name. */
const WITH_DETAIL: [string, string][] = [
  ['bad_exp', 'the token\'s exp claim is missing or not a whole number of seconds (issuer dev)'],
  ['claim_unsupported', 'the token carries a claim tvm cannot pass to policies (groups[0]: null)'],
  ['unknown_issuer', 'the token\'s issuer is not a configured issuer (iss https://x)'],
  ['token_expired', 'the token had expired at 2030-01-01T00:00:00.000Z when it was presented (issuer dev)'],
  ['foreign_audience', 'the token\'s audience ["a"] is not one the issuer\'s configuration accepts (issuer dev)'],
  ['claim_aud_check_failed', 'the token\'s audience (aud) is not one the issuer\'s configuration accepts (issuer dev)'],
  ['claim_iss_check_failed', 'the token\'s iss does not match the configured issuer (issuer dev)'],
  ['claim_nbf_check_failed', 'the token is not valid yet (nbf is in the future) (issuer dev)'],
  ['claim_iat_check_failed', 'the token is older than the issuer\'s maxTokenAgeSeconds, or its iat is unusable (issuer dev)'],
  ['claim_exp_invalid', 'the token\'s exp claim is not a number (issuer dev)'],
  ['iat_in_future', 'the token was issued in the future (iat past now plus the allowed skew) (issuer dev)'],
  ['bad_sub', 'the token\'s sub is missing, empty or longer than 512 characters (issuer dev)'],
  ['missing_jti', 'the issuer requires single-use tokens and this one has no usable jti (issuer dev)'],
  ['token_replayed', 'the token had already been used once (single-use tokens) (issuer dev)'],
  ['alg_not_allowed', 'the token is signed with an algorithm the issuer\'s configuration does not allow (issuer dev)'],
  ['unknown_kid', 'no key in the issuer\'s JWKS matches the token\'s kid (issuer dev)'],
  ['bad_signature', 'the token\'s signature does not verify against the issuer\'s keys (issuer dev)'],
  ['jwks_timeout', 'the issuer\'s JWKS did not answer in time, so the token could not be checked (fail closed) (issuer dev)'],
  ['jwks_invalid', 'the issuer\'s JWKS answer is not a valid key set (fail closed) (issuer dev)'],
  ['jwks_unreachable', 'the issuer\'s JWKS could not be reached (fail closed) (issuer dev)'],
  ['jwks_backoff', 'the issuer\'s JWKS failed recently, so tvm refused without fetching it again until its backoff passes (fail closed) (issuer dev)'],
  ['policy_deny', 'policy p1, p2 forbids this request; policy evaluation errors: e1'],
  ['policy_error', 'policy evaluation failed, so the request was denied (fail closed): e1'],
  ['duration_out_of_bounds', 'the requested duration (60 s) is outside 900–3600 seconds (a duration within them but over the grant\'s max is shortened to the max, not refused)'],
  ['bad_field', 'the request field "grant" is not valid (too long)'],
  ['path_not_allowed', 'the vendor path /v1/x is not in the vendor\'s broker allow-list'],
  ['unknown_grant', 'the grant "reports-reed" is not configured'],
  ['placeholder_missing', 'the session policy or tags name a value the request did not carry (claims.team)'],
  ['placeholder_unsafe', 'a value filled into the session policy contains characters tvm refuses there (claims.team)'],
];

describe('reason codes in words', () => {
  it('pins every code tvm has words for (a new code gets a row here)', () => {
    expect(PLAIN.map(([c]) => c).sort()).toEqual(Object.keys(REASONS).sort());
  });

  it.each(PLAIN)('%s, without detail', (code, words) => {
    expect(reasonInWords(event(code))).toBe(words);
  });

  it.each(WITH_DETAIL)('%s, with its detail', (code, words) => {
    expect(reasonInWords(event(code, { detail: DETAIL }))).toBe(words);
  });

  it('names the duration bounds the vend enforces', () => {
    expect(reasonInWords(event('duration_out_of_bounds'))).toContain(`outside ${MIN_DURATION_SECONDS}–${MAX_DURATION_SECONDS} seconds`);
  });
});

describe('codes without a row of their own', () => {
  it.each([
    ['claim_acr_missing', "the token's acr missing check failed"],
    ['header_b64_refused', 'the token header carries b64, which tvm refuses'],
    ['vendor_refused_revoke_403', "the vendor refused tvm's revoke call (HTTP 403)"],
    ['vendor_gone_away', 'the vendor answered gone_away'],
    ['made_up_code', 'reason code made_up_code'],
  ])('%s → %s', (code, words) => {
    expect(reasonInWords(event(code))).toBe(words);
  });

  it('an event without a reason is named as an empty code', () => {
    expect(reasonInWords(event(undefined))).toBe('reason code ');
  });

  it.each([
    ['policy_deny', { policies: ['forbid-prod'] }, 'policy forbid-prod forbids this request'],
    ['unknown_grant', { grant: 'deploy' }, 'the grant "deploy" is not configured'],
    ['path_not_allowed', { path: '/v2/keys' }, "the vendor path /v2/keys is not in the vendor's broker allow-list"],
    ['claim_unsupported', { detail: { claim: 'n' } }, 'the token carries a claim tvm cannot pass to policies (n)'],
    ['token_expired', { detail: { exp: '1893456000' } }, 'the token had expired when it was presented'],
    ['unknown_issuer', { detail: { iss: 7 } }, "the token's issuer is not a configured issuer"],
    ['policy_deny', { detail: { policies: [], errors: [] } }, 'no policy permits this request (deny by default)'],
  ])('%s reads the event itself where the detail is silent: %j', (code, over, words) => {
    expect(reasonInWords(event(code, over as Partial<AuditEvent>))).toBe(words);
  });
});

describe('explainRequest', () => {
  const at = (s: number) => `2030-01-01T00:00:0${s}.000Z`;

  it('leads with the routed event, in time order, then every other event of the request with its lease and reason', () => {
    const lines = explainRequest('r1', [
      event(undefined, { at: at(3), requestId: 'r1', type: 'revoked', name: 'lease_revoked', leaseId: 'Lb' }),
      event('deny_failed', { at: at(2), requestId: 'r1', type: 'revoke_failed', name: 'revoke_failed' }),
      event(undefined, { at: at(1), requestId: 'r1', type: 'issued', name: 'vend', route: 'POST /v1/vend', principal: 'dev|a', grant: 'g', status: 200, leaseId: 'La', policies: ['p1', 'p2'] }),
      event('policy_deny', { at: at(0), requestId: 'r2', route: 'POST /v1/vend' }),
    ]);
    expect(lines).toEqual([
      `${at(1)}  POST /v1/vend by dev|a for grant g: issued (HTTP 200)`,
      'issued lease La, permitted by p1, p2',
      `  ${at(2)}  revoke_failed: the deny-policy write on the role failed`,
      `  ${at(3)}  revoked Lb`,
    ]);
  });

  it('without a routed event, leads with the earliest and names it, its vendor, no status', () => {
    const lines = explainRequest('r9', [
      event('vendor_timeout', { at: at(2), requestId: 'r9', type: 'failed', name: 'broker', vendor: 'datadog' }),
      event(undefined, { at: at(1), requestId: 'r9', type: 'issued', name: 'rotate' }),
    ]);
    expect(lines).toEqual([`${at(1)}  rotate: issued`, 'issued lease ?', `  ${at(2)}  failed: the vendor did not answer in time`]);
    expect(explainRequest('r8', [event('vendor_timeout', { requestId: 'r8', type: 'failed', name: 'broker', vendor: 'datadog' })])).toEqual([
      `${AT}  broker for vendor datadog: failed`,
      'because the vendor did not answer in time [vendor_timeout]',
    ]);
  });

  it('leads with the routed event even when an unrouted one of the request came first', () => {
    const lines = explainRequest('r5', [
      event('jwks_timeout', { at: at(1), requestId: 'r5', type: 'failed', name: 'jwks_fetch' }),
      event('unknown_kid', { at: at(2), requestId: 'r5', route: 'POST /v1/vend', status: 401 }),
    ]);
    expect(lines).toEqual([
      `${at(2)}  POST /v1/vend: denied (HTTP 401)`,
      "because no key in the issuer's JWKS matches the token's kid [unknown_kid]",
      `  ${at(1)}  failed: the issuer's JWKS did not answer in time, so the token could not be checked (fail closed)`,
    ]);
  });

  it('says nothing more for an outcome that is neither refused nor issued', () => {
    expect(explainRequest('r7', [event(undefined, { requestId: 'r7', type: 'revoked', name: 'revoke', route: 'DELETE /v1/leases/x', grant: 'g', policies: [] })])).toEqual([
      `${AT}  DELETE /v1/leases/x for grant g: revoked`,
    ]);
    expect(explainRequest('r6', [event(undefined, { requestId: 'r6', type: 'issued', name: 'vend', route: 'POST /v1/vend', leaseId: 'Lc', policies: [] })])).toEqual([
      `${AT}  POST /v1/vend: issued`,
      'issued lease Lc',
    ]);
  });
});
