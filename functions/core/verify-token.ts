/**
 * Checks a workload's OIDC token: size, issuer allow-list (before any network call), signature
 * with the issuer's keys and algorithms, registered claims, and single use.
 */
import { createHash } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { IssuerConfig } from './config.js';
import { InvalidToken, TokenReplayed, UpstreamUnavailable } from './errors.js';
import type { Clock, KeyResolver, ReplayGuard } from './ports.js';

/** Tokens over this size are refused before parsing. */
export const MAX_TOKEN_BYTES = 16 * 1024;
export const CLOCK_SKEW_SECONDS = 60;

/** Header parameters that would let a token name its own keys: never honoured, always refused. */
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'];
/** Claim names that could pollute prototypes downstream. */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export type ClaimValue = string | number | boolean | string[];

export interface VerifiedToken {
  /** `<issuer name>|<sub>` */
  principal: string;
  issuer: IssuerConfig;
  iss: string;
  sub: string;
  /** Claims safe to hand to policy: strings, integers, booleans, sets of strings. */
  claims: Record<string, ClaimValue>;
  exp: number;
  tokenSha256: string;
}

export interface VerifyDeps {
  issuers: readonly IssuerConfig[];
  keys: KeyResolver;
  clock: Clock;
  replay: ReplayGuard;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function trimSlash(url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

/** Picks the configured issuer for an `iss`, matched exactly after trimming one trailing '/'. */
export function findIssuer(issuers: readonly IssuerConfig[], iss: string): IssuerConfig | undefined {
  const want = trimSlash(iss);
  return issuers.find((i) => trimSlash(i.issuer) === want);
}

function safeClaims(payload: Record<string, unknown>): Record<string, ClaimValue> {
  const out: Record<string, ClaimValue> = Object.create(null);
  for (const [k, v] of Object.entries(payload)) {
    if (UNSAFE_KEYS.has(k)) continue;
    if (typeof v === 'string' || typeof v === 'boolean') out[k] = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) out[k] = v;
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = v as string[];
  }
  return out;
}

function mapJoseError(e: unknown, issuer: string): never {
  if (e instanceof joseErrors.JWTExpired) throw new InvalidToken('token_expired', { issuer });
  if (e instanceof joseErrors.JWTClaimValidationFailed) throw new InvalidToken(`claim_${e.claim}_${e.reason}`, { issuer });
  if (e instanceof joseErrors.JOSEAlgNotAllowed) throw new InvalidToken('alg_not_allowed', { issuer });
  if (e instanceof joseErrors.JWKSNoMatchingKey) throw new InvalidToken('unknown_kid', { issuer });
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) throw new InvalidToken('bad_signature', { issuer });
  if (e instanceof joseErrors.JWKSTimeout) throw new UpstreamUnavailable('jwks_timeout', { issuer });
  if (e instanceof joseErrors.JWKSInvalid) throw new UpstreamUnavailable('jwks_invalid', { issuer });
  // jose's generic error is a failed key fetch (non-200 JWKS answer): the issuer, not the token.
  if (e instanceof joseErrors.JOSEError && e.code === 'ERR_JOSE_GENERIC') throw new UpstreamUnavailable('jwks_unreachable', { issuer });
  if (e instanceof joseErrors.JOSEError) throw new InvalidToken(e.code.toLowerCase(), { issuer });
  if (e instanceof InvalidToken || e instanceof UpstreamUnavailable) throw e;
  // A key fetch that failed (network error, 5xx): the issuer is unreachable, not the token bad.
  throw new UpstreamUnavailable('jwks_unreachable', { issuer, error: (e as Error)?.message });
}

/**
 * Verifies `token` and answers who it names.
 * @throws InvalidToken (401), TokenReplayed (409), UpstreamUnavailable (503: the issuer's keys cannot be fetched).
 * @example const who = await verifyToken(deps, bearer); // who.principal === 'github|repo:org/app:ref:refs/heads/main'
 */
export async function verifyToken(deps: VerifyDeps, token: string): Promise<VerifiedToken> {
  if (Buffer.byteLength(token, 'utf8') > MAX_TOKEN_BYTES) throw new InvalidToken('token_too_large');
  const parts = token.split('.');
  if (parts.length !== 3) throw new InvalidToken(parts.length === 5 ? 'jwe_not_accepted' : 'malformed');

  let header: Record<string, unknown>;
  let unverified: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>;
    unverified = decodeJwt(token) as Record<string, unknown>;
  } catch {
    throw new InvalidToken('malformed');
  }
  for (const h of FORBIDDEN_HEADERS) if (h in header) throw new InvalidToken(`header_${h}_refused`);
  if (typeof header.cty === 'string' && header.cty.toUpperCase() === 'JWT') throw new InvalidToken('nested_jwt_refused');

  const iss = unverified.iss;
  if (typeof iss !== 'string') throw new InvalidToken('missing_iss');
  const issuer = findIssuer(deps.issuers, iss);
  if (!issuer) throw new InvalidToken('unknown_issuer');

  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, deps.keys(issuer.name), {
      issuer: iss,
      audience: issuer.audiences,
      algorithms: issuer.algorithms,
      clockTolerance: CLOCK_SKEW_SECONDS,
      maxTokenAge: issuer.maxTokenAgeSeconds,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat'],
      currentDate: new Date(deps.clock.now()),
    }));
  } catch (e) {
    mapJoseError(e, issuer.name);
  }

  // jose accepts an `aud` array naming any configured audience; tvm wants every value to be one.
  const aud = payload.aud;
  const auds = Array.isArray(aud) ? aud : [aud];
  if (!auds.every((a) => typeof a === 'string' && issuer.audiences.includes(a))) {
    throw new InvalidToken('foreign_audience', { issuer: issuer.name });
  }
  const nowS = Math.floor(deps.clock.now() / 1000);
  if (typeof payload.iat === 'number' && payload.iat > nowS + CLOCK_SKEW_SECONDS) {
    throw new InvalidToken('iat_in_future', { issuer: issuer.name });
  }
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 512) throw new InvalidToken('bad_sub', { issuer: issuer.name });

  const exp = payload.exp as number;
  if (issuer.singleUse) {
    const jti = payload.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw new InvalidToken('missing_jti', { issuer: issuer.name });
    let first: boolean;
    try {
      first = await deps.replay.claim(`${trimSlash(iss)}#${jti}`, exp + CLOCK_SKEW_SECONDS);
    } catch (e) {
      throw new UpstreamUnavailable('replay_store_unavailable', { error: (e as Error).message });
    }
    if (!first) throw new TokenReplayed({ issuer: issuer.name });
  }

  return {
    principal: `${issuer.name}|${sub}`,
    issuer,
    iss,
    sub,
    claims: safeClaims(payload),
    exp,
    tokenSha256: sha256Hex(token),
  };
}
