/**
 * Hostile tokens against the running local stack: each one gets the SPEC error, and no STS call
 * is made and no lease is written (both asserted for every case).
 */
import { KeyObject, sign as cryptoSign } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestIssuer, startTrap, type TestIssuer } from '../helpers/issuer.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
let ext: TestIssuer;
let once: TestIssuer;
let other: TestIssuer;
let trap: Awaited<ReturnType<typeof startTrap>>;

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** Signs with the issuer's real key but any header: jose itself refuses to sign an unknown `crit`. */
function signRaw(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = cryptoSign('sha256', Buffer.from(input), KeyObject.from(ext.privateKey as never));
  return `${input}.${sig.toString('base64url')}`;
}

beforeAll(async () => {
  ext = await startTestIssuer();
  once = await startTestIssuer({ audience: 'tvm-once' });
  other = await startTestIssuer({ audience: 'other-aud' });
  trap = await startTrap();
  stack = await startTestStack({
    yaml: `
issuers:
  - { name: dev, issuer: "http://127.0.0.1:1/_dev/issuer", audiences: [tvm], algorithms: [ES256] }
  - { name: ext, issuer: "${ext.url}/", audiences: [tvm], algorithms: [RS256], maxTokenAgeSeconds: 600 }
  - { name: once, issuer: "${once.url}", audiences: [tvm-once], algorithms: [RS256], singleUse: true }
  - { name: other, issuer: "${other.url}", audiences: [other-aud], algorithms: [RS256] }
grants:
  - name: reports-read
    roleArn: arn:aws:iam::123456789012:role/tvm/reports-read
    sessionPolicy:
      Version: "2012-10-17"
      Statement: [{ Effect: Allow, Action: [s3:GetObject], Resource: ["arn:aws:s3:::reports/\${claims.team}/*"] }]
local:
  devIssuer: dev
`,
    policies: {
      'p.cedar': `@id("teams-read") permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"reports-read") when { principal.claims has team };`,
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await Promise.all([ext?.close(), once?.close(), other?.close(), trap?.close()]);
});

async function leaseCount(): Promise<number> {
  return (await stack.runtime.leases.list({ limit: 1000 })).length;
}

async function vendWith(authorization: string | undefined, grant = 'reports-read') {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization !== undefined) headers.authorization = authorization;
  const res = await fetch(`${stack.api}/v1/vend`, { method: 'POST', headers, body: JSON.stringify({ grant }) });
  return { status: res.status, body: (await res.json()) as { error: string } };
}

const now = () => Math.floor(Date.now() / 1000);
const team = { team: 'analytics' };

type Case = [name: string, make: () => Promise<string | undefined>, status: number, error: string, reason: string];

const cases: Case[] = [
  ['alg none', async () => new UnsecuredJWT({ iss: ext.url, sub: 's', aud: 'tvm', iat: now(), exp: now() + 60, ...team }).encode(), 401, 'invalid_token', 'alg_not_allowed'],
  ['HS256 signed with the RSA public key', async () =>
    new SignJWT({ iss: ext.url, sub: 's', aud: 'tvm', ...team }).setProtectedHeader({ alg: 'HS256', kid: ext.kid }).setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(ext.publicKeyPem)), 401, 'invalid_token', 'alg_not_allowed'],
  ['algorithm off the issuer list (ES256)', async () => {
    const k = await generateKeyPair('ES256');
    return new SignJWT({ iss: ext.url, sub: 's', aud: 'tvm', ...team }).setProtectedHeader({ alg: 'ES256', kid: ext.kid }).setIssuedAt().setExpirationTime('5m').sign(k.privateKey);
  }, 401, 'invalid_token', 'alg_not_allowed'],
  ['embedded jwk with its own key', async () => {
    const k = await generateKeyPair('RS256');
    return ext.mint(team, { jwk: await exportJWK(k.publicKey) }, k.privateKey);
  }, 401, 'invalid_token', 'header_jwk_refused'],
  ['jku to a loopback listener', async () => ext.mint(team, { jku: `${trap.url}/jwks` }), 401, 'invalid_token', 'header_jku_refused'],
  ['x5u to a loopback listener', async () => ext.mint(team, { x5u: `${trap.url}/cert` } as never), 401, 'invalid_token', 'header_x5u_refused'],
  ['kid path traversal', async () => ext.mint(team, { kid: '../../../../etc/passwd' }), 401, 'invalid_token', 'unknown_kid'],
  ['kid SQL-looking', async () => ext.mint(team, { kid: "' OR '1'='1' --" }), 401, 'invalid_token', 'unknown_kid'],
  ['crit header with an unknown extension', async () => signRaw({ alg: 'RS256', kid: ext.kid, crit: ['x-tvm-unknown'], 'x-tvm-unknown': true }, { iss: ext.url, sub: 's', aud: 'tvm', iat: now(), exp: now() + 60, ...team }), 401, 'invalid_token', 'err_jose_not_supported'],
  ['unknown kid', async () => ext.mint(team, { kid: 'no-such-kid' }), 401, 'invalid_token', 'unknown_kid'],
  ['signed by another key under the right kid', async () => ext.mint(team, {}, (await generateKeyPair('RS256')).privateKey), 401, 'invalid_token', 'bad_signature'],
  ['tampered payload', async () => {
    const t = await ext.mint({ team: 'analytics' });
    const [h, , s] = t.split('.');
    return `${h}.${b64({ iss: ext.url, sub: 's', aud: 'tvm', iat: now(), exp: now() + 60, team: 'admins' })}.${s}`;
  }, 401, 'invalid_token', 'bad_signature'],
  ['missing iss', async () => ext.mint({ ...team, iss: undefined }), 401, 'invalid_token', 'missing_iss'],
  ['unknown iss', async () => ext.mint({ ...team, iss: 'https://evil.example' }), 401, 'invalid_token', 'unknown_issuer'],
  ['iss differing in case', async () => ext.mint({ ...team, iss: ext.url.toUpperCase() }), 401, 'invalid_token', 'unknown_issuer'],
  ['iss with two trailing slashes', async () => ext.mint({ ...team, iss: `${ext.url}//` }), 401, 'invalid_token', 'unknown_issuer'],
  ['wrong aud', async () => ext.mint({ ...team, aud: 'not-tvm' }), 401, 'invalid_token', 'claim_aud_check_failed'],
  ['aud array with a foreign value', async () => ext.mint({ ...team, aud: ['tvm', 'someone-else'] }), 401, 'invalid_token', 'foreign_audience'],
  ['missing aud', async () => ext.mint({ ...team, aud: undefined }), 401, 'invalid_token', 'claim_aud_missing'],
  ['missing sub', async () => ext.mint({ ...team, sub: undefined }), 401, 'invalid_token', 'claim_sub_missing'],
  ['empty sub', async () => ext.mint({ ...team, sub: '' }), 401, 'invalid_token', 'bad_sub'],
  ['missing exp', async () => ext.mint({ ...team, exp: undefined }), 401, 'invalid_token', 'claim_exp_missing'],
  ['missing iat', async () => ext.mint({ ...team, iat: undefined }), 401, 'invalid_token', 'claim_iat_missing'],
  ['expired beyond skew', async () => ext.mint({ ...team, iat: now() - 400, exp: now() - 120 }), 401, 'invalid_token', 'token_expired'],
  ['nbf in the future beyond skew', async () => ext.mint({ ...team, nbf: now() + 300 }), 401, 'invalid_token', 'claim_nbf_check_failed'],
  ['iat in the future beyond skew', async () => ext.mint({ ...team, iat: now() + 300, exp: now() + 600 }), 401, 'invalid_token', 'claim_iat_check_failed'],
  ['older than maxTokenAgeSeconds', async () => ext.mint({ ...team, iat: now() - 3000, exp: now() + 600 }), 401, 'invalid_token', 'token_expired'],
  ['over 16 KiB', async () => ext.mint({ ...team, pad: 'x'.repeat(17 * 1024) }), 401, 'invalid_token', 'token_too_large'],
  ['a JWE (five parts)', async () => `${b64({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.a.b.c.d`, 401, 'invalid_token', 'jwe_not_accepted'],
  ['a nested JWT (cty JWT)', async () => ext.mint(team, { cty: 'JWT' }), 401, 'invalid_token', 'nested_jwt_refused'],
  ['garbage', async () => 'not-a-jwt', 401, 'invalid_token', 'malformed'],
  ['no Authorization header', async () => undefined, 401, 'invalid_token', 'missing_authorization'],
  ['Basic scheme', async () => 'Basic dXNlcjpwYXNz', 401, 'invalid_token', 'malformed_authorization'],
  ['a token of a trusted issuer for another issuer\'s audience', async () => ext.mint({ ...team, aud: 'other-aud' }), 401, 'invalid_token', 'claim_aud_check_failed'],
  ['another issuer\'s key for this issuer', async () => other.mint({ ...team, iss: ext.url }), 401, 'invalid_token', 'unknown_kid'],
  ['single-use issuer, token without jti', async () => once.mint({ ...team, jti: undefined }), 401, 'invalid_token', 'missing_jti'],
  ['__proto__ claim smuggling the team', async () => {
    const t = await ext.mint({});
    const [h, , s] = t.split('.');
    return `${h}.${Buffer.from(`{"iss":"${ext.url}","sub":"s","aud":"tvm","iat":${now()},"exp":${now() + 60},"__proto__":{"team":"admins"}}`).toString('base64url')}.${s}`;
  }, 401, 'invalid_token', 'bad_signature'],
  ['__proto__ claim, validly signed', async () => {
    const payload = `{"iss":"${ext.url}","sub":"s","aud":"tvm","iat":${now()},"exp":${now() + 60},"__proto__":{"team":"admins"},"constructor":{"team":"x"}}`;
    const { CompactSign } = await import('jose');
    return new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader({ alg: 'RS256', kid: ext.kid }).sign(ext.privateKey);
  }, 401, 'invalid_token', 'claim_unsupported'],
  ['no team claim: no policy permits', async () => ext.mint({}), 403, 'access_denied', 'policy_deny'],
  ['signature with its unused low bits flipped (one token, one tokenSha256)', async () => {
    const [h, p, sig] = (await ext.mint(team)).split('.');
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    // RS256 (2048-bit): 256 bytes, 342 characters, the last carrying 4 unused bits.
    return `${h}.${p}.${sig.slice(0, -1)}${alphabet[alphabet.indexOf(sig.at(-1)!) ^ 1]}`;
  }, 401, 'invalid_token', 'non_canonical_encoding'],
  ['single-use token with exp 1e126 (no store can keep it)', async () => once.mint({ ...team, jti: 'huge-exp', exp: 1e126 }), 401, 'invalid_token', 'bad_exp'],
  ['sub with a terminal escape', async () => ext.mint({ ...team, sub: 'a\u001b]52;c;ZXZpbA==\u0007' }), 401, 'invalid_token', 'bad_sub'],
  ['sub with a bidi override', async () => ext.mint({ ...team, sub: 'a\u202eb' }), 401, 'invalid_token', 'bad_sub'],
  ['a null claim (dropping it would let a forbid fail open)', async () => ext.mint({ ...team, groups: null }), 401, 'invalid_token', 'claim_unsupported'],
  ['a claim Cedar would read as an entity reference', async () => ext.mint({ ...team, boss: { __entity: { type: 'Tvm::Workload', id: 'x' } } }), 401, 'invalid_token', 'claim_unsupported'],
  ['claim value "*" into a placeholder', async () => ext.mint({ team: '*' }), 400, 'invalid_request', 'placeholder_unsafe'],
  ['claim value "?" into a placeholder', async () => ext.mint({ team: 'a?b' }), 400, 'invalid_request', 'placeholder_unsafe'],
  ['claim value with a quote', async () => ext.mint({ team: 'a"],"Resource":["*' }), 400, 'invalid_request', 'placeholder_unsafe'],
  ['claim value with ${', async () => ext.mint({ team: '${aws:username}' }), 400, 'invalid_request', 'placeholder_unsafe'],
  ['claim value with a newline', async () => ext.mint({ team: 'a\nb' }), 400, 'invalid_request', 'placeholder_unsafe'],
  ['claim value of 300 characters', async () => ext.mint({ team: 'a'.repeat(300) }), 400, 'invalid_request', 'placeholder_unsafe'],
  ['claim value that is a list', async () => ext.mint({ team: ['a', 'b'] }), 400, 'invalid_request', 'placeholder_unsafe'],
];

describe('hostile tokens', () => {
  it.each(cases)('%s: the SPEC error and audit reason, no STS call, no lease', async (_name, make, status, error, reason) => {
    const token = await make();
    const logged = stack.logs.length;
    const sessions = stack.stack.sessionCount();
    const leases = await leaseCount();
    const auth = token === undefined ? undefined : token.startsWith('Basic ') ? token : `Bearer ${token}`;
    const answer = await vendWith(auth);
    expect(answer.status).toBe(status);
    expect(answer.body.error).toBe(error);
    expect(stack.stack.sessionCount()).toBe(sessions);
    expect(await leaseCount()).toBe(leases);
    // The audit reason names the rule that refused: removing a rule (say the `jwk` header check,
    // which the signature check would back up with bad_signature) fails its case.
    const events = stack.logs.slice(logged).map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === 'vend');
    expect(events).toHaveLength(1);
    expect(events[0].reason).toBe(reason);
  });

  it('never connects to a jku or x5u the token names (run alone too: it sends its own tokens)', async () => {
    const before = trap.connections();
    // Control: the trap does count a connection, so "no new connection" below means something.
    await (await fetch(`${trap.url}/probe`, { headers: { connection: 'close' } })).text();
    expect(trap.connections()).toBe(before + 1);
    for (const header of [{ jku: `${trap.url}/jwks` }, { x5u: `${trap.url}/cert` }, { jku: `${trap.url}/jwks`, kid: 'no-such-kid' }]) {
      const answer = await vendWith(`Bearer ${await ext.mint(team, header as never)}`);
      expect(answer.status).toBe(401);
    }
    expect(trap.connections()).toBe(before + 1);
  });

  it('accepts a token whose iss differs from the configured one by one trailing slash (SPEC: trimmed)', async () => {
    // The config names `${ext.url}/`; the token says `${ext.url}`.
    const answer = await vendWith(`Bearer ${await ext.mint(team)}`);
    expect(answer.status).toBe(200);
  });

  it('answers a replayed jti of a single-use issuer with 409 and no second lease', async () => {
    const token = await once.mint({ ...team, jti: 'replay-me' });
    expect((await vendWith(`Bearer ${token}`)).status).toBe(200);
    const sessions = stack.stack.sessionCount();
    const leases = await leaseCount();
    const replay = await vendWith(`Bearer ${token}`);
    expect(replay.status).toBe(409);
    expect(replay.body.error).toBe('token_replayed');
    expect(stack.stack.sessionCount()).toBe(sessions);
    expect(await leaseCount()).toBe(leases);
  });

  it('answers an unknown grant like a denial (403), revealing nothing', async () => {
    const answer = await vendWith(`Bearer ${await ext.mint(team)}`, 'no-such-grant');
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('access_denied');
  });

  it('logs every refusal as an audit event with a reason and the token hash, never the token', async () => {
    const token = await ext.mint({ team: '*' });
    await vendWith(`Bearer ${token}`);
    const events = stack.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === 'vend');
    const last = events[events.length - 1];
    expect(last.outcome).toBe('refused');
    expect(last.reason).toBe('placeholder_unsafe');
    expect(typeof last.tokenSha256).toBe('string');
    expect(stack.logs.join('\n')).not.toContain(token.split('.')[2]);
  });
});
