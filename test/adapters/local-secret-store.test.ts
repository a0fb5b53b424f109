/** The embedded secret store: Secrets Manager's label rules, kept in a file across restarts. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalSecretStore } from '../../functions/adapters/local-secret-store.js';
import { AWSCURRENT, AWSPENDING, AWSPREVIOUS } from '../../functions/core/vendor-ports.js';

describe('LocalSecretStore', () => {
  it('moves labels as Secrets Manager does and persists them (file mode 0600)', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tvm-secrets-')), 'secrets.json');
    const s = new LocalSecretStore(file);
    await s.putValue('k', 'v1', 'one', [AWSCURRENT]);
    await s.putValue('k', 'v2', 'two', [AWSPENDING]);
    expect(await s.versions('k')).toEqual({ v1: [AWSCURRENT], v2: [AWSPENDING] });
    await s.putValue('k', 'v2', 'two', [AWSPENDING]); // idempotent
    await expect(s.putValue('k', 'v2', 'changed', [AWSPENDING])).rejects.toMatchObject({ name: 'ResourceExistsException' });
    // AWSCURRENT cannot be moved without naming the version it leaves.
    await expect(s.updateStage('k', AWSCURRENT, 'v2', undefined)).rejects.toMatchObject({ name: 'InvalidParameterException' });
    await s.updateStage('k', AWSCURRENT, 'v2', 'v1');
    expect(await s.versions('k')).toEqual({ v1: [AWSPREVIOUS], v2: [AWSPENDING, AWSCURRENT] });
    await s.updateStage('k', AWSPENDING, undefined, 'v2');
    expect((await s.getValue('k', { stage: AWSCURRENT }))!.value).toBe('two');
    expect(await s.getValue('k', { stage: AWSPENDING })).toBeUndefined();

    const again = new LocalSecretStore(file);
    expect(await again.versions('k')).toEqual({ v1: [AWSPREVIOUS], v2: [AWSCURRENT] });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await again.versions('missing')).toEqual({});
    expect(await again.getValue('missing', { stage: AWSCURRENT })).toBeUndefined();
  });
});
