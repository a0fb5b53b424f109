/**
 * verifyToken with keys generated per run, a local JWKS as the key resolver and a fixed clock.
 * Every refusal is asserted on its code and reason, never its message.
 */
import { createLocalJWKSet, errors as joseErrors, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JSONWebKeySet, type JWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import type { IssuerConfig } from '../../functions/core/config.js';
import { InvalidToken, TokenReplayed, TvmError, UpstreamUnavailable } from '../../functions/core/errors.js';
import type { KeyResolver, ReplayGuard } from '../../functions/core/ports.js';
import {
  CLOCK_SKEW_SECONDS,
  findIssuer,
  MAX_TOKEN_BYTES,
  sha256Hex,
  trimSlash,
  verifyToken,
  type VerifyDeps,
} from '../../functions/core/verify-token.js';

const FIXED = Date.UTC(2027, 0, 15, 8, 0, 0);
const NOW_S = FIXED / 1000;
const clock = { now: () => FIXED };

const DEV: IssuerConfig = {
  name: 'dev',
  issuer: 'http://127.0.0.1:8787/_dev/issuer',
  audiences: ['tvm'],
  algorithms: ['ES256'],
  singleUse: false,
};
const CI: IssuerConfig = {
  name: 'ci',
  issuer: 'https://ci.example.com/',
  audiences: ['tvm', 'tvm-alt'],
  algorithms: ['RS256'],
  maxTokenAgeSeconds: 900,
  singleUse: true,
};
const ISSUERS = [DEV, CI];

let devKey: CryptoKey;
let ciKey: CryptoKey;
let ciPublicPem: string;
let strangerKey: CryptoKey;
let devPublicJwk: JWK;
const jwks: Record<string, JSONWebKeySet> = {};

beforeAll(async () => {
  const dev = await generateKeyPair('ES256', { extractable: true });
  const ci = await generateKeyPair('RS256', { extractable: true });
  const stranger = await generateKeyPair('ES256', { extractable: true });
  devKey = dev.privateKey;
  ciKey = ci.privateKey;
  strangerKey = stranger.privateKey;
  ciPublicPem = await exportSPKI(ci.publicKey);
  devPublicJwk = { ...(await exportJWK(dev.publicKey)), kid: 'dev-1', alg: 'ES256', use: 'sig' };
  jwks.dev = { keys: [devPublicJwk] };
  jwks.ci = { keys: [{ ...(await exportJWK(ci.publicKey)), kid: 'ci-1', alg: 'RS256', use: 'sig' }] };
});

const keys: KeyResolver = (name) => createLocalJWKSet(jwks[name]);

function memoryReplay(): ReplayGuard & { keys: Map<string, number> } {
  const seen = new Map<string, number>();
  return {
    keys: seen,
    async claim(key, expiresAtEpoch) {
      if (seen.has(key)) return false;
      seen.set(key, expiresAtEpoch);
      return true;
    },
  };
}

function deps(over: Partial<VerifyDeps> = {}): VerifyDeps {
  return { issuers: ISSUERS, keys, clock, replay: memoryReplay(), ...over };
}

type Payload = Record<string, unknown>;
const devClaims = (): Payload => ({ iss: DEV.issuer, sub: 'agent-1', aud: 'tvm', iat: NOW_S - 10, exp: NOW_S + 300, team: 'blue' });
const ciClaims = (): Payload => ({ iss: CI.issuer, sub: 'repo:acme/app:ref:refs/heads/main', aud: 'tvm', iat: NOW_S - 10, exp: NOW_S + 300, jti: 'j-1' });

async function sign(payload: Payload, header: Record<string, unknown> = {}, key: CryptoKey | Uint8Array = devKey): Promise<string> {
  const alg = (header.alg as string) ?? 'ES256';
  return new SignJWT(payload).setProtectedHeader({ kid: 'dev-1', ...header, alg }).sign(key);
}
/** Signs ES256 by hand, for headers jose refuses to produce. */
async function signRaw(header: Record<string, unknown>, payload: Payload): Promise<string> {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, devKey, new TextEncoder().encode(input));
  return `${input}.${Buffer.from(sig).toString('base64url')}`;
}
/** The same signature with the low bits no byte uses set: decodes to the same bytes. */
function flipLowBits(token: string): string {
  const [h, p, sig] = token.split('.');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(sig[sig.length - 1]);
  const flipped = `${sig.slice(0, -1)}${alphabet[last ^ 1]}`;
  if (!Buffer.from(flipped, 'base64url').equals(Buffer.from(sig, 'base64url'))) throw new Error('not an unused bit');
  return `${h}.${p}.${flipped}`;
}
const signDev = (over: Payload = {}, header: Record<string, unknown> = {}) => sign({ ...devClaims(), ...over }, header);
const signCi = (over: Payload = {}, header: Record<string, unknown> = {}) => sign({ ...ciClaims(), ...over }, { alg: 'RS256', kid: 'ci-1', ...header }, ciKey);
const without = (p: Payload, k: string) => {
  const { [k]: _gone, ...rest } = p;
  return rest;
};
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

