/**
 * Admin commands against a deployed tvm sign with SigV4 (API Gateway IAM authorization): the
 * signature a loopback stand-in receives verifies with the caller's secret, for service
 * execute-api, over the exact method, path, query and body.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminCall } from '../../cli/lib.js';
import { parseAmzDate, parseAuthorization, verifySignature } from '../../local/emulator/sigv4.js';

const SECRET = 'test-secret-key-0123456789abcdefghijklmn';
const seen: { method: string; path: string; query: Record<string, string>; headers: Record<string, string>; body: Buffer }[] = [];
let url: string;
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const u = new URL(req.url ?? '/', 'http://x');
    seen.push({ method: req.method!, path: u.pathname, query: Object.fromEntries(u.searchParams), headers: req.headers as Record<string, string>, body: Buffer.concat(chunks) });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"revoked":2}');
  });
});
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

const env = {
  TVM_ADMIN_AUTH: 'sigv4',
  AWS_ACCESS_KEY_ID: 'AKIATESTADMIN0000001',
  AWS_SECRET_ACCESS_KEY: SECRET,
  AWS_REGION: 'eu-west-1',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
};

async function verify(secret: string) {
  const req = seen[seen.length - 1];
  const auth = parseAuthorization(req.headers.authorization)!;
  expect(auth.service).toBe('execute-api');
  expect(auth.region).toBe('eu-west-1');
  return verifySignature({ ...req, headers: req.headers }, auth, secret, parseAmzDate(req.headers['x-amz-date'])!);
}

it('signs a POST with its body so that the signature verifies', async () => {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const answer = await adminCall(`${url}/v1/admin/revoke`, { method: 'POST', body: '{"all":true,"reason":"incident"}' }, process.env);
    expect(answer.body).toEqual({ revoked: 2 });
    expect(await verify(SECRET)).toBe('ok');
    expect(await verify('another-secret')).toBe('mismatch');
    expect(seen[seen.length - 1].headers.authorization).not.toContain(SECRET);
  } finally {
    process.env = saved;
  }
});

it('signs a GET with a query', async () => {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    await adminCall(`${url}/v1/admin/leases?status=active&principal=dev%7Cagent-1`, {}, process.env);
    expect(seen[seen.length - 1].query).toEqual({ status: 'active', principal: 'dev|agent-1' });
    expect(await verify(SECRET)).toBe('ok');
  } finally {
    process.env = saved;
  }
});
