/**
 * A test OIDC issuer on loopback: discovery + JWKS for an RSA (or EC) key, minting with any
 * header or claims (hostile tokens included), key rotation, and JWKS faults (5xx, slow).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTHeaderParameters } from 'jose';

export interface TestIssuer {
  url: string;
  jwksUri: string;
  kid: string;
  publicKeyPem: string;
  privateKey: CryptoKey;
  /** Requests the JWKS endpoint has served. */
  jwksHits: number;
  mode: 'ok' | 'error' | 'slow';
  /** Signs `claims` (defaults: iss, sub, aud, iat, exp, jti unless set to undefined). */
  mint(claims?: Record<string, unknown>, header?: Partial<JWTHeaderParameters>, key?: CryptoKey): Promise<string>;
  /** A new signing key with a new kid; the JWKS serves only the new one. */
  rotateKey(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestIssuer(opts: { alg?: 'RS256' | 'ES256'; audience?: string; trailingSlash?: boolean } = {}): Promise<TestIssuer> {
  const alg = opts.alg ?? 'RS256';
  let counter = 0;
  const newKey = async () => {
    const pair = await generateKeyPair(alg, { extractable: true });
    const kid = `k${++counter}-${Math.random().toString(36).slice(2, 8)}`;
    const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
    return { ...pair, kid, jwk };
  };
  let key = await newKey();
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ issuer: issuer.url, jwks_uri: issuer.jwksUri }));
    }
    if (req.url === '/jwks') {
      issuer.jwksHits++;
      if (issuer.mode === 'error') return res.writeHead(503).end('unavailable');
      const send = () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: [key.jwk] }));
      };
      if (issuer.mode === 'slow') return void setTimeout(send, 8000).unref();
      return send();
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer: TestIssuer = {
    url: opts.trailingSlash ? `${base}/` : base,
    jwksUri: `${base}/jwks`,
    kid: key.kid,
    publicKeyPem: await exportSPKI(key.publicKey),
    privateKey: key.privateKey,
    jwksHits: 0,
    mode: 'ok',
    async mint(claims = {}, header = {}, signWith) {
      const now = Math.floor(Date.now() / 1000);
      const defaults: Record<string, unknown> = {
        iss: issuer.url,
        sub: 'repo:acme/app:ref:refs/heads/main',
        aud: opts.audience ?? 'tvm',
        iat: now,
        exp: now + 300,
        jti: `jti-${Math.random().toString(36).slice(2)}`,
      };
      const payload: Record<string, unknown> = { ...defaults, ...claims };
      for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
      return new SignJWT(payload).setProtectedHeader({ alg, kid: key.kid, typ: 'JWT', ...header } as JWTHeaderParameters).sign(signWith ?? key.privateKey);
    },
    async rotateKey() {
      key = await newKey();
      issuer.kid = key.kid;
      issuer.privateKey = key.privateKey;
      issuer.publicKeyPem = await exportSPKI(key.publicKey);
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
  return issuer;
}

/** A loopback listener that counts connections: a token's `jku`/`x5u` must never reach it. */
export async function startTrap(): Promise<{ url: string; connections: () => number; close(): Promise<void> }> {
  let n = 0;
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}'));
  server.on('connection', () => n++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => n,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