async function refusal(p: Promise<unknown>): Promise<{ code: string; reason: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TvmError);
    return { code: (e as TvmError).code, reason: (e as TvmError).reason };
  }
  throw new Error('expected a refusal');
}

describe('verifyToken accepts', () => {
  it('a good token and answers principal, claims with their JSON shape, and the token digest', async () => {
    const token = await signDev({ groups: ['a', 'b'], n: 3, flag: true, obj: { x: 1, deep: { y: ['z'] } }, mixed: ['interns', 1] });
    const who = await verifyToken(deps(), token);
    expect(who.principal).toBe('dev|agent-1');
    expect(who.issuer.name).toBe('dev');
    expect(who.sub).toBe('agent-1');
    expect(who.exp).toBe(NOW_S + 300);
    expect(who.tokenSha256).toMatch(/^[0-9a-f]{64}$/);
    // Every claim reaches policy with its shape: none is dropped.
    expect(JSON.parse(JSON.stringify(who.claims))).toEqual({ ...devClaims(), groups: ['a', 'b'], n: 3, flag: true, obj: { x: 1, deep: { y: ['z'] } }, mixed: ['interns', 1] });
  });

  it.each([
    ['within the clock skew after exp', { exp: NOW_S - CLOCK_SKEW_SECONDS + 5 }],
    ['nbf within the clock skew', { nbf: NOW_S + CLOCK_SKEW_SECONDS - 5 }],
    ['iat within the clock skew', { iat: NOW_S + CLOCK_SKEW_SECONDS - 5 }],
    ['an aud array of configured audiences only', { aud: ['tvm'] }],
    ['iss with one trailing slash', { iss: `${DEV.issuer}/` }],
  ])('%s', async (_name, over) => {
    const who = await verifyToken(deps(), await signDev(over));
    expect(who.principal).toBe('dev|agent-1');
  });

  it('a hand-signed token (the helper behind the crit case signs correctly)', async () => {
    const who = await verifyToken(deps(), await signRaw({ alg: 'ES256', kid: 'dev-1' }, devClaims()));
    expect(who.principal).toBe('dev|agent-1');
  });

  it('an issuer configured with a trailing slash, token without', async () => {
    const who = await verifyToken(deps(), await signCi({ iss: trimSlash(CI.issuer), aud: ['tvm', 'tvm-alt'] }));
    expect(who.principal).toBe('ci|repo:acme/app:ref:refs/heads/main');
    expect(who.iss).toBe(trimSlash(CI.issuer));
  });

  it('a token just within MAX_TOKEN_BYTES is parsed', async () => {
    const base = await signDev({ pad: '' });
    const pad = 'x'.repeat(Math.floor(((MAX_TOKEN_BYTES - base.length) * 3) / 4));
    let token = await signDev({ pad });
    // Trim the pad until the token fits exactly or just under.
    for (let n = pad.length; Buffer.byteLength(token) > MAX_TOKEN_BYTES; n -= 1) token = await signDev({ pad: pad.slice(0, n) });
    expect(Buffer.byteLength(token)).toBeLessThanOrEqual(MAX_TOKEN_BYTES);
    await expect(verifyToken(deps(), token)).resolves.toMatchObject({ principal: 'dev|agent-1' });
  });
});

