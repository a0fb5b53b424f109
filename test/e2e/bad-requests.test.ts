/**
 * Bad requests get the SPEC error and change nothing: no STS call, no lease.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
let token: string;
beforeAll(async () => {
  stack = await startTestStack();
  token = await stack.mintToken({ team: 'analytics' }, { ttlSeconds: 600 });
});
afterAll(() => stack?.close());

type Case = [name: string, method: string, path: string, body: string | Buffer | undefined, headers: Record<string, string>, status: number, error: string];
const json = { 'content-type': 'application/json' };
const vendBody = (o: unknown) => JSON.stringify(o);

const cases: Case[] = [
  ['malformed JSON', 'POST', '/v1/vend', '{"grant": ', json, 400, 'invalid_request'],
  ['a JSON array body', 'POST', '/v1/vend', '[]', json, 400, 'invalid_request'],
  ['no body', 'POST', '/v1/vend', undefined, json, 400, 'invalid_request'],
  ['grant of the wrong type', 'POST', '/v1/vend', vendBody({ grant: 7 }), json, 400, 'invalid_request'],
  ['durationSeconds as a string', 'POST', '/v1/vend', vendBody({ grant: 'reports-read', durationSeconds: '900' }), json, 400, 'invalid_request'],
  ['durationSeconds fractional', 'POST', '/v1/vend', vendBody({ grant: 'reports-read', durationSeconds: 900.5 }), json, 400, 'invalid_request'],
  ['durationSeconds below 900', 'POST', '/v1/vend', vendBody({ grant: 'reports-read', durationSeconds: 899 }), json, 400, 'invalid_request'],
  ['durationSeconds above 3600', 'POST', '/v1/vend', vendBody({ grant: 'reports-read', durationSeconds: 3601 }), json, 400, 'invalid_request'],
  ['an unknown field', 'POST', '/v1/vend', vendBody({ grant: 'reports-read', role: 'admin' }), json, 400, 'invalid_request'],
  ['an unknown context field', 'POST', '/v1/vend', vendBody({ grant: 'reports-read', context: { admin: true } }), json, 400, 'invalid_request'],
  ['sensitivity off the list', 'POST', '/v1/vend', vendBody({ grant: 'reports-read', context: { sensitivity: 'secret' } }), json, 400, 'invalid_request'],
  ['a context value with a control character', 'POST', '/v1/vend', vendBody({ grant: 'reports-read', context: { task: 'a\u0000b' } }), json, 400, 'invalid_request'],
  ['wrong content type', 'POST', '/v1/vend', vendBody({ grant: 'reports-read' }), { 'content-type': 'text/plain' }, 400, 'invalid_request'],
  ['a body over 16 KiB', 'POST', '/v1/vend', vendBody({ grant: 'reports-read', context: { task: 'x'.repeat(17 * 1024) } }), json, 413, 'payload_too_large'],
  ['a body over 6 MB', 'POST', '/v1/vend', Buffer.alloc(6 * 1024 * 1024 + 1, 32), json, 413, 'payload_too_large'],
  ['an unknown grant', 'POST', '/v1/vend', vendBody({ grant: 'admin' }), json, 403, 'access_denied'],
  ['an unknown route', 'GET', '/v1/nothing', undefined, {}, 404, 'not_found'],
  ['a wrong method', 'GET', '/v1/vend', undefined, {}, 404, 'not_found'],
  ['a wrong method on a known path', 'DELETE', '/v1/leases/Laaaaaaaaaaaaaaaaaaaaaaaaaa', undefined, {}, 404, 'not_found'],
  ['a malformed lease id', 'GET', '/v1/leases/..%2F..%2Fetc', undefined, {}, 404, 'not_found'],
  ['an unknown lease', 'GET', '/v1/leases/Laaaaaaaaaaaaaaaaaaaaaaaaaa', undefined, {}, 404, 'not_found'],
  ['a bad percent-encoding', 'GET', '/v1/leases/%E0%A4%A', undefined, {}, 404, 'not_found'],
  ['admin route without the admin credential', 'GET', '/v1/admin/leases', undefined, {}, 401, 'invalid_token'],
  ['admin route with a workload token', 'GET', '/v1/admin/leases', undefined, { authorization: 'WORKLOAD' }, 401, 'invalid_token'],
];

it.each(cases)('%s', async (_name, method, path, body, headers, status, error) => {
  const sessions = stack.stack.sessionCount();
  const leases = (await stack.runtime.leases.list({ limit: 1000 })).length;
  const h = { ...headers };
  if (h.authorization === 'WORKLOAD' || (!('authorization' in h) && !path.startsWith('/v1/admin'))) h.authorization = `Bearer ${token}`;
  const res = await fetch(`${stack.api}${path}`, { method, headers: h, body });
  expect(res.status).toBe(status);
  const answer = (await res.json()) as Record<string, string>;
  expect(answer.error).toBe(error);
  expect(typeof answer.message).toBe('string');
  expect(stack.stack.sessionCount()).toBe(sessions);
  expect((await stack.runtime.leases.list({ limit: 1000 })).length).toBe(leases);
});

it('still vends for the same token afterwards (nothing above consumed anything)', async () => {
  expect((await stack.vend({ grant: 'reports-read' }, token)).status).toBe(200);
});
