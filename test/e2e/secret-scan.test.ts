/**
 * The secret scan: one local stack runs every flow (vend, container credentials, self-revoke,
 * admin revoke, sweep, broker, rotation, admin views); every log line and every HTTP answer
 * (body and headers) is captured, and none may contain a token, secret key, session token,
 * vendor key or vendor management credential the run created.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fakeAt } from '../../local/vendor-fakes/index.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
const secrets = new Set<string>();
const answers: string[] = [];

beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack?.close());

async function call(path: string, init: RequestInit & { token?: string; admin?: boolean } = {}) {
  const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.admin) headers.authorization = `Bearer ${stack.adminToken}`;
  if (init.body) headers['content-type'] = 'application/json';
  const res = await fetch(`${stack.api}${path}`, { ...init, headers });
  const text = await res.text();
  answers.push(JSON.stringify([...res.headers]), text);
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : {} };
}

async function token(sub: string) {
  const t = await stack.mintToken({ team: 'analytics' }, { sub });
  secrets.add(t);
  return t;
}

function remember(c: Record<string, string>) {
  for (const k of ['SecretAccessKey', 'SessionToken', 'Token']) if (c?.[k]) secrets.add(c[k]);
}

it('runs every flow and leaks nothing', async () => {
  // vend, twice for one principal, once for another
  const a1 = await call('/v1/vend', { method: 'POST', token: await token('agent-a'), body: JSON.stringify({ grant: 'reports-read' }) });
  const a2 = await call('/v1/vend', { method: 'POST', token: await token('agent-a'), body: JSON.stringify({ grant: 'reports-read' }) });
  const b1 = await call('/v1/vend', { method: 'POST', token: await token('agent-b'), body: JSON.stringify({ grant: 'reports-read' }) });
  for (const v of [a1, a2, b1]) {
    expect(v.status).toBe(200);
    remember(v.body.credentials);
  }
  // container credentials (raw JWT)
  const c = await fetch(`${stack.api}/v1/credentials/reports-read`, { headers: { authorization: await token('agent-c') } });
  const cBody = (await c.json()) as Record<string, string>;
  answers.push(JSON.stringify(cBody));
  remember(cBody);
  // a denial and a refusal
  expect((await call('/v1/vend', { method: 'POST', token: await token('agent-a'), body: JSON.stringify({ grant: 'deploy' }) })).status).toBe(403);
  // self-revoke, read own lease, admin revoke by principal, admin views, sweep
  expect((await call(`/v1/leases/${a1.body.leaseId}/revoke`, { method: 'POST', token: await token('agent-a') })).status).toBe(200);
  expect((await call(`/v1/leases/${a2.body.leaseId}`, { token: await token('agent-a') })).status).toBe(200);
  expect((await call('/v1/admin/revoke', { method: 'POST', admin: true, body: JSON.stringify({ principal: 'dev|agent-b', reason: 'incident drill' }) })).status).toBe(200);
  expect((await call('/v1/admin/leases?status=revoked', { admin: true })).status).toBe(200);
  expect((await call(`/v1/admin/leases/${b1.body.leaseId}`, { admin: true })).status).toBe(200);
  expect((await call('/v1/admin/sweep', { method: 'POST', admin: true })).status).toBe(200);
  // broker before and after a rotation, the admin vendor views
  const brokerToken = await token('agent-broker');
  expect((await call('/v1/broker/datadog/api/v1/validate', { token: brokerToken })).status).toBe(200);
  expect((await call('/v1/admin/vendors/datadog/rotate', { method: 'POST', admin: true, body: JSON.stringify({ reason: 'scan', revokePrevious: true }) })).status).toBe(200);
  expect((await call('/v1/broker/datadog/api/v1/validate', { token: brokerToken })).status).toBe(200);
  expect((await call('/v1/broker/openai/v1/models', { token: brokerToken })).status).toBe(200);
  expect((await call('/v1/admin/vendors', { admin: true })).status).toBe(200);

  // Every vendor key the fakes ever issued, and each management credential.
  for (const v of stack.runtime.config.vendors) {
    const fake = fakeAt(v.baseUrl)!;
    for (const k of fake.keys.values()) secrets.add(k.key);
    secrets.add(fake.managementSecret());
  }

  expect(secrets.size).toBeGreaterThan(15);
  const haystack = [...stack.logs, ...answers].join('\n');
  expect(stack.logs.length).toBeGreaterThan(10);
  const leaked = [...secrets].filter((s) => haystack.includes(s) || (s.split('.').length === 3 && haystack.includes(s.split('.')[2])));
  // Only the caller's own credentials may appear, in the answers that hand them out.
  const handedOut = new Set([a1, a2, b1].flatMap((v) => [v.body.credentials.SecretAccessKey, v.body.credentials.SessionToken]).concat([cBody.SecretAccessKey, cBody.Token]));
  const inLogs = [...secrets].filter((s) => stack.logs.join('\n').includes(s));
  expect(inLogs).toEqual([]);
  expect(leaked.filter((s) => !handedOut.has(s))).toEqual([]);
  // ...and each appears in exactly the one answer that handed it out, never in a later one.
  for (const s of handedOut) expect(answers.filter((a) => a.includes(s))).toHaveLength(1);
});
