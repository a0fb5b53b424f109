/**
 * Takes docs/console.png: a local stack (ephemeral, free ports) seeded with a handful of leases,
 * a few denials, a revocation and a rotation, and the ops console opened in Debian's chromium.
 *
 *   npx tsx scripts/console-screenshot.ts [out.png]
 */
import { launchChromium } from '../test/helpers/browser.js';
import { startTestStack } from '../test/helpers/stack.js';

const out = process.argv[2] ?? 'docs/console.png';
const s = await startTestStack();
try {
  const vend = async (sub: string, task: string, team = 'analytics') => {
    const v = await s.vend({ grant: 'reports-read', context: { task } }, await s.mintToken({ team }, { sub }));
    if (v.status !== 200) throw new Error(`seeding: vend answered ${v.status}`);
    return v.body.leaseId as string;
  };
  const ids = [
    await vend('agent-1', 'nightly-report'),
    await vend('agent-1', 'nightly-report'),
    await vend('agent-2', 'q3-summary'),
    await vend('ci-runner-7', 'backfill'),
    await vend('agent-3', 'q3-summary', 'finance'),
    await vend('agent-2', 'adhoc'),
  ];
  await s.vend({ grant: 'deploy' }); // no policy permits it
  await s.vend({ grant: 'no-such-grant' });
  await s.vend({ grant: 'reports-read' }, 'not-a-token');
  const admin = { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' };
  await fetch(`${s.api}/v1/admin/revoke`, { method: 'POST', headers: admin, body: JSON.stringify({ task: 'backfill', reason: 'INC-42: runner compromised' }) });
  await fetch(`${s.api}/v1/admin/vendors/openai/rotate`, { method: 'POST', headers: admin, body: JSON.stringify({ reason: 'INC-42' }) });

  const browser = await launchChromium();
  try {
    const page = await (await browser.newContext({ viewport: { width: 1440, height: 1100 }, deviceScaleFactor: 1 })).newPage();
    await page.goto(s.stack.consoleUrl);
    await page.waitForSelector('tr.lease');
    await page.click(`tr[data-lease="${ids[3]}"]`);
    await page.waitForSelector('#timeline tr[data-type=revoked]');
    await page.click(`tr[data-lease="${ids[0]}"]`);
    await page.waitForFunction((id) => (globalThis as unknown as { document: { getElementById(i: string): { textContent: string } } }).document.getElementById('lease-fields').textContent.includes(id), ids[0]);
    await page.click('#revoke-principal');
    await page.waitForSelector('#revoke-dialog');
    await page.fill('#revoke-reason', 'INC-42');
    await page.screenshot({ path: out, fullPage: true });
    console.log(`wrote ${out}`);
  } finally {
    await browser.close();
  }
} finally {
  await s.close();
}
