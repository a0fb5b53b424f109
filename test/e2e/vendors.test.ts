/**
 * Vendor keys end to end on the local stack, driven as a user would: `tvm vendors`,
 * `tvm rotate datadog` while 20 broker calls run in a loop (zero failures, and the calls after the
 * rotation carry the new key once the 1 s key cache has passed), the old key gone at the fake
 * after the overlap, two rotations at once (the DynamoDB lock), a vendor not configured, and a
 * scan of every log line and answer for every key handed out. Time moves by the stack's clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { run as rotateRun } from '../../cli/commands/rotate.js';
import { run as vendorsRun } from '../../cli/commands/vendors.js';
import { Refusal, UsageError, type Io } from '../../cli/lib.js';
import { NOT_CONFIGURED, parseVendorKey } from '../../functions/core/rotate-vendor-key.js';
import { AWSCURRENT } from '../../functions/core/vendor-ports.js';
import { createRotateHandler } from '../../functions/rotate/handler.js';
import { vendorRuntime } from '../../functions/shared/vendor-runtime.js';
import { fakeAt, type VendorFake } from '../../local/vendor-fakes/index.js';
import { VENDOR_POLICIES, vendorYaml } from '../handlers/broker-config.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
let token: string;
const seenKeys = new Set<string>();
const answers: string[] = [];

/** The stack's clock: it moves only when a test moves it (no sleeping). */
let offsetMs = 0;
const T0 = Date.now();
const clock = { now: () => T0 + offsetMs };
const KEY_CACHE_SECONDS = 1;

/** The vendors of the broker tests, datadog's key cached for 1 s (instead of 30) so a rotation shows within the loop. */
function yamlWithShortKeyCache(): string {
  const config = parse(vendorYaml('2s')) as { vendors: { name: string; broker: Record<string, unknown> }[] };
  config.vendors.find((v) => v.name === 'datadog')!.broker.keyCacheSeconds = KEY_CACHE_SECONDS;
  return stringify(config);
}

beforeAll(async () => {
  stack = await startTestStack({ yaml: yamlWithShortKeyCache(), policies: VENDOR_POLICIES, clock });
  token = await stack.mintToken({ team: 'analytics' });
});
afterAll(() => stack?.close());

const fake = (name: string): VendorFake => fakeAt(stack.runtime.config.vendors.find((v) => v.name === name)!.baseUrl)!;

/** As cli/tvm.ts's main runs a command: a refusal is one line and exit 1, bad usage exit 2. */
function wrap(run: (args: string[], io: Io) => Promise<number>) {
  return async (args: string[], io: Io): Promise<number> => {
    try {
      return await run(args, io);
    } catch (e) {
      if (e instanceof UsageError) return io.err(`${e.message}\n`), 2;
      if (e instanceof Refusal) return io.err(`${e.message}\n`), 1;
      throw e;
    }
  };
}
const rotateCmd = wrap(rotateRun);
const vendorsCmd = wrap(vendorsRun);

function cli(): { io: Io; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s) => void out.push(s), err: (s) => void err.push(s), env: { TVM_ENDPOINT: stack.api, TVM_ADMIN_TOKEN: stack.adminToken } }, out, err };
}

async function current(vendor: string) {
  const vr = vendorRuntime(stack.runtime);
  const k = parseVendorKey((await vr.secrets.getValue(vr.secretIds[vendor].key, { stage: AWSCURRENT }))!.value)!;
  seenKeys.add(k.key);
  return k;
}

async function brokerCall(): Promise<number> {
  const res = await fetch(`${stack.api}/v1/broker/datadog/api/v2/series`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ series: [{ metric: 'tvm.test', points: [{ timestamp: 1, value: 1 }] }] }),
  });
  answers.push(await res.text(), JSON.stringify([...res.headers]));
  return res.status;
}

