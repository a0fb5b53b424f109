/** The embedded DynamoDB's data folder holds every lease: only its user may read it. */
import { mkdirSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { startDynalite } from '../../local/dynamo.js';

it.each([
  ['a new folder', false],
  ['a folder that already exists world-readable', true],
])('%s becomes 0700', async (_name, exists) => {
  const path = join(mkdtempSync(join(tmpdir(), 'tvm-dynamo-')), 'dynamo');
  if (exists) mkdirSync(path, { mode: 0o755 });
  const db = await startDynalite({ path });
  try {
    expect(statSync(path).mode & 0o777).toBe(0o700);
  } finally {
    await db.close();
  }
});