/** A token signed once with a throwaway key: token, key and digest are literals, not recomputed. */
const LITERAL_JWK: JWK = { kty: 'EC', crv: 'P-256', x: 'UUo_8Ehtm6Q3W2Lx3E512-J97hjvg5DFPRRe43NP1XY', y: 'NcY9M3HNOii1IwIvuNmiULPyjqv0fV7qwjwetPjel0I', kid: 'literal-1', alg: 'ES256' };
const LITERAL_TOKEN =
  'eyJhbGciOiJFUzI1NiIsImtpZCI6ImxpdGVyYWwtMSJ9.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjg3ODcvX2Rldi9pc3N1ZXIiLCJzdWIiOiJhZ2VudC0xIiwiYXVkIjoidHZtIiwiaWF0IjoxNzk5OTk5OTkwLCJleHAiOjE4MDAwMDAzMDAsInRlYW0iOiJibHVlIn0.rjZlJFcdBvYCodmBPP_EAXcpu4AHg4lQWNy-gyctziqGXXAIvVILb8k7q3qA9INm8fKBVmFVyAmD0U_DerWu2g';
const LITERAL_TOKEN_SHA256 = '78098f0f1bbdf2f541b0e61f7f19367e054ee07b012ee4662af676f1fc1fd93e';

describe('the token digest', () => {
  it('is the SHA-256 of the exact token text (literal token, key and digest)', async () => {
    const who = await verifyToken(deps({ keys: () => createLocalJWKSet({ keys: [LITERAL_JWK] }) }), LITERAL_TOKEN);
    expect(who.sub).toBe('agent-1');
    expect(who.tokenSha256).toBe(LITERAL_TOKEN_SHA256);
  });

  it.each([
    ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ])('sha256Hex(%j) is the FIPS 180-2 test vector', (text, digest) => {
    expect(sha256Hex(text)).toBe(digest);
  });
});

