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
/**
 * Record keys a claim may not carry, at any depth: prototype names (they could pollute objects
 * downstream) and the keys Cedar's JSON reads as escapes (`__entity` would turn a claim into an
 * entity reference). Refused, never dropped: a dropped claim is a forbid policy that fails open.
 */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype', '__entity', '__extn', '__expr']);
/** Deeper claims than this are refused (Cedar evaluates recursively; no provider nests this deep). */
const MAX_CLAIM_DEPTH = 8;

/** A claim as Cedar receives it: its JSON shape, minus what Cedar cannot carry (null, fractions). */
export type ClaimValue = string | number | boolean | ClaimValue[] | { [name: string]: ClaimValue };

/** Characters a `sub` may not hold: C0, DEL, C1, and the bidi controls that reorder printed text. */
export const CONTROL_CHARS = /[\p{Cc}\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

export interface VerifiedToken {
  /** `<issuer name>|<sub>` */
  principal: string;
  issuer: IssuerConfig;
  iss: string;
  sub: string;
  /** Every claim with its JSON shape (see `policyClaims`). */
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

function claimValue(v: unknown, path: string, depth: number): ClaimValue {
  const refuse = (why: string): never => {
    throw new InvalidToken('claim_unsupported', { claim: path, why });
  };
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : refuse('number is not a safe integer');
  if (v === null) return refuse('null');
  if (depth >= MAX_CLAIM_DEPTH) return refuse('nested too deeply');
  if (Array.isArray(v)) return v.map((x, i) => claimValue(x, `${path}[${i}]`, depth + 1));
  if (typeof v === 'object') return claimRecord(v as Record<string, unknown>, path, depth + 1);
  return refuse(typeof v);
}

function claimRecord(o: Record<string, unknown>, path: string, depth: number): { [name: string]: ClaimValue } {
  const out: { [name: string]: ClaimValue } = Object.create(null);
  for (const [k, v] of Object.entries(o)) {
    const at = path ? `${path}.${k}` : k;
    if (UNSAFE_KEYS.has(k)) throw new InvalidToken('claim_unsupported', { claim: at, why: 'reserved name' });
    out[k] = claimValue(v, at, depth);
  }
  return out;
}

/**
 * The claims as policy sees them: every claim with its JSON shape (string, integer, boolean, set,
 * record). A claim Cedar cannot carry (null, a fraction, an integer beyond 2^53, a reserved name)
 * refuses the token rather than being dropped. `tvm policy eval` uses this same function.
 * @throws InvalidToken `claim_unsupported`, naming the claim in the detail.
 * @example policyClaims({ groups: ['a', 1] }) // → { groups: ['a', 1] }
 */
export function policyClaims(payload: Record<string, unknown>): Record<string, ClaimValue> {
  return claimRecord(payload, '', 0);
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/** One token, one spelling: a part whose unused low bits are set decodes the same as another. */
function canonicalBase64url(part: string): boolean {
  return B64URL.test(part) && part.length % 4 !== 1 && Buffer.from(part, 'base64url').toString('base64url') === part;
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
  if (!parts.every(canonicalBase64url)) throw new InvalidToken('non_canonical_encoding');

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
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 512 || CONTROL_CHARS.test(sub)) throw new InvalidToken('bad_sub', { issuer: issuer.name });
  // jose checks that `exp` is a number in the future; 1e126 is one, and no store can keep it.
  const exp = payload.exp as number;
  if (!Number.isSafeInteger(exp)) throw new InvalidToken('bad_exp', { issuer: issuer.name });
  const claims = policyClaims(payload);
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
    claims,
    exp,
    tokenSha256: sha256Hex(token),
  };
}