describe('vendor keys on the local stack', () => {
  it('each vendor has a first key at its fake; `tvm vendors` shows key ids, never keys', async () => {
    for (const name of ['datadog', 'openai', 'acme']) {
      const k = await current(name);
      expect(fake(name).liveKeys().map((x) => x.id)).toEqual([k.keyId]);
    }
    const c = cli();
    expect(await vendorsCmd([], c.io)).toBe(0);
    const text = c.out.join('');
    expect(text).toContain((await current('datadog')).keyId);
    expect(text).toMatch(/^VENDOR\s+KIND\s+CURRENT KEY/);
    for (const k of seenKeys) expect(text).not.toContain(k);
    const j = cli();
    expect(await vendorsCmd(['--json'], j.io)).toBe(0);
    expect(JSON.parse(j.out.join('')).map((v: { name: string }) => v.name)).toEqual(['datadog', 'openai', 'acme']);
  });

  it('`tvm rotate datadog` while 20 broker calls run in a loop: none fails, the calls after the rotation use the new key; the old key is gone after the overlap', async () => {
    const before = await current('datadog');
    const dd = fake('datadog');
    dd.delay('create', 150); // the rotation spans several calls
    dd.seen = [];
    const statuses: number[] = [];
    let rotation: Promise<number> | undefined;
    let rotatedAt = -1;
    const c = cli();
    for (let i = 0; i < 20; i++) {
      if (i === 3) rotation = rotateCmd(['datadog', '--reason', 'scheduled test'], c.io);
      if (i === 10) {
        expect(await rotation).toBe(0);
        // The key cache lasts 1 s: past it, the broker reads AWSCURRENT again.
        offsetMs += KEY_CACHE_SECONDS * 1000 + 100;
        rotatedAt = i;
      }
      statuses.push(await brokerCall());
    }
    expect(statuses.filter((s) => s !== 202)).toEqual([]);
    const after = await current('datadog');
    expect(after.keyId).not.toBe(before.keyId);
    // The key each call carried, in order, as the vendor saw it.
    const used = dd.seen.filter((r) => r.path === '/api/v2/series').map((r) => r.headers['dd-api-key']);
    expect(used).toHaveLength(20);
    expect(used.slice(0, 3)).toEqual([before.key, before.key, before.key]);
    expect(used.slice(rotatedAt)).toEqual(Array(20 - rotatedAt).fill(after.key));
    expect(c.out.join('')).toContain(`current key ${after.keyId}`);
    expect(c.out.join('')).toContain(`previous key ${before.keyId} is revoked after the overlap`);
    // During the overlap both keys work.
    expect(fake('datadog').isLive(before.key)).toBe(true);

    offsetMs += 2100; // past the 2 s overlap
    const run = (await createRotateHandler(stack.runtime)({ source: 'test' })) as { results: { vendor: string; revoked: string[] }[] };
    expect(run.results.find((r) => r.vendor === 'datadog')!.revoked).toEqual([before.keyId]);
    expect(fake('datadog').isLive(before.key)).toBe(false);
    expect(fake('datadog').liveKeys().map((k) => k.id)).toEqual([after.keyId]);
    expect(await brokerCall()).toBe(202);
  });

  it('an incident rotation (--revoke-previous) mid-loop: the broker reloads the key on the 403 and no call fails', async () => {
    const before = await current('datadog');
    const statuses: number[] = [];
    let rotation: Promise<number> | undefined;
    const c = cli();
    for (let i = 0; i < 20; i++) {
      if (i === 5) rotation = rotateCmd(['datadog', '--revoke-previous', '--reason', 'leaked'], c.io);
      statuses.push(await brokerCall());
    }
    expect(await rotation).toBe(0);
    expect(statuses.filter((s) => s !== 202)).toEqual([]);
    expect(c.out.join('')).toContain(`previous key ${before.keyId} revoked`);
    expect(fake('datadog').isLive(before.key)).toBe(false);
    await current('datadog');
    const refreshed = stack.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'broker' && l.keyRefreshed === true);
    expect(refreshed.length).toBeGreaterThanOrEqual(1);
  });

  it('two rotations at once for one vendor: one proceeds, the other is refused (429, rotation in progress)', async () => {
    fake('openai').delay('create', 300);
    const post = () =>
      fetch(`${stack.api}/v1/admin/vendors/openai/rotate`, { method: 'POST', headers: { authorization: `Bearer ${stack.adminToken}` } }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as Record<string, unknown>,
      }));
    const [a, b] = await Promise.all([post(), post()]);
    expect([a.status, b.status].sort()).toEqual([200, 429]);
    expect([a, b].find((x) => x.status === 429)!.body.error).toBe('throttled');
    expect(fake('openai').liveKeys()).toHaveLength(2);
    await current('openai');
  });

  it('the vendor down: the rotation fails, the current key stays, `tvm vendors` shows the error; the next run rotates', async () => {
    const before = await current('acme');
    fake('acme').fail('create', 503);
    const c = cli();
    expect(await rotateCmd(['acme'], c.io)).toBe(1);
    expect(c.err.join('')).toMatch(/^upstream_unavailable: .*\n$/);
    expect((await current('acme')).keyId).toBe(before.keyId);
    const v = cli();
    await vendorsCmd([], v.io);
    expect(v.out.join('')).toMatch(/acme .*vendor_503 at createSecret/);
    expect(stack.stack.metrics.counts.RotationFailures).toBeGreaterThanOrEqual(1);
    expect(await rotateCmd(['acme'], cli().io)).toBe(0);
    expect((await current('acme')).keyId).not.toBe(before.keyId);
  });

  it('bad input: unknown vendor → exit 1 with one line; no vendor → exit 2', async () => {
    const c = cli();
    expect(await rotateCmd(['nope'], c.io)).toBe(1);
    expect(c.err.join('')).toMatch(/^not_found: Not found\. \(request .+\)\n$/);
    const u = cli();
    expect(await rotateCmd([], u.io)).toBe(2);
    expect(u.err.join('')).toMatch(/^usage: tvm rotate VENDOR/);
  });

  it('a vendor whose management credential is not set: configured false in the route and `tvm vendors`, no rotation, no request, no failure metric', async () => {
    const vr = vendorRuntime(stack.runtime);
    const acme = fake('acme');
    const mgmt = vr.secretIds.acme.management;
    const real = (await vr.secrets.getValue(mgmt, { stage: AWSCURRENT }))!.value;
    await vr.secrets.putValue(mgmt, randomUUID(), NOT_CONFIGURED, [AWSCURRENT]);
    offsetMs += 5 * 60_000 + 1000; // past the management credential's cache
    token = await stack.mintToken({ team: 'analytics' });
    acme.seen = [];
    const failuresBefore = stack.stack.metrics.counts.RotationFailures ?? 0;

    const res = await fetch(`${stack.api}/v1/admin/vendors`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
    const vendors = ((await res.json()) as { vendors: { name: string; configured: boolean }[] }).vendors;
    expect(vendors.map((v) => [v.name, v.configured])).toEqual([['datadog', true], ['openai', true], ['acme', false]]);
    const v = cli();
    expect(await vendorsCmd([], v.io)).toBe(0);
    expect(v.out.join('')).toMatch(/^acme\s+http\s+not configured\b/m);

    offsetMs += 31 * 24 * 3600_000; // acme's rotation (30d) is long due
    token = await stack.mintToken({ team: 'analytics' });
    const run = (await createRotateHandler(stack.runtime)({ source: 'test' })) as { results: { vendor: string; outcome: string }[] };
    expect(run.results.find((r) => r.vendor === 'acme')!.outcome).toBe('not_configured');
    expect(acme.seen.filter((r) => r.op !== 'call')).toEqual([]);
    expect(stack.stack.metrics.counts.RotationFailures ?? 0).toBe(failuresBefore);
    const r = cli();
    expect(await rotateCmd(['acme'], r.io)).toBe(1);
    expect(r.err.join('')).toMatch(/^invalid_request: /);

    // The operator sets it: the next scheduled run (once the cache has passed) rotates.
    await vr.secrets.putValue(mgmt, randomUUID(), real, [AWSCURRENT]);
    offsetMs += 5 * 60_000 + 1000;
    token = await stack.mintToken({ team: 'analytics' });
    const next = (await createRotateHandler(stack.runtime)({ source: 'test' })) as { results: { vendor: string; outcome: string }[] };
    expect(next.results.find((x) => x.vendor === 'acme')!.outcome).toBe('rotated');
    await current('acme');
  });

  it('no key or management credential in any log line or answer', async () => {
    for (const name of ['datadog', 'openai', 'acme']) {
      for (const k of fake(name).liveKeys()) seenKeys.add(k.key);
      seenKeys.add(fake(name).managementSecret());
      for (const v of Object.values(JSON.parse(fake(name).managementSecret()) as Record<string, string>)) seenKeys.add(v);
    }
    expect(seenKeys.size).toBeGreaterThan(8);
    const everything = [...stack.logs, ...answers].join('\n');
    for (const k of seenKeys) expect(everything).not.toContain(k);
    const rotationEvents = stack.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => String(l.event).startsWith('vendor_rotated'));
    expect(rotationEvents.length).toBeGreaterThanOrEqual(5);
    expect(rotationEvents[0]).toMatchObject({ vendor: expect.any(String), keyId: expect.any(String) });
  });
});
