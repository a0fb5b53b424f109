/**
 * The local dev OIDC issuer: discovery and JWKS (ES256 keys generated once and kept under the data
 * folder), and minting for `tvm token`. Served on the API's own port under `/_dev/issuer`, so its
 * URL is stable across restarts and tokens keep verifying.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';

export const DEV_ISSUER_PATH = '/_dev/issuer';

export interface MintOptions {
  sub?: string;
  aud?: string | string[];
  ttlSeconds?: number;
  claims?: Record<string, unknown>;
}

export interface DevIssuer {
  url: string;
  jwks(): { keys: JWK[] };
  discovery(): Record<string, unknown>;
  mint(opts?: MintOptions): Promise<string>;
}

interface StoredKey {
  privateJwk: JWK;
  publicJwk: JWK;
}

async function loadOrCreateKey(dataDir: string | undefined): Promise<StoredKey> {
  const file = dataDir ? join(dataDir, 'dev-issuer-key.json') : undefined;
  if (file && existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as StoredKey;
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = randomUUID();
  const stored: StoredKey = {
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' },
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' },
  };
  if (file) {
    mkdirSync(dataDir!, { recursive: true });
    writeFileSync(file, JSON.stringify(stored), { mode: 0o600 });
  }
  return stored;
}

export async function createDevIssuer(opts: { url: string; dataDir?: string; defaultAudience: string }): Promise<DevIssuer> {
  const key = await loadOrCreateKey(opts.dataDir);
  const signingKey = await importJWK(key.privateJwk, 'ES256');
  return {
    url: opts.url,
    jwks: () => ({ keys: [key.publicJwk] }),
    discovery: () => ({
      issuer: opts.url,
      jwks_uri: `${opts.url}/jwks`,
      id_token_signing_alg_values_supported: ['ES256'],
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
    }),
    async mint(m = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ ...(m.claims ?? {}) })
        .setProtectedHeader({ alg: 'ES256', kid: key.publicJwk.kid, typ: 'JWT' })
        .setIssuer(opts.url)
        .setSubject(m.sub ?? 'agent-1')
        .setAudience(m.aud ?? opts.defaultAudience)
        .setIssuedAt(now)
        .setExpirationTime(now + (m.ttlSeconds ?? 600))
        .setJti(randomUUID())
        .sign(signingKey);
    },
  };
}
