/**
 * The ops console in a real browser (Debian's chromium, one launch) against the real local stack:
 * refused without a session, in through the one-time link, list and filter and page leases, open
 * one (timeline, session policy, tags), revoke it with the confirmation — and the store says it is
 * revoked, not only the page — revoke a task, rotate a vendor, the chart, hostile text shown as
 * text, a cross-origin form refused, and no secret in anything the page received.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../helpers/browser.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { needTool } from '../helpers/tools.js';

const HOSTILE_SUB = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
/** What the page's elements are to these tests (the type check has no DOM library). */
interface DomEl {
  dataset: Record<string, string | undefined>;
}
const CONTROL_SUB = 'ctl\u001b[2J\u001b]52;c;ZXZpbA==\u0007bidi\u202egnp.exe';

describe.skipIf(!needTool('chromium', 'the ops console browser test'))('the ops console in chromium', () => {
  let s: TestStack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let evil: Server;
  let evilUrl = '';
  const secrets: string[] = [];
  const bodies: { url: string; text: string }[] = [];
  const ids: Record<string, string> = {};
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const admin = (path: string): Promise<any> => fetch(`${s.api}${path}`, { headers: { authorization: `Bearer ${s.adminToken}` } }).then((r) => r.json());

  async function vend(name: string, sub: string, task: string) {
    const token = await s.mintToken({ team: 'analytics' }, { sub });
    const v = await s.vend({ grant: 'reports-read', context: { task } }, token);
    expect(v.status, JSON.stringify(v.body)).toBe(200);
    ids[name] = v.body.leaseId;
    secrets.push(token, v.body.credentials.SecretAccessKey, v.body.credentials.SessionToken);
  }

  beforeAll(async () => {
    s = await startTestStack();
    secrets.push(s.adminToken);
    await vend('a', 'agent-1', 'alpha');
    await vend('b', 'agent-2', 'alpha');
    await vend('c', 'agent-1', 'beta');
    await vend('hostile', HOSTILE_SUB, 'beta');
    for (let i = 0; i < 8; i++) await vend(`bulk${i}`, `bulk-${i}`, 'bulk');
    // A record as one stored before `sub` was checked for control characters would be.
    const model = (await s.runtime.leases.get(ids.c))!;
    ids.control = 'Lcontrolcharsubaaaaaaaaaaaa';
    await s.runtime.leases.createPending({ ...model, leaseId: ids.control, status: 'pending', sub: CONTROL_SUB, principal: `dev|${CONTROL_SUB}`, context: { task: 'ctl\u009b2Jtask' }, events: [] });
    await s.runtime.leases.activate(ids.control, 'ASIACONTROLCHARS0000', model.expiresAt, { at: model.issuedAt, type: 'issued', by: `dev|${CONTROL_SUB}` });
    // A refusal for the chart.
    expect((await s.vend({ grant: 'no-such-grant' })).status).toBe(403);

    // Another origin on loopback (same site, other port): SameSite=Strict still sends the cookie there.
    evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><form id=f method=POST enctype=text/plain action="${s.api}/console/api/v1/admin/revoke">
        <input name='{"leaseId":"${ids.c}","reason":"csrf","x":"' value='"}'></form>`);
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;

    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    page = await context.newPage();
    page.on('response', async (r) => {
      if (!r.url().startsWith(s.api)) return;
      const text = await r.text().catch(() => '');
      bodies.push({ url: r.url(), text });
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => evil?.close(r));
    await s?.close();
  });

  it('without a session the page and its API are refused, and nothing of the page runs', async () => {
    const res = await page.goto(`${s.api}/console`);
    expect(res!.status()).toBe(401);
    expect(await page.locator('#lease-rows').count()).toBe(0);
    const apiRes = await page.request.get(`${s.api}/console/api/v1/admin/leases`, { headers: { 'x-tvm-console': '1' } });
    expect(apiRes.status()).toBe(401);
    expect(await apiRes.text()).not.toContain(ids.a);
  });

  it('the one-time link lets the browser in once, and the address keeps no code', async () => {
    const link = s.stack.consoleUrl;
    await page.goto(link);
    expect(page.url()).toBe(`${s.api}/console`);
    await expect.poll(() => page.locator('tr.lease').count()).toBeGreaterThan(0);
    const cookie = (await context.cookies()).find((c) => c.name.startsWith('tvm_console_'))!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/console' });
    expect(cookie.value).not.toBe(s.adminToken);
    expect(await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie)).toBe(''); // HttpOnly: no script reads it
    // The same link again, in a fresh browser context: refused.
    const other = await browser.newContext();
    const again = await (await other.newPage()).goto(link);
    expect(again!.status()).toBe(403);
    await other.close();
  });

  it('lists, filters and pages leases', async () => {
    const rowIds = () => page.locator('tr.lease').evaluateAll((trs) => trs.map((t) => (t as unknown as DomEl).dataset.lease));
    expect(await rowIds()).toEqual(expect.arrayContaining([ids.a, ids.b, ids.c, ids.hostile]));
    await page.fill('input[name=task]', 'alpha');
    await page.click('#filters button[type=submit]');
    await expect.poll(rowIds).toHaveLength(2);
    expect((await rowIds()).sort()).toEqual([ids.a, ids.b].sort());
    await page.fill('input[name=principal]', 'dev|agent-2');
    await page.click('#filters button[type=submit]');
    await expect.poll(rowIds).toEqual([ids.b]);
    // 8 leases of task bulk at 10 per page is one page; at 5… the select offers 10, 25, 100: use 10 with 13 leases.
    await page.click('#clear');
    await page.selectOption('select[name=limit]', '10');
    await page.click('#filters button[type=submit]');
    await expect.poll(rowIds).toHaveLength(10);
    await expect.poll(() => page.textContent('#page-note')).toContain('more exist');
    const first = await rowIds();
    await page.click('#next');
    await expect.poll(() => page.textContent('#page-note')).toContain('page 2');
    const second = await rowIds();
    expect(second.length).toBe(Object.keys(ids).length - 10);
    expect(second.filter((id) => first.includes(id))).toEqual([]);
    expect(await page.isDisabled('#next')).toBe(true);
    expect(await page.textContent('#page-note')).toContain('end of list');
    await page.selectOption('select[name=limit]', '100');
    await page.click('#filters button[type=submit]');
    await expect.poll(rowIds).toHaveLength(Object.keys(ids).length);
  });

  it('opens a lease: its timeline, session policy and tags', async () => {
    await page.click(`tr[data-lease="${ids.a}"]`);
    await expect.poll(() => page.textContent('#lease-fields')).toContain(ids.a);
    const types = await page.locator('#timeline tbody tr').evaluateAll((trs) => trs.map((t) => (t as unknown as DomEl).dataset.type));
    expect(types).toEqual(expect.arrayContaining(['requested', 'issued']));
    expect(await page.textContent('#timeline')).toContain('dev|agent-1');
    expect(await page.textContent('#timeline')).toContain('dev-agents-read-reports');
    const policy = JSON.parse((await page.textContent('#policy'))!);
    expect(policy.Statement[0]).toMatchObject({ Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::reports/analytics/*'] });
    expect(await page.textContent('#tags')).toContain('analytics');
  });

  it('revokes the lease after a dry run and a reason, and the lease store says revoked', async () => {
    await page.click('#revoke-lease');
    await expect.poll(() => page.textContent('#revoke-count')).toContain('1 live lease would be revoked');
    expect(await page.textContent('#revoke-dialog')).toContain(ids.a);
    expect((await s.runtime.leases.get(ids.a))!.status).toBe('active'); // the dry run revoked nothing
    expect(await page.isDisabled('#revoke-confirm-button')).toBe(true); // no reason yet
    await page.fill('#revoke-reason', 'INC-7 from the console');
    await page.click('#revoke-confirm-button');
    await expect.poll(() => page.textContent('#status')).toBe('revoked 1');
    await expect.poll(() => page.textContent('#lease-fields')).toContain('INC-7 from the console');
    await expect.poll(() => page.locator('#timeline tbody tr[data-type=revoked]').count()).toBeGreaterThan(0);
    const stored = (await s.runtime.leases.get(ids.a))!;
    expect(stored).toMatchObject({ status: 'revoked', revokeReason: 'INC-7 from the console' });
    expect((await admin(`/v1/admin/leases/${ids.a}`)).status).toBe('revoked');
    expect(await page.textContent(`tr[data-lease="${ids.a}"]`)).toContain('revoked');
  });

  it('revokes every live lease of a task', async () => {
    await page.click(`tr[data-lease="${ids.b}"]`);
    await expect.poll(() => page.textContent('#lease-fields')).toContain(ids.b);
    await page.click('#revoke-task');
    await expect.poll(() => page.textContent('#revoke-count')).toContain('1 live lease would be revoked'); // a is revoked already
    await page.fill('#revoke-reason', 'task alpha is done');
    await page.click('#revoke-confirm-button');
    await expect.poll(() => page.textContent('#status')).toBe('revoked 1');
    expect((await s.runtime.leases.get(ids.b))!.status).toBe('revoked');
    expect((await s.runtime.leases.get(ids.c))!.status).toBe('active');
  });

  it('rotates a vendor after a confirmation and shows the new rotation state', async () => {
    const before = (await admin('/v1/admin/vendors')).vendors.find((v: { name: string }) => v.name === 'datadog');
    const row = page.locator('tr[data-vendor=datadog]');
    expect(await row.locator('[data-field=key]').textContent()).toBe(before.currentKeyId);
    await row.locator('button').click();
    await expect.poll(() => page.textContent('#rotate-dialog')).toContain(before.currentKeyId);
    await page.click('#rotate-confirm-button');
    await expect.poll(() => page.textContent('#status')).toContain('datadog: rotated');
    const after = (await admin('/v1/admin/vendors')).vendors.find((v: { name: string }) => v.name === 'datadog');
    expect(after.currentKeyId).not.toBe(before.currentKeyId);
    await expect.poll(() => row.locator('[data-field=key]').textContent()).toBe(after.currentKeyId);
    expect(after.lastRotatedAt > before.lastRotatedAt).toBe(true);
  });

  it('draws issuances, denials by reason and revocations', async () => {
    await page.click('#refresh');
    await expect.poll(() => page.locator('#activity-chart rect[data-series=revoked]').count()).toBeGreaterThan(0);
    expect(await page.locator('#activity-chart rect[data-series=issued]').count()).toBeGreaterThan(0);
    expect(await page.locator('#activity-chart rect[data-series=denied]').count()).toBeGreaterThan(0);
    expect(await page.textContent('#legend')).toMatch(/denied: \w+ \(1\)/);
  });

  it('shows a hostile sub as text: no markup runs, control characters are escaped', async () => {
    const hostileRow = page.locator(`tr[data-lease="${ids.hostile}"]`);
    expect(await hostileRow.textContent()).toContain(HOSTILE_SUB);
    await hostileRow.click();
    await expect.poll(() => page.textContent('#lease-fields')).toContain(HOSTILE_SUB);
    expect(await page.locator('#lease-fields img, #lease-rows img, #timeline img, main script').count()).toBe(0);
    const controlRow = page.locator(`tr[data-lease="${ids.control}"]`);
    const text = (await controlRow.textContent())!;
    expect(text).toContain('ctl\\u{1b}[2J\\u{1b}]52;c;ZXZpbA==\\u{7}bidi\\u{202e}gnp.exe');
    expect(text).toContain('ctl\\u{9b}2Jtask');
    expect(await page.evaluate(() => (globalThis as unknown as { document: { body: { innerText: string } } }).document.body.innerText)).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  });

  it('a cross-origin form or fetch cannot revoke', async () => {
    const evilPage = await context.newPage();
    await evilPage.goto(evilUrl, { waitUntil: 'domcontentloaded', timeout: 10_000 });
    const isRevoke = (r: { url(): string; request(): { method(): string } }) => r.url().includes('/console/api/v1/admin/revoke') && r.request().method() === 'POST';
    // A script on the other origin: a no-cors fetch (the only kind that needs no CORS preflight).
    const [fetched] = await Promise.all([
      evilPage.waitForResponse(isRevoke, { timeout: 10_000 }),
      evilPage.evaluate(`fetch(${JSON.stringify(`${s.api}/console/api/v1/admin/revoke`)}, { method: "POST", mode: "no-cors", credentials: "include", headers: { "content-type": "text/plain" }, body: JSON.stringify({ leaseId: ${JSON.stringify(ids.c)}, reason: "csrf" }) }).catch(() => 0)`),
    ]);
    // …and a plain form post (text/plain, body shaped like JSON).
    // (submitted from a timer: the submission navigates the page, and an evaluate that is still
    // running when its page navigates away may never settle)
    const [posted] = await Promise.all([evilPage.waitForResponse(isRevoke, { timeout: 10_000 }), evilPage.evaluate(`setTimeout(() => document.getElementById("f").submit(), 0)`)]);
    // Both reached the server with the session cookie (same site, other port) and both were refused.
    expect([fetched.status(), posted.status()]).toEqual([403, 403]);
    expect(await posted.request().headerValue('cookie')).toMatch(/tvm_console_\d+=/);
    // (not closed here: chromium holds the page's close until the refused form navigation is done
    // with, which outlived the test; the context's close at the end takes it down)
    expect((await s.runtime.leases.get(ids.c))!.status).toBe('active');
  });

  it('no secret reached the page: not the admin token, a workload token, or any credential', () => {
    expect(bodies.length).toBeGreaterThan(10);
    for (const { url, text } of bodies) for (const secret of secrets) expect(text.includes(secret), `${url} carries a secret`).toBe(false);
    expect(bodies.some((b) => b.text.includes('ASIA'))).toBe(true); // access key ids are there: the scan looks at the data
  });
});
