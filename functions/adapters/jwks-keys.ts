/**
 * One remote JWKS per configured issuer, built once: jose caches the keys and refetches on an
 * unknown `kid` at most once per cooldown. Without `jwksUri`, the JWKS location comes from the
 * issuer's OIDC discovery document (fetched once, retried after a failure).
 */
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import type { IssuerConfig } from '../core/config.js';
import type { KeyResolver } from '../core/ports.js';
import { trimSlash } from '../core/verify-token.js';

export interface JwksOptions {
  /** Seconds between refetches for an unknown kid. */
  cooldownSeconds?: number;
  cacheMaxAgeSeconds?: number;
  timeoutMs?: number;
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
  const uri = new URL(doc.jwks_uri);
  if (uri.protocol !== 'https:' && !/^(127\.0\.0\.1|localhost)$/.test(uri.hostname)) throw new Error('jwks_uri must be https');
  return uri;
}

export function createJwksKeyResolver(issuers: readonly IssuerConfig[], options: JwksOptions = {}): KeyResolver {
  const timeoutMs = options.timeoutMs ?? 5000;
  const jose = { cooldownDuration: (options.cooldownSeconds ?? 30) * 1000, cacheMaxAge: (options.cacheMaxAgeSeconds ?? 600) * 1000, timeoutDuration: timeoutMs };
  const byName = new Map<string, JWTVerifyGetKey>();
  for (const issuer of issuers) {
    let set: Promise<JWTVerifyGetKey> | undefined;
    const load = () => {
      set ??= (issuer.jwksUri ? Promise.resolve(new URL(issuer.jwksUri)) : discoverJwksUri(issuer, timeoutMs))
        .then((uri) => createRemoteJWKSet(uri, jose))
        .catch((e) => {
          set = undefined;
          throw e;
        });
      return set;
    };
    byName.set(issuer.name, async (header, token) => (await load())(header, token));
  }
  return (name) => {
    const get = byName.get(name);
    if (!get) throw new Error(`no key source for issuer ${name}`);
    return get;
  };
}
