/**
 * The Secrets Manager adapter with aws-sdk-client-mock (no Secrets Manager runs here): the
 * commands it sends (ClientRequestToken as the version id, VersionStages, Move/RemoveFrom), and a
 * full rotation through it against a mock that keeps Secrets Manager's label rules.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { DatadogVendorKeys } from '../../functions/adapters/datadog-vendor.js';
import { fetchVendorHttp } from '../../functions/adapters/http-vendor.js';
import { SecretVersionsModel } from '../../functions/adapters/local-secret-store.js';
import { SecretsManagerStore } from '../../functions/adapters/secrets-manager-store.js';
import { parseVendorKey, rotateIfDue, rotateVendorKey, runRotationStep } from '../../functions/core/rotate-vendor-key.js';
import type { VendorConfig } from '../../functions/core/vendor-config.js';
import { AWSCURRENT, AWSPENDING, AWSPREVIOUS } from '../../functions/core/vendor-ports.js';
import { DatadogFake } from '../../local/vendor-fakes/datadog.js';
import { MemoryVendorStateStore } from '../../local/vendor-fakes/memory-state.js';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:tvm-datadog-key-AbCdEf';
const sm = mockClient(SecretsManagerClient);
let model: SecretVersionsModel;

function notFound(message: string) {
  return new ResourceNotFoundException({ message, $metadata: {} });
}

/** The mock answers as Secrets Manager does, over the same label rules as the embedded store. */
function emulate(): void {
  sm.reset();
  model = new SecretVersionsModel();
  model.create(ARN);
  // A new CDK secret holds a generated placeholder as AWSCURRENT.
  model.put(ARN, randomUUID(), 'generated-placeholder', [AWSCURRENT]);
  sm.on(DescribeSecretCommand).callsFake((i) => ({ ARN: i.SecretId, Name: 'tvm-datadog-key', VersionIdsToStages: model.versions(i.SecretId) }));
  sm.on(GetSecretValueCommand).callsFake((i) => {
    const v = model.get(i.SecretId, { versionId: i.VersionId, stage: i.VersionStage });
    if (!v) throw notFound(`Secrets Manager can't find the specified secret value for staging label: ${i.VersionStage}`);
    return { ARN: i.SecretId, VersionId: v.versionId, SecretString: v.value, VersionStages: v.stages };
  });
  sm.on(PutSecretValueCommand).callsFake((i) => {
    model.put(i.SecretId, i.ClientRequestToken, i.SecretString, i.VersionStages);
    return { ARN: i.SecretId, VersionId: i.ClientRequestToken, VersionStages: i.VersionStages };
  });
  sm.on(UpdateSecretVersionStageCommand).callsFake((i) => {
    model.updateStage(i.SecretId, i.VersionStage, i.MoveToVersionId, i.RemoveFromVersionId);
    return { ARN: i.SecretId };
  });
}

let fake: DatadogFake;
let vendor: VendorConfig;
beforeAll(async () => {
  fake = new DatadogFake('datadog');
  await fake.start();
  vendor = { name: 'datadog', kind: 'datadog', baseUrl: fake.url, rotation: { every: '24h', overlap: '15m' }, broker: { allow: ['GET /api/v1/validate'], timeoutSeconds: 5 } };
});
afterAll(() => fake.close());
beforeEach(() => {
  emulate();
  fake.keys.clear();
});

function deps(store: SecretsManagerStore, state = new MemoryVendorStateStore(), clock = { now: () => Date.parse('2030-01-01T00:00:00Z') }) {
  return {
    secrets: store,
    keys: new DatadogVendorKeys(vendor, async () => fake.managementSecret(), fetchVendorHttp()),
    state,
    clock,
    audit: { event: () => undefined },
    newToken: randomUUID,
    owner: randomUUID(),
  };
}

describe('SecretsManagerStore', () => {
  it('sends PutSecretValue with the ClientRequestToken and VersionStages, UpdateSecretVersionStage with Move/RemoveFrom', async () => {
    const store = new SecretsManagerStore(new SecretsManagerClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
    const token = randomUUID();
    await store.putValue(ARN, token, '{"keyId":"k","key":"v"}', [AWSPENDING]);
    expect(sm.commandCalls(PutSecretValueCommand)[0].args[0].input).toEqual({
      SecretId: ARN,
      ClientRequestToken: token,
      SecretString: '{"keyId":"k","key":"v"}',
      VersionStages: [AWSPENDING],
    });
    // The same token and data again: Secrets Manager succeeds without a new version.
    await store.putValue(ARN, token, '{"keyId":"k","key":"v"}', [AWSPENDING]);
    await expect(store.putValue(ARN, token, 'other', [AWSPENDING])).rejects.toMatchObject({ name: 'ResourceExistsException' });

    const before = (await store.getValue(ARN, { stage: AWSCURRENT }))!.versionId;
    await store.updateStage(ARN, AWSCURRENT, token, before);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)[0].args[0].input).toEqual({
      SecretId: ARN,
      VersionStage: AWSCURRENT,
      MoveToVersionId: token,
      RemoveFromVersionId: before,
    });
    expect(await store.versions(ARN)).toEqual({ [before]: [AWSPREVIOUS], [token]: [AWSPENDING, AWSCURRENT] });
  });

  it('a missing label is undefined (ResourceNotFoundException), other errors propagate', async () => {
    const store = new SecretsManagerStore(new SecretsManagerClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
    expect(await store.getValue(ARN, { stage: AWSPENDING })).toBeUndefined();
    sm.on(GetSecretValueCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    await expect(store.getValue(ARN, { stage: AWSCURRENT })).rejects.toMatchObject({ name: 'AccessDeniedException' });
  });

  it('a full rotation through Secrets Manager: placeholder → first key → second key, then the first revoked after the overlap', async () => {
    const store = new SecretsManagerStore(new SecretsManagerClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
    const state = new MemoryVendorStateStore();
    const clock = { t: Date.parse('2030-01-01T00:00:00Z'), now: () => clock.t };
    const target = { vendor, secretId: ARN };
    await rotateIfDue(deps(store, state, clock), target); // replaces the placeholder, nothing to revoke
    const first = parseVendorKey((await store.getValue(ARN, { stage: AWSCURRENT }))!.value)!;
    expect(fake.liveKeys().map((k) => k.id)).toEqual([first.keyId]);

    // As Secrets Manager's RotateSecret drives it: the four steps with one token.
    const token = randomUUID();
    for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(deps(store, state, clock), target, step, token);
    const v = await store.versions(ARN);
    expect(v[token]).toEqual([AWSCURRENT]);
    const prev = Object.keys(v).find((id) => v[id].includes(AWSPREVIOUS))!;
    expect(parseVendorKey((await store.getValue(ARN, { versionId: prev }))!.value)!.keyId).toBe(first.keyId);
    expect(fake.liveKeys()).toHaveLength(2);

    clock.t += 16 * 60_000;
    const out = await rotateIfDue(deps(store, state, clock), target);
    expect(out.revoked).toEqual([first.keyId]);
    expect(Object.values(await store.versions(ARN)).flat()).toEqual([AWSCURRENT]);
    expect(fake.liveKeys()).toHaveLength(1);

    // An incident through the admin path.
    const now = await rotateVendorKey(deps(store, state, clock), target, { revokePrevious: true, reason: 'leak' });
    expect(fake.liveKeys().map((k) => k.id)).toEqual([now.keyId]);
  });
});