describe('verifyToken refuses', () => {
  // Each row builds a hostile or broken token; every one is refused as invalid_token with its reason.
  const cases: [string, () => Promise<string>, string, string][] = [
    ['over 16 KiB', async () => signDev({ pad: 'x'.repeat(MAX_TOKEN_BYTES) }), 'invalid_token', 'token_too_large'],
    ['two parts', async () => (await signDev()).split('.').slice(0, 2).join('.'), 'invalid_token', 'malformed'],
    ['five parts (JWE)', async () => 'a.b.c.d.e', 'invalid_token', 'jwe_not_accepted'],
    ['a header that is not JSON', async () => `${b64('nope')}.${b64(devClaims())}.sig`, 'invalid_token', 'malformed'],
    ['a payload that is not JSON', async () => `${b64({ alg: 'ES256' })}.${b64('nope')}.sig`, 'invalid_token', 'malformed'],
    ['alg none', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(devClaims())}.`, 'invalid_token', 'alg_not_allowed'],
    [
      'HS256 signed with the RSA public key',
      async () => sign(ciClaims(), { alg: 'HS256', kid: 'ci-1' }, new TextEncoder().encode(ciPublicPem)),
      'invalid_token',
      'alg_not_allowed',
    ],
    ['an alg the issuer does not allow (RS256 for an ES256 issuer)', async () => sign(devClaims(), { alg: 'RS256' }, ciKey), 'invalid_token', 'alg_not_allowed'],
    ['an embedded jwk', async () => signDev({}, { jwk: devPublicJwk }), 'invalid_token', 'header_jwk_refused'],
    ['a jku', async () => signDev({}, { jku: 'http://127.0.0.1:9/jwks' }), 'invalid_token', 'header_jku_refused'],
    ['an x5u', async () => signDev({}, { x5u: 'http://127.0.0.1:9/cert' }), 'invalid_token', 'header_x5u_refused'],
    ['an x5c', async () => signDev({}, { x5c: ['MIIB'] }), 'invalid_token', 'header_x5c_refused'],
    ['a nested JWT (cty JWT)', async () => signDev({}, { cty: 'jwt' }), 'invalid_token', 'nested_jwt_refused'],
    ['no iss', async () => sign(without(devClaims(), 'iss')), 'invalid_token', 'missing_iss'],
    ['a non-string iss', async () => signDev({ iss: 42 }), 'invalid_token', 'missing_iss'],
    ['an unknown iss', async () => signDev({ iss: 'https://evil.example.com' }), 'invalid_token', 'unknown_issuer'],
    ['iss with two trailing slashes', async () => signDev({ iss: `${DEV.issuer}//` }), 'invalid_token', 'unknown_issuer'],
    ['iss differing only in case', async () => signDev({ iss: DEV.issuer.toUpperCase() }), 'invalid_token', 'unknown_issuer'],
    ['an unknown kid', async () => signDev({}, { kid: 'other' }), 'invalid_token', 'unknown_kid'],
    ['a signature by another key under the right kid', async () => sign(devClaims(), {}, strangerKey), 'invalid_token', 'bad_signature'],
    ['a tampered payload', async () => {
      const [h, , s] = (await signDev()).split('.');
      return `${h}.${b64({ ...devClaims(), sub: 'admin' })}.${s}`;
    }, 'invalid_token', 'bad_signature'],
    ['a wrong aud', async () => signDev({ aud: 'other' }), 'invalid_token', 'claim_aud_check_failed'],
    ['an aud array with a foreign audience', async () => signDev({ aud: ['tvm', 'other'] }), 'invalid_token', 'foreign_audience'],
    ['expired beyond the skew', async () => signDev({ exp: NOW_S - CLOCK_SKEW_SECONDS - 1 }), 'invalid_token', 'token_expired'],
    ['nbf in the future beyond the skew', async () => signDev({ nbf: NOW_S + CLOCK_SKEW_SECONDS + 5 }), 'invalid_token', 'claim_nbf_check_failed'],
    ['iat in the future beyond the skew', async () => signDev({ iat: NOW_S + CLOCK_SKEW_SECONDS + 5 }), 'invalid_token', 'iat_in_future'],
    ['iat in the future for an issuer with maxTokenAge', async () => signCi({ iat: NOW_S + CLOCK_SKEW_SECONDS + 5 }), 'invalid_token', 'claim_iat_check_failed'],
    ['older than maxTokenAgeSeconds', async () => signCi({ iat: NOW_S - 900 - CLOCK_SKEW_SECONDS - 1 }), 'invalid_token', 'token_expired'],
    ['no exp', async () => sign(without(devClaims(), 'exp')), 'invalid_token', 'claim_exp_missing'],
    ['no iat', async () => sign(without(devClaims(), 'iat')), 'invalid_token', 'claim_iat_missing'],
    ['no sub', async () => sign(without(devClaims(), 'sub')), 'invalid_token', 'claim_sub_missing'],
    ['no aud', async () => sign(without(devClaims(), 'aud')), 'invalid_token', 'claim_aud_missing'],
    ['an empty sub', async () => signDev({ sub: '' }), 'invalid_token', 'bad_sub'],
    ['a sub over 512 characters', async () => signDev({ sub: 's'.repeat(513) }), 'invalid_token', 'bad_sub'],
    ['an empty aud array', async () => signDev({ aud: [] }), 'invalid_token', 'claim_aud_check_failed'],
    ['a numeric sub', async () => signDev({ sub: 42 }), 'invalid_token', 'bad_sub'],
    ['an exp as text', async () => signDev({ exp: String(NOW_S + 300) }), 'invalid_token', 'claim_exp_invalid'],
    ['a numeric jti for a single-use issuer', async () => signCi({ jti: 7 }), 'invalid_token', 'missing_jti'],
    ['an unknown crit header', async () => signRaw({ alg: 'ES256', kid: 'dev-1', crit: ['x-custom'], 'x-custom': 1 }, devClaims()), 'invalid_token', 'err_jose_not_supported'],
    ['no jti for a single-use issuer', async () => sign(without(ciClaims(), 'jti'), { alg: 'RS256', kid: 'ci-1' }, ciKey), 'invalid_token', 'missing_jti'],
    ['an empty jti for a single-use issuer', async () => signCi({ jti: '' }), 'invalid_token', 'missing_jti'],
    ['a single-use token whose exp no store can keep (1e126)', async () => signCi({ exp: 1e126 }), 'invalid_token', 'bad_exp'],
    ['a fractional exp', async () => signDev({ exp: NOW_S + 300.5 }), 'invalid_token', 'bad_exp'],
    // One token, one spelling: the signature's unused low bits set, or characters outside base64url.
    ['a signature with its unused low bits flipped', async () => flipLowBits(await signDev()), 'invalid_token', 'non_canonical_encoding'],
    ['a signature with base64 padding', async () => `${await signDev()}==`, 'invalid_token', 'non_canonical_encoding'],
    ['a signature in standard base64 (+ /)', async () => {
      // ECDSA signatures differ each time: take one whose base64url spelling has a '-' or '_'.
      for (;;) {
        const [h, p, sig] = (await signDev()).split('.');
        if (/[-_]/.test(sig)) return `${h}.${p}.${Buffer.from(sig, 'base64url').toString('base64').replace(/=+$/, '')}`;
      }
    }, 'invalid_token', 'non_canonical_encoding'],
    ['a payload with a stray character the decoder would skip', async () => {
      const [h, p, sig] = (await signDev()).split('.');
      return `${h}.${p.slice(0, 4)}!${p.slice(4)}.${sig}`;
    }, 'invalid_token', 'non_canonical_encoding'],
    // Control characters in sub: C0, DEL, C1, and bidi controls (they rewrite what an admin reads).
    ...(['\u001b[2J', 'a\rb', '\u001b]52;c;Y29weQ==\u0007', 'a\u007fb', 'a\u0085b', 'a\u009bb', 'a\u202eb', 'a\u202ab', 'a\u2066b', 'a\u2069b', 'a\u200eb', 'a\u200fb', 'a\u0000b'].map(
      (sub) => [`a sub holding ${JSON.stringify(sub)}`, async () => signDev({ sub }), 'invalid_token', 'bad_sub'] as [string, () => Promise<string>, string, string],
    )),
    // Claims Cedar cannot carry refuse the token: a dropped claim is a forbid that fails open.
    ['a null claim', async () => signDev({ groups: null }), 'invalid_token', 'claim_unsupported'],
    ['a fractional claim', async () => signDev({ level: 1.5 }), 'invalid_token', 'claim_unsupported'],
    ['an integer claim beyond 2^53', async () => signDev({ big: 2 ** 60 }), 'invalid_token', 'claim_unsupported'],
    ['a null inside a set', async () => signDev({ groups: ['a', null] }), 'invalid_token', 'claim_unsupported'],
    ['a claim nested nine deep', async () => signDev({ deep: [[[[[[[[['x']]]]]]]]] }), 'invalid_token', 'claim_unsupported'],
    ['a claim record Cedar would read as an entity', async () => signDev({ groups: { __entity: { type: 'Tvm::Grant', id: 'x' } } }), 'invalid_token', 'claim_unsupported'],
    ['a claim named __entity', async () => signDev({ __entity: { type: 'Tvm::Grant', id: 'x' } }), 'invalid_token', 'claim_unsupported'],
    ['a claim record Cedar would read as an extension', async () => signDev({ ip: { __extn: { fn: 'ip', arg: '10.0.0.1' } } }), 'invalid_token', 'claim_unsupported'],
    ['a constructor claim', async () => signDev({ constructor: 'x' }), 'invalid_token', 'claim_unsupported'],
  ];

  it.each(cases)('%s', async (_name, make, code, reason) => {
    const replay = memoryReplay();
    expect(await refusal(verifyToken(deps({ replay }), await make()))).toEqual({ code, reason });
    expect(replay.keys.size).toBe(0);
  });

  it('never asks for keys before the issuer is known, nor for a refused header', async () => {
    const asked: string[] = [];
    const spy: KeyResolver = (name) => {
      asked.push(name);
      return keys(name);
    };
    for (const token of [await signDev({ iss: 'https://evil.example.com' }), await signDev({}, { jku: 'http://127.0.0.1:9/' })]) {
      await refusal(verifyToken(deps({ keys: spy }), token));
    }
    expect(asked).toEqual([]);
  });

  it('refuses a __proto__ claim, at the top or nested, and leaves prototypes clean', async () => {
    for (const extra of ['"__proto__":{"polluted":true}', '"obj":{"__proto__":{"polluted":true}}', '"prototype":"y"']) {
      const payload = `{"iss":"${DEV.issuer}","sub":"agent-1","aud":"tvm","iat":${NOW_S},"exp":${NOW_S + 60},${extra},"ok":"yes"}`;
      const token = await new SignJWT(JSON.parse(payload)).setProtectedHeader({ alg: 'ES256', kid: 'dev-1' }).sign(devKey);
      expect(await refusal(verifyToken(deps(), token))).toEqual({ code: 'invalid_token', reason: 'claim_unsupported' });
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('single use', () => {
  it('accepts a jti once and answers token_replayed after, keyed by the trimmed iss', async () => {
    const replay = memoryReplay();
    const token = await signCi();
    await expect(verifyToken(deps({ replay }), token)).resolves.toMatchObject({ principal: 'ci|repo:acme/app:ref:refs/heads/main' });
    expect([...replay.keys]).toEqual([[`${trimSlash(CI.issuer)}#j-1`, NOW_S + 300 + CLOCK_SKEW_SECONDS]]);
    expect(await refusal(verifyToken(deps({ replay }), token))).toEqual({ code: 'token_replayed', reason: 'token_replayed' });
    // The same jti with the issuer spelled without its slash is the same token.
    expect(await refusal(verifyToken(deps({ replay }), await signCi({ iss: trimSlash(CI.issuer) })))).toEqual({
      code: 'token_replayed',
      reason: 'token_replayed',
    });
  });

  it('does not track jti for an issuer without singleUse', async () => {
    const replay = memoryReplay();
    const token = await signDev({ jti: 'j-1' });
    await verifyToken(deps({ replay }), token);
    await verifyToken(deps({ replay }), token);
    expect(replay.keys.size).toBe(0);
  });

  it('answers upstream_unavailable when the replay store fails', async () => {
    const replay: ReplayGuard = { claim: async () => Promise.reject(new Error('dynamo down')) };
    expect(await refusal(verifyToken(deps({ replay }), await signCi()))).toEqual({ code: 'upstream_unavailable', reason: 'replay_store_unavailable' });
  });
});

describe('key source failures are the issuer, not the token', () => {
  it.each([
    ['a network error', () => Promise.reject(new TypeError('fetch failed'))],
    ['a thrown non-error', () => Promise.reject('boom')],
  ])('%s → upstream_unavailable jwks_unreachable', async (_name, fail) => {
    const broken: KeyResolver = () => fail as never;
    expect(await refusal(verifyToken(deps({ keys: broken }), await signDev()))).toEqual({ code: 'upstream_unavailable', reason: 'jwks_unreachable' });
  });
});

describe('findIssuer', () => {
  it.each([
    [DEV.issuer, 'dev'],
    [`${DEV.issuer}/`, 'dev'],
    [trimSlash(CI.issuer), 'ci'],
    [CI.issuer, 'ci'],
    [`${CI.issuer}/`, undefined],
    ['http://127.0.0.1:8787/_dev', undefined],
    ['', undefined],
  ])('%s → %s', (iss, name) => {
    expect(findIssuer(ISSUERS, iss)?.name).toBe(name);
  });
});

/**
 * A refusal's `detail` is what the audit log and `tvm explain` record (which issuer, what
 * failed): asserted whole here, with the error's class, code and reason.
 */
describe('what each refusal records (class, code, reason and detail)', () => {
  async function fields(p: Promise<unknown>) {
    const e = await p.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(TvmError);
    const t = e as TvmError;
    return { class: t.constructor, code: t.code, reason: t.reason, detail: t.detail };
  }
  const bad = (reason: string, detail: Record<string, unknown> = { issuer: 'dev' }) => ({ class: InvalidToken, code: 'invalid_token', reason, detail });
  const down = (reason: string, detail: Record<string, unknown> = { issuer: 'dev' }) => ({ class: UpstreamUnavailable, code: 'upstream_unavailable', reason, detail });
  /** A key resolver that fails the way `thrown` says, for the jose error branches. */
  const failingKeys = (thrown: unknown): KeyResolver => () => async () => {
    throw thrown;
  };

  it.each([
    ['an expired token', () => signDev({ exp: NOW_S - 600 }), bad('token_expired')],
    ['a token not valid yet', () => signDev({ nbf: NOW_S + 600 }), bad('claim_nbf_check_failed')],
    ['an alg the issuer does not allow', () => sign(devClaims(), { alg: 'RS256' }, ciKey), bad('alg_not_allowed')],
    ['an unknown kid', () => signDev({}, { kid: 'other' }), bad('unknown_kid')],
    ['a signature by another key', () => sign(devClaims(), {}, strangerKey), bad('bad_signature')],
    ['a foreign audience in an aud array', () => signDev({ aud: ['tvm', 'other'] }), bad('foreign_audience')],
    ['iat past the skew', () => signDev({ iat: NOW_S + CLOCK_SKEW_SECONDS + 1 }), bad('iat_in_future')],
    ['a sub of 513 characters', () => signDev({ sub: 's'.repeat(513) }), bad('bad_sub')],
    ['an exp no store can keep', () => signDev({ exp: 1e20 }), bad('bad_exp')],
    ['a jti of 257 characters (single-use issuer)', () => signCi({ jti: 'j'.repeat(257) }), bad('missing_jti', { issuer: 'ci' })],
  ])('%s', async (_name, token, want) => {
    expect(await fields(verifyToken(deps(), await token()))).toEqual(want);
  });

  it.each([
    ['the JWKS timed out', new joseErrors.JWKSTimeout(), down('jwks_timeout')],
    ['the JWKS is not a key set', new joseErrors.JWKSInvalid(), down('jwks_invalid')],
    ["jose's generic error (a non-200 JWKS answer)", new joseErrors.JOSEError('Expected 200 OK'), down('jwks_unreachable')],
    ['another jose error', new joseErrors.JWTInvalid('x'), bad('err_jwt_invalid')],
    ['a network error', new Error('getaddrinfo ENOTFOUND'), down('jwks_unreachable', { issuer: 'dev', error: 'getaddrinfo ENOTFOUND' })],
    ['a throw that is not an Error', undefined, down('jwks_unreachable', { issuer: 'dev', error: undefined })],
    ['a tvm refusal from the resolver (its backoff)', new UpstreamUnavailable('jwks_backoff', { issuer: 'dev', until: 1 }), down('jwks_backoff', { issuer: 'dev', until: 1 })],
    ['a tvm token refusal from the resolver', new InvalidToken('unknown_kid', { issuer: 'dev', kid: 'k' }), bad('unknown_kid', { issuer: 'dev', kid: 'k' })],
  ])('the key resolver fails: %s', async (_name, thrown, want) => {
    expect(await fields(verifyToken(deps({ keys: failingKeys(thrown) }), await signDev()))).toEqual(want);
  });

  it('a replayed single-use token names its issuer; a replay store that cannot answer carries its error', async () => {
    const d = deps();
    const token = await signCi();
    await verifyToken(d, token);
    expect(await fields(verifyToken(d, token))).toEqual({ class: TokenReplayed, code: 'token_replayed', reason: 'token_replayed', detail: { issuer: 'ci' } });
    const broken = deps({ replay: { claim: async () => { throw new Error('ddb down'); } } });
    expect(await fields(verifyToken(broken, await signCi({ jti: 'j-2' })))).toEqual(down('replay_store_unavailable', { error: 'ddb down' }));
  });

  it('a token over 16 KiB is token_too_large; one of exactly 16 KiB is read (and refused for what it is)', async () => {
    expect(await fields(verifyToken(deps(), 'a'.repeat(MAX_TOKEN_BYTES + 1)))).toEqual({ class: InvalidToken, code: 'invalid_token', reason: 'token_too_large', detail: undefined });
    expect((await fields(verifyToken(deps(), 'a'.repeat(MAX_TOKEN_BYTES)))).reason).toBe('malformed');
  });
});

describe('verifyToken accepts at each bound', () => {
  it.each([
    ['iat exactly at now plus the skew', () => signDev({ iat: NOW_S + CLOCK_SKEW_SECONDS })],
    ['a sub of exactly 512 characters', () => signDev({ sub: 's'.repeat(512) })],
    ['a jti of exactly 256 characters (single-use issuer)', () => signCi({ jti: 'j'.repeat(256) })],
    ['a non-string cty header (only cty "JWT" is a nested token)', () => signDev({}, { cty: 7 })],
    ['a cty header naming another content type', () => signDev({}, { cty: 'application/example' })],
  ])('%s', async (_name, token) => {
    await expect(verifyToken(deps(), await token())).resolves.toMatchObject({ sub: expect.any(String) });
  });
});
