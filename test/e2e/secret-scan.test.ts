/**
 * The secret scan: one local stack, its state on disk, runs every flow (vend, container
 * credentials, self-revoke, admin revoke, sweep, broker, rotation, admin views) and the failure
 * paths (STS, the lease store and a vendor failing, an unexpected error answering 500); every log
 * line and every HTTP answer (body and headers) is captured, and none may contain a token, secret
 * key, session token, vendor key or vendor management credential the run created. Then what is
 * stored — every DynamoDB item, the STS/IAM emulator's state, every file of the data folder but
 * the secret stores' own files and the vendor fakes' (they play the vendor) — is scanned for each
 * secret in clear, base64, base64url, URL and JSON encodings, and with every base64 run decoded.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TABLE } from '../../local/stack.js';
import { fakeAt } from '../../local/vendor-fakes/index.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
const secrets = new Set<string>();
const answers: string[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'tvm-secret-scan-'));
/** The secret stores' own files, and the vendor fakes' state (the vendor's side): where secrets belong. */
const SECRET_HOMES = ['local-secrets.json', 'secrets.json', 'vendor-fakes/', 'dev-issuer'];

beforeAll(async () => {
  stack = await startTestStack({ dataDir });
});
afterAll(() => stack?.close());

/** Each way a secret could be written down. */
function encodings(s: string): string[] {
  const b = Buffer.from(s);
  return [s, b.toString('base64'), b.toString('base64url'), encodeURIComponent(s), JSON.stringify(s).slice(1, -1)];
}

/** The text with every base64/base64url run (24+ characters) decoded beside it. */
function withDecoded(text: string): string {
  const runs = text.match(/[A-Za-z0-9+/_-]{24,}={0,2}/g) ?? [];
  return [text, ...runs.map((r) => Buffer.from(r.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('latin1'))].join('\n');
}

function found(haystack: string, secret: string): boolean {
  return encodings(secret).some((e) => haystack.includes(e));
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

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

  // The failure paths, each logging its cause (`detail.error = e.message`).
  const rt = stack.runtime;
  const patch = <T extends object, K extends keyof T>(obj: T, key: K, fn: T[K]) => {
    const real = obj[key];
    obj[key] = fn;
    return () => void (obj[key] = real);
  };
  let undo = patch(rt.credentials, 'assumeRole', () => Promise.reject(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' })));
  const stsFailed = await call('/v1/vend', { method: 'POST', token: await token('agent-sts'), body: JSON.stringify({ grant: 'reports-read' }) });
  undo();
  expect(stsFailed.status).toBeGreaterThanOrEqual(429);
  undo = patch(rt.credentials, 'assumeRole', () => Promise.reject(new TypeError("Cannot read properties of undefined (reading 'Credentials')")));
  expect((await call('/v1/vend', { method: 'POST', token: await token('agent-sts'), body: JSON.stringify({ grant: 'reports-read' }) })).status).toBe(503);
  undo();
  undo = patch(rt.leases, 'createPending', () => Promise.reject(Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException' })));
  expect((await call('/v1/vend', { method: 'POST', token: await token('agent-ddb'), body: JSON.stringify({ grant: 'reports-read' }) })).status).toBe(503);
  undo();
  undo = patch(rt.leases, 'get', () => Promise.reject(new TypeError('boom: an unexpected error')));
  expect((await call(`/v1/leases/${a2.body.leaseId}`, { token: await token('agent-a') })).status).toBe(500);
  undo();
  const datadog = fakeAt(rt.config.vendors.find((v) => v.name === 'datadog')!.baseUrl)!;
  datadog.fail('test', 500);
  expect((await call('/v1/broker/datadog/api/v1/validate', { token: brokerToken })).status).not.toBe(200);
  datadog.fail('create', 500);
  expect((await call('/v1/admin/vendors/datadog/rotate', { method: 'POST', admin: true, body: JSON.stringify({ reason: 'scan-fail' }) })).status).toBeGreaterThanOrEqual(500);
  datadog.faults = [];
  const errorLines = stack.logs.filter((l) => /"error"/.test(l));
  expect(errorLines.length).toBeGreaterThan(3);

  // Every vendor key the fakes ever issued, and each management credential.
  for (const v of stack.runtime.config.vendors) {
    const fake = fakeAt(v.baseUrl)!;
    for (const k of fake.keys.values()) secrets.add(k.key);
    secrets.add(fake.managementSecret());
    // A leak of one inner token (the API key alone) is a leak too: search for each value, not only the whole JSON.
    for (const inner of Object.values(JSON.parse(fake.managementSecret()) as Record<string, unknown>)) if (typeof inner === 'string' && inner.length >= 8) secrets.add(inner);
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
  // No secret in any encoding in a log line (base64 runs decoded too).
  const logs = withDecoded(stack.logs.join('\n'));
  expect([...secrets].filter((s) => found(logs, s))).toEqual([]);

  // What is stored: every DynamoDB item, then every file of the data folder outside the secret stores.
  const ddb = new DynamoDBClient({ endpoint: stack.stack.endpoints.dynamodb, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const items: unknown[] = [];
  let start: Record<string, any> | undefined;
  do {
    const page = await ddb.send(new ScanCommand({ TableName: TABLE, ExclusiveStartKey: start }));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  ddb.destroy();
  expect(items.length).toBeGreaterThan(5);
  const table = withDecoded(JSON.stringify(items));
  expect([...secrets].filter((s) => found(table, s))).toEqual([]);

  await stack.close(); // flushes the emulator's state
  const files = filesUnder(dataDir).filter((f) => !SECRET_HOMES.some((h) => relative(dataDir, f).startsWith(h)));
  expect(files.map((f) => relative(dataDir, f))).toContain('sts-iam-state.json');
  const leakedToDisk = files.flatMap((f) => {
    const text = withDecoded(readFileSync(f).toString('latin1'));
    return [...secrets].filter((s) => found(text, s)).map((s) => `${relative(dataDir, f)}: ${s.slice(0, 6)}…`);
  });
  expect(leakedToDisk).toEqual([]);
});
