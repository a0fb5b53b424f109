/**
 * Where an issuer's discovery document may send tvm for keys, and the key resolver against a real
 * issuer on loopback (discovery + JWKS over HTTP, verified with jose's jwtVerify): discovery and
 * its faults, one fetch shared by many verifications, and the backoff on the controllable clock.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { checkJwksUri, createJwksKeyResolver } from '../../functions/adapters/jwks-keys.js';
import type { IssuerConfig } from '../../functions/core/config.js';
import { TvmError } from '../../functions/core/errors.js';

describe('checkJwksUri', () => {
  it.each([
    ['https://token.actions.githubusercontent.com', 'http://token.actions.githubusercontent.com/.well-known/jwks', 'http from an https issuer'],
    ['https://issuer.example.com', 'http://127.0.0.1:9001/2018-06-01/runtime/invocation/next', 'the Lambda runtime API on loopback'],
    ['https://issuer.example.com', 'https://127.0.0.1/jwks', 'https to loopback'],
    ['https://issuer.example.com', 'https://127.1.2.3/jwks', 'https to 127/8'],
    ['https://issuer.example.com', 'https://localhost/jwks', 'localhost'],
    ['https://issuer.example.com', 'https://[::1]/jwks', 'IPv6 loopback'],
    ['https://issuer.example.com', 'https://[::ffff:127.0.0.1]/jwks', 'IPv4-mapped loopback'],
    ['https://issuer.example.com', 'http://169.254.169.254/latest/meta-data/', 'instance metadata (link-local)'],
    ['https://issuer.example.com', 'https://169.254.169.254/jwks', 'link-local over https'],
    ['https://issuer.example.com', 'https://0.0.0.0/jwks', '0.0.0.0'],
    ['https://issuer.example.com', 'https://2130706433/jwks', 'loopback as one decimal number'],
    ['https://issuer.example.com', 'https://0x7f.1/jwks', 'loopback in hex shorthand'],
    ['https://issuer.example.com', 'file:///etc/passwd', 'a file URL'],
    ['http://issuer.example.com', 'http://issuer.example.com/jwks', 'an http issuer off loopback'],
    ['http://127.0.0.1:8787/_dev/issuer', 'http://evil.example.com/jwks', 'a loopback issuer naming a remote http JWKS'],
    ['http://127.0.0.1:8787/_dev/issuer', 'ftp://127.0.0.1/jwks', 'a loopback issuer naming a loopback JWKS that is not http(s)'],
  ])('refuses %s → %s (%s)', (issuer, uri) => {
    expect(() => checkJwksUri(issuer, uri)).toThrow();
  });

  // The guard reads the host as written (URL-normalised); each loopback and link-local form is
  // refused for what it is, and a host that only contains one of those names is not.
  it.each([
    ['127.10.200.30'],
    ['169.254.10.200'],
    ['[::]'],
    ['[fe80::1]'],
    ['[fe80::abcd:1234]'],
    ['[::ffff:169.254.169.254]'],
    ['[::ffff:127.0.1.1]'],
    ['LOCALHOST'],
    // names that resolve to loopback: a fully qualified localhost, and *.localhost (RFC 6761)
    ['localhost.'],
    ['keys.localhost'],
    ['keys.localhost.'],
    // the instance metadata service's IPv6 address (Nitro)
    ['[fd00:ec2::254]'],
  ])('refuses the loopback or link-local host %s, saying so', (host) => {
    expect(() => checkJwksUri('https://issuer.example.com', `https://${host}/jwks`)).toThrow('jwks_uri of an https issuer must not be loopback or link-local');
  });

  it.each([['localhost.example.com'], ['notlocalhost'], ['keys-localhost.example.com'], ['127.0.0.1.example.com'], ['169.254.1.1.example.com'], ['[::2]'], ['[fe81::1]'], ['[fd00:ec2::255]']])(
    'accepts %s: a name that only contains a loopback or link-local one',
    (host) => {
      expect(checkJwksUri('https://issuer.example.com', `https://${host}/jwks`).hostname).toBe(new URL(`https://${host}/`).hostname);
    },
  );

  it('says why it refuses (the reason reaches the log)', () => {
    expect(() => checkJwksUri('https://issuer.example.com', 'http://keys.example.com/jwks')).toThrow('jwks_uri of an https issuer must be https');
    expect(() => checkJwksUri('https://issuer.example.com', 'https://127.0.0.1/jwks')).toThrow(
      'jwks_uri of an https issuer must not be loopback or link-local',
    );
    expect(() => checkJwksUri('http://issuer.example.com', 'http://issuer.example.com/jwks')).toThrow(
      'jwks_uri must be https (http only for a loopback issuer, on loopback)',
    );
  });

  it.each([
    ['https://token.actions.githubusercontent.com', 'https://token.actions.githubusercontent.com/.well-known/jwks'],
    ['https://issuer.example.com', 'https://keys.example.net/jwks'],
    ['http://127.0.0.1:8787/_dev/issuer', 'http://127.0.0.1:8787/_dev/issuer/jwks'],
    ['http://localhost:8787', 'http://localhost:8787/jwks'],
    ['http://127.0.0.1:8787/_dev/issuer', 'https://127.0.0.1:8788/jwks'],
  ])('accepts %s → %s', (issuer, uri) => {
    expect(checkJwksUri(issuer, uri).href).toBe(new URL(uri).href);
  });
});

describe('createJwksKeyResolver against an issuer on loopback', () => {
  let server: Server;
  let url: string;
  let privateKey: CryptoKey;
  let jwk: JWK;
  const hits = { discovery: 0, jwks: 0, elsewhere: 0 };
  let discovery: () => { status: number; body?: unknown; location?: string };
  let jwks: () => { status: number; body?: unknown; location?: string } | 'hang';
  const clock = { t: 1_800_000_000_000, now: () => clock.t };

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    server = createServer((req, res) => {
      if (req.url === '/elsewhere') hits.elsewhere++;
      const answer = req.url === '/.well-known/openid-configuration' ? (hits.discovery++, discovery()) : req.url === '/jwks' ? (hits.jwks++, jwks()) : { status: 404 };
      if (answer === 'hang') return; // never answers: the resolver's timeout fires
      res.writeHead(answer.status, { 'content-type': 'application/json', ...(answer.location ? { location: answer.location } : {}) });
      res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    hits.discovery = 0;
    hits.jwks = 0;
    hits.elsewhere = 0;
    discovery = () => ({ status: 200, body: { issuer: url, jwks_uri: `${url}/jwks` } });
    jwks = () => ({ status: 200, body: { keys: [jwk] } });
  });

  const issuer = (over: Partial<IssuerConfig> = {}): IssuerConfig => ({
    name: 'ci', issuer: url, audiences: ['tvm'], algorithms: ['ES256'], singleUse: false, ...over,
  });
  const token = (kid = 'k1') => new SignJWT({ sub: 'repo:a' }).setProtectedHeader({ alg: 'ES256', kid }).setIssuer(url).setAudience('tvm').setIssuedAt().setExpirationTime('5m').sign(privateKey);
  const fault = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return e as Error & Partial<TvmError>;
    }
    throw new Error('expected a refusal');
  };

  it('with a jwksUri: verifies with the issuer key, one JWKS fetch for many tokens, no discovery', async () => {
    const keys = createJwksKeyResolver([issuer({ jwksUri: `${url}/jwks` })]);
    for (let i = 0; i < 3; i++) {
      const { payload } = await jwtVerify(await token(), keys('ci'), { issuer: url, audience: 'tvm' });
      expect(payload.sub).toBe('repo:a');
    }
    expect(hits).toEqual({ discovery: 0, jwks: 1, elsewhere: 0 });
  });

  it('without a jwksUri: the JWKS comes from discovery (a trailing slash on either side still matches)', async () => {
    const keys = createJwksKeyResolver([issuer({ issuer: `${url}/` })]);
    await jwtVerify(await token(), keys('ci'));
    discovery = () => ({ status: 200, body: { issuer: `${url}/`, jwks_uri: `${url}/jwks` } });
    await jwtVerify(await token(), createJwksKeyResolver([issuer()])('ci'));
    expect(hits).toEqual({ discovery: 2, jwks: 2, elsewhere: 0 });
  });

  it('a name with no issuer is an error, not a key', () => {
    expect(() => createJwksKeyResolver([issuer()])('other')).toThrow('no key source for issuer other');
  });

  it.each([
    ['discovery answers 500', () => ({ status: 500 }), 'discovery answered 500'],
    ['discovery names another issuer', () => ({ status: 200, body: { issuer: 'https://evil.example.com', jwks_uri: `${url}/jwks` } }), 'discovery issuer mismatch'],
    ['discovery has no issuer', () => ({ status: 200, body: { jwks_uri: `${url}/jwks` } }), 'discovery issuer mismatch'],
    ['discovery has no jwks_uri', () => ({ status: 200, body: { issuer: url } }), 'discovery has no jwks_uri'],
    ['discovery sends a loopback issuer to a remote http JWKS', () => ({ status: 200, body: { issuer: url, jwks_uri: 'http://keys.example.com/jwks' } }), 'jwks_uri must be https'],
  ])('%s: refused with why, no JWKS fetched, backoff, and discovery is tried again after it', async (_name, answer, why) => {
    discovery = answer;
    const keys = createJwksKeyResolver([issuer()], { clock, backoffMs: 1000 })('ci');
    expect((await fault(jwtVerify(await token(), keys))).message).toContain(why);
    expect((await fault(jwtVerify(await token(), keys))).reason).toBe('jwks_backoff');
    clock.t += 1000;
    expect((await fault(jwtVerify(await token(), keys))).message).toContain(why);
    expect(hits).toEqual({ discovery: 2, jwks: 0, elsewhere: 0 });
  });

  it('a discovery document behind a redirect is refused, and the redirect is not followed', async () => {
    discovery = () => ({ status: 302, location: `${url}/elsewhere` });
    const keys = createJwksKeyResolver([issuer()], { clock })('ci');
    await fault(jwtVerify(await token(), keys));
    expect(hits).toEqual({ discovery: 1, jwks: 0, elsewhere: 0 });
  });

  it('without a clock, backoff runs on the wall clock', async () => {
    jwks = () => ({ status: 503 });
    const keys = createJwksKeyResolver([issuer({ jwksUri: `${url}/jwks` })], { backoffMs: 600_000, maxBackoffMs: 600_000 })('ci');
    expect(await fault(jwtVerify(await token(), keys))).not.toBeInstanceOf(TvmError);
    const e = await fault(jwtVerify(await token(), keys));
    expect(e.reason).toBe('jwks_backoff');
    expect(e.detail?.retryInMs).toBeGreaterThan(0);
    expect(hits.jwks).toBe(1);
  });

  it('by default an unknown kid does not refetch within the 30 s cooldown', async () => {
    const keys = createJwksKeyResolver([issuer({ jwksUri: `${url}/jwks` })], { clock })('ci');
    await jwtVerify(await token(), keys);
    expect((await fault(jwtVerify(await token('k-unknown'), keys))).name).toBe('JWKSNoMatchingKey');
    expect(hits.jwks).toBe(1);
  });

  it('a failing JWKS puts the issuer in backoff: refused without a fetch, doubling up to the maximum, reset by a success', async () => {
    jwks = () => ({ status: 503 });
    const keys = createJwksKeyResolver([issuer({ jwksUri: `${url}/jwks` })], { clock, backoffMs: 1000, maxBackoffMs: 3000, cooldownSeconds: 0 })('ci');
    const backoff = async () => {
      const e = await fault(jwtVerify(await token(), keys));
      expect(e).toBeInstanceOf(TvmError);
      expect(e.reason).toBe('jwks_backoff');
      return e.detail;
    };
    expect(await fault(jwtVerify(await token(), keys))).not.toBeInstanceOf(TvmError); // jose's own error: the fetch failed
    expect(hits.jwks).toBe(1);
    expect(await backoff()).toEqual({ issuer: 'ci', failures: 1, retryInMs: 1000 });
    clock.t += 999;
    expect(await backoff()).toEqual({ issuer: 'ci', failures: 1, retryInMs: 1 });
    expect(hits.jwks).toBe(1);
    clock.t += 1;
    await fault(jwtVerify(await token(), keys));
    expect(await backoff()).toEqual({ issuer: 'ci', failures: 2, retryInMs: 2000 });
    clock.t += 2000;
    await fault(jwtVerify(await token(), keys));
    expect(await backoff()).toEqual({ issuer: 'ci', failures: 3, retryInMs: 3000 }); // 4000 capped at the maximum
    expect(hits.jwks).toBe(3);
    jwks = () => ({ status: 200, body: { keys: [jwk] } });
    clock.t += 3000;
    await jwtVerify(await token(), keys);
    jwks = () => ({ status: 503 });
    // a token naming an unknown kid refetches (cooldown 0) and that fetch fails: backoff starts from 1 s again
    await fault(jwtVerify(await token('k-unknown'), keys));
    expect(await backoff()).toEqual({ issuer: 'ci', failures: 1, retryInMs: 1000 });
  });

  it('requests that shared one failed fetch count it once', async () => {
    jwks = () => ({ status: 503 });
    const keys = createJwksKeyResolver([issuer({ jwksUri: `${url}/jwks` })], { clock, backoffMs: 1000 })('ci');
    const tokens = await Promise.all([token(), token(), token()]);
    await Promise.all(tokens.map((t) => fault(jwtVerify(t, keys))));
    expect(hits.jwks).toBe(1);
    expect((await fault(jwtVerify(tokens[0], keys))).detail).toEqual({ issuer: 'ci', failures: 1, retryInMs: 1000 });
  });

  it('a token naming a key the issuer does not have is the token’s fault: no backoff', async () => {
    const keys = createJwksKeyResolver([issuer({ jwksUri: `${url}/jwks` })], { clock, cooldownSeconds: 0 })('ci');
    expect((await fault(jwtVerify(await token('k-unknown'), keys))).name).toBe('JWKSNoMatchingKey');
    await jwtVerify(await token(), keys); // at once, same clock: not refused
  });

  it.each([
    ['an invalid JWKS document', () => ({ status: 200, body: { keys: 'none' } })],
    ['a JWKS that never answers', () => 'hang' as const],
  ])('%s is the issuer’s fault: backoff', async (_name, answer) => {
    jwks = answer;
    const keys = createJwksKeyResolver([issuer({ jwksUri: `${url}/jwks` })], { clock, timeoutMs: 200 })('ci');
    await fault(jwtVerify(await token(), keys));
    expect((await fault(jwtVerify(await token(), keys))).reason).toBe('jwks_backoff');
  });
});
