/**
 * One remote JWKS per configured issuer, built once: jose caches the keys, refetches on an
 * unknown `kid` at most once per cooldown, and shares one fetch among concurrent requests.
 * Without `jwksUri`, the JWKS location comes from the issuer's OIDC discovery document.
 * While an issuer's keys cannot be fetched (5xx, timeout, bad document, failed discovery) it is
 * in backoff: requests are refused at once (503 `jwks_backoff`) without a fetch, for 1 s after
 * the first failure, doubling to 60 s, until a fetch succeeds.
 */
import { createRemoteJWKSet, errors as joseErrors, type JWTVerifyGetKey } from 'jose';
import type { IssuerConfig } from '../core/config.js';
import { UpstreamUnavailable } from '../core/errors.js';
import type { Clock, KeyResolver } from '../core/ports.js';
import { trimSlash } from '../core/verify-token.js';

export interface JwksOptions {
  /** Seconds between refetches for an unknown kid. */
  cooldownSeconds?: number;
  cacheMaxAgeSeconds?: number;
  timeoutMs?: number;
  /** First backoff after a failed fetch; doubles per failure up to `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** The clock backoff is measured on (tests move it). */
  clock?: Clock;
}

/**
 * Loopback, unspecified and link-local hosts, as WHATWG URL spells them (it normalises 2130706433
 * and ::ffff:127.0.0.1): `localhost` also fully qualified (`localhost.`) and any `*.localhost`
 * (RFC 6761: resolvers answer loopback), and the instance metadata service's IPv6 address.
 */
const LOOPBACK = /^((.+\.)?localhost\.?|127(\.\d{1,3}){3}|0\.0\.0\.0|169\.254(\.\d{1,3}){2}|\[::1?\]|\[::ffff:(7f[0-9a-f]{2}|a9fe):[0-9a-f]{1,4}\]|\[fe80:.*\]|\[fd00:ec2::254\])$/i;

/**
 * Where discovery may send tvm for keys: an https issuer's keys live at an https URL off
 * loopback and link-local (the Lambda runtime API and the instance metadata service live there);
 * only an http issuer on loopback (the dev issuer) may name an http loopback JWKS.
 * @throws Error naming what is wrong.
 */
export function checkJwksUri(issuerUrl: string, jwksUri: string): URL {
  const issuer = new URL(issuerUrl);
  const uri = new URL(jwksUri);
  if (issuer.protocol === 'https:') {
    if (uri.protocol !== 'https:') throw new Error('jwks_uri of an https issuer must be https');
    if (LOOPBACK.test(uri.hostname)) throw new Error('jwks_uri of an https issuer must not be loopback or link-local');
    return uri;
  }
  if (!(LOOPBACK.test(issuer.hostname) && LOOPBACK.test(uri.hostname) && (uri.protocol === 'http:' || uri.protocol === 'https:'))) {
    throw new Error('jwks_uri must be https (http only for a loopback issuer, on loopback)');
  }
  return uri;
}

async function discoverJwksUri(issuer: IssuerConfig, timeoutMs: number): Promise<URL> {
  const res = await fetch(`${trimSlash(issuer.issuer)}/.well-known/openid-configuration`, {
    signal: AbortSignal.timeout(timeoutMs),
    redirect: 'error',
  });
  if (!res.ok) throw new Error(`discovery answered ${res.status}`);
  const doc = (await res.json()) as { issuer?: string; jwks_uri?: string };
  if (typeof doc.issuer !== 'string' || trimSlash(doc.issuer) !== trimSlash(issuer.issuer)) throw new Error('discovery issuer mismatch');
  if (typeof doc.jwks_uri !== 'string') throw new Error('discovery has no jwks_uri');
  return checkJwksUri(issuer.issuer, doc.jwks_uri);
}

/** A failure of the issuer (keys unreachable), as opposed to a token that names no key. */
function issuerFault(e: unknown): boolean {
  if (e instanceof joseErrors.JWKSTimeout || e instanceof joseErrors.JWKSInvalid) return true;
  if (e instanceof joseErrors.JOSEError) return e.code === 'ERR_JOSE_GENERIC';
  return !(e instanceof UpstreamUnavailable);
}

export function createJwksKeyResolver(issuers: readonly IssuerConfig[], options: JwksOptions = {}): KeyResolver {
  const timeoutMs = options.timeoutMs ?? 5000;
  const backoffMs = options.backoffMs ?? 1000;
  const maxBackoffMs = options.maxBackoffMs ?? 60_000;
  const clock = options.clock ?? { now: () => Date.now() };
  const jose = { cooldownDuration: (options.cooldownSeconds ?? 30) * 1000, cacheMaxAge: (options.cacheMaxAgeSeconds ?? 600) * 1000, timeoutDuration: timeoutMs };
  const byName = new Map<string, JWTVerifyGetKey>();
  for (const issuer of issuers) {
    let set: Promise<JWTVerifyGetKey> | undefined;
    let failures = 0;
    let retryAt = 0;
    const load = () => {
      set ??= (issuer.jwksUri ? Promise.resolve(new URL(issuer.jwksUri)) : discoverJwksUri(issuer, timeoutMs))
        .then((uri) => createRemoteJWKSet(uri, jose))
        .catch((e) => {
          set = undefined;
          throw e;
        });
      return set;
    };
    byName.set(issuer.name, async (header, token) => {
      if (failures > 0 && clock.now() < retryAt) {
        throw new UpstreamUnavailable('jwks_backoff', { issuer: issuer.name, failures, retryInMs: retryAt - clock.now() });
      }
      try {
        const key = await (await load())(header, token);
        failures = 0;
        return key;
      } catch (e) {
        if (issuerFault(e)) {
          // Requests that shared this failed fetch count it once.
          if (failures === 0 || clock.now() >= retryAt) failures++;
          retryAt = clock.now() + Math.min(maxBackoffMs, backoffMs * 2 ** (failures - 1));
        }
        throw e;
      }
    });
  }
  return (name) => {
    const get = byName.get(name);
    if (!get) throw new Error(`no key source for issuer ${name}`);
    return get;
  };
}
