/** The embedded secret store: Secrets Manager's label rules, kept in a file across restarts. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalSecretStore, SecretVersionsModel } from '../../functions/adapters/local-secret-store.js';
import { AWSCURRENT, AWSPENDING, AWSPREVIOUS } from '../../functions/core/vendor-ports.js';

describe('LocalSecretStore', () => {
  it('moves labels as Secrets Manager does and persists them (file mode 0600)', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tvm-secrets-')), 'secrets.json');
    const s = new LocalSecretStore(file);
    await s.putValue('k', 'v1', 'one', [AWSCURRENT]);
    await s.putValue('k', 'v2', 'two', [AWSPENDING]);
    expect(await s.versions('k')).toEqual({ v1: [AWSCURRENT], v2: [AWSPENDING] });
    await s.putValue('k', 'v2', 'two', [AWSPENDING]); // idempotent
    await expect(s.putValue('k', 'v2', 'changed', [AWSPENDING])).rejects.toMatchObject({ awsName: 'ResourceExistsException' });
    // AWSCURRENT cannot be moved without naming the version it leaves.
    await expect(s.updateStage('k', AWSCURRENT, 'v2', undefined)).rejects.toMatchObject({ awsName: 'InvalidParameterException' });
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

  // Where moto is lenient and AWS strict, tvm's own model follows AWS's documentation.
  it('AWS PutSecretValue: the same ClientRequestToken with other data is refused, not overwritten (moto overwrites)', async () => {
    // https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html —
    // "If a version with this value already exists and that version's SecretString and
    // SecretBinary values are different from those in the request, then the request fails
    // because you can't modify a secret version."
    const s = new LocalSecretStore();
    await s.putValue('k', 'v1', 'one', [AWSCURRENT]);
    await expect(s.putValue('k', 'v1', 'other', [AWSCURRENT])).rejects.toMatchObject({ awsName: 'ResourceExistsException' });
    expect((await s.getValue('k', { versionId: 'v1' }))!.value).toBe('one');
  });

  it('AWS staging labels: a label (custom ones too) is on at most one version (moto can leave a moved custom label on two)', async () => {
    // https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_UpdateSecretVersionStage.html —
    // "Each staging label can be attached to only one version at a time", and RemoveFromVersionId:
    // "If the label is attached and you either do not specify this parameter, or the version ID
    // does not match, then the operation fails."
    const s = new LocalSecretStore();
    await s.putValue('k', 'v1', 'one', [AWSCURRENT, 'MINE']);
    await s.putValue('k', 'v2', 'two', ['MINE']);
    expect(await s.versions('k')).toEqual({ v1: [AWSCURRENT], v2: ['MINE'] });
    await expect(s.updateStage('k', 'MINE', 'v1', undefined)).rejects.toMatchObject({ awsName: 'InvalidParameterException' });
    await s.updateStage('k', 'MINE', 'v1', 'v2');
    expect(await s.versions('k')).toEqual({ v1: [AWSCURRENT, 'MINE'], v2: [] });
  });

  it('RotateSecret first: an empty AWSPENDING version (no value to get) that PutSecretValue with its token fills; refused while one is in progress', async () => {
    // https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html —
    // "When rotation is unsuccessful, the AWSPENDING staging label might be attached to an empty
    // secret version" and "If the AWSPENDING staging label is present but not attached to the same
    // version as AWSCURRENT, then any later invocation of RotateSecret assumes that a previous
    // rotation request is still in progress and returns an error."
    const s = new LocalSecretStore();
    await s.putValue('k', 'v1', 'one', [AWSCURRENT]);
    await s.startRotation('k', 't1');
    expect(await s.versions('k')).toEqual({ v1: [AWSCURRENT], t1: [AWSPENDING] });
    expect(await s.getValue('k', { versionId: 't1' })).toBeUndefined();
    expect(await s.getValue('k', { stage: AWSPENDING })).toBeUndefined();
    await expect(s.startRotation('k', 't2')).rejects.toMatchObject({ awsName: 'InvalidRequestException' });
    await s.putValue('k', 't1', 'two', [AWSPENDING]);
    expect((await s.getValue('k', { versionId: 't1' }))!.value).toBe('two');
    await s.updateStage('k', AWSCURRENT, 't1', 'v1');
    await s.updateStage('k', AWSPENDING, undefined, 't1');
    await s.startRotation('k', 't2');
    expect((await s.versions('k')).t2).toEqual([AWSPENDING]);
  });

  it('moving or removing one label leaves the version\'s other labels where they are', async () => {
    const s = new LocalSecretStore();
    await s.putValue('k', 'v1', 'one', [AWSCURRENT, 'MINE']);
    await s.putValue('k', 'v2', 'two', [AWSPENDING, 'OURS']);
    await s.updateStage('k', AWSCURRENT, 'v2', 'v1');
    expect(await s.versions('k')).toEqual({ v1: ['MINE', AWSPREVIOUS], v2: [AWSPENDING, 'OURS', AWSCURRENT] });
    await s.updateStage('k', AWSPENDING, undefined, 'v2');
    expect(await s.versions('k')).toEqual({ v1: ['MINE', AWSPREVIOUS], v2: ['OURS', AWSCURRENT] });
  });

  it('a new AWSCURRENT puts AWSPREVIOUS on the version it left (only there), and reads back its labels', async () => {
    const s = new LocalSecretStore();
    await s.putValue('k', 'v1', 'one', [AWSCURRENT]);
    await s.putValue('k', 'v2', 'two', [AWSCURRENT]);
    expect(await s.versions('k')).toEqual({ v1: [AWSPREVIOUS], v2: [AWSCURRENT] });
    await s.putValue('k', 'v3', 'three', [AWSCURRENT]);
    expect(await s.versions('k')).toEqual({ v1: [], v2: [AWSPREVIOUS], v3: [AWSCURRENT] });
    expect(await s.getValue('k', { stage: AWSCURRENT })).toEqual({ versionId: 'v3', value: 'three', stages: [AWSCURRENT] });
    expect(await s.getValue('k', { stage: AWSPREVIOUS })).toEqual({ versionId: 'v2', value: 'two', stages: [AWSPREVIOUS] });
  });

  it('UpdateSecretVersionStage: its refusals say why; moving a label onto its holder changes nothing; a label nobody holds can be added or removed', async () => {
    const s = new LocalSecretStore();
    await s.putValue('k', 'v1', 'one', [AWSCURRENT]);
    await s.putValue('k', 'v2', 'two', [AWSPENDING]);
    await expect(s.updateStage('k', AWSCURRENT, 'nope', 'v1')).rejects.toMatchObject({ awsName: 'ResourceNotFoundException', detail: { message: 'The version to move the label to does not exist.' } });
    await expect(s.updateStage('k', AWSCURRENT, 'v2', 'v2')).rejects.toMatchObject({ awsName: 'InvalidParameterException', detail: { message: 'The staging label AWSCURRENT is not attached to version v2.' } });
    await expect(s.updateStage('k', AWSCURRENT, 'v2', undefined)).rejects.toMatchObject({ detail: { message: 'The staging label AWSCURRENT is attached to version v1; name it in RemoveFromVersionId.' } });
    await s.updateStage('k', AWSCURRENT, 'v1', 'v1');
    expect(await s.versions('k')).toEqual({ v1: [AWSCURRENT], v2: [AWSPENDING] });
    await s.updateStage('k', 'MINE', undefined, undefined);
    await s.updateStage('k', 'MINE', 'v2', undefined);
    expect(await s.versions('k')).toEqual({ v1: [AWSCURRENT], v2: [AWSPENDING, 'MINE'] });
    await expect(s.updateStage('missing', AWSCURRENT, 'v1', undefined)).rejects.toMatchObject({ awsName: 'ResourceNotFoundException', detail: { message: "Secrets Manager can't find the specified secret." } });
    await expect(s.putValue('k', 'v1', 'other', [AWSCURRENT])).rejects.toMatchObject({ detail: { message: 'A version with this ClientRequestToken already exists with different data.' } });
  });

  it('RotateSecret while AWSPENDING is still on AWSCURRENT takes it off there; refused, saying why, while it is on another version', async () => {
    const s = new LocalSecretStore();
    await s.putValue('k', 'v1', 'one', [AWSCURRENT, AWSPENDING]);
    await s.startRotation('k', 't1');
    expect(await s.versions('k')).toEqual({ v1: [AWSCURRENT], t1: [AWSPENDING] });
    await expect(s.startRotation('k', 't2')).rejects.toMatchObject({ awsName: 'InvalidRequestException', detail: { message: 'A previous rotation isn’t complete. That rotation will be reattempted.' } });
  });

  it('keeps the 10 newest versions without a label, drops older ones', () => {
    let t = 0;
    const m = new SecretVersionsModel({}, () => ++t);
    for (let i = 1; i <= 14; i++) m.put('k', `v${i}`, `x${i}`, undefined, true); // no stages: AWSCURRENT
    const vs = m.versions('k');
    expect(vs.v14).toEqual([AWSCURRENT]);
    expect(vs.v13).toEqual([AWSPREVIOUS]);
    expect(Object.keys(vs).sort()).toEqual(['v10', 'v11', 'v12', 'v13', 'v14', 'v3', 'v4', 'v5', 'v6', 'v7', 'v8', 'v9']);
  });

  it('versions made in the same millisecond are pruned oldest first too (creation order breaks the tie)', () => {
    const m = new SecretVersionsModel({}, () => 1_800_000_000_000);
    for (let i = 1; i <= 14; i++) m.put('k', `v${i}`, `x${i}`, undefined, true);
    expect(Object.keys(m.versions('k')).sort()).toEqual(['v10', 'v11', 'v12', 'v13', 'v14', 'v3', 'v4', 'v5', 'v6', 'v7', 'v8', 'v9']);
  });

  it('the model: an unknown secret is ResourceNotFoundException; create makes an empty one', () => {
    const m = new SecretVersionsModel();
    expect(() => m.versions('k')).toThrow(expect.objectContaining({ awsName: 'ResourceNotFoundException' }));
    m.create('k');
    expect(m.has('k')).toBe(true);
    expect(m.versions('k')).toEqual({});
    expect(() => m.put('other', 'v1', 'x', [AWSCURRENT])).toThrow(expect.objectContaining({ awsName: 'ResourceNotFoundException' }));
  });

  it('a store file that is not JSON is an error at start, not an empty store', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tvm-secrets-')), 'secrets.json');
    writeFileSync(file, 'not json');
    expect(() => new LocalSecretStore(file)).toThrow();
  });
});
