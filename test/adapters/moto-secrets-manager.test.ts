/**
 * Conformance against moto, an AWS emulator nobody here wrote: the real SecretsManagerStore and
 * DynamoVendorStateStore over moto's Secrets Manager and DynamoDB, and a whole rotation the way
 * `RotateSecret` drives it (moto, given a RotationLambdaARN naming no moto Lambda, creates the
 * empty AWSPENDING version carrying the token and then fails to invoke: the state AWS leaves
 * before it calls the rotation function). Where moto is lenient and AWS strict, tvm's own model
 * pins AWS's documented behaviour instead (test/adapters/local-secret-store.test.ts).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { CreateSecretCommand, RotateSecretCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DatadogVendorKeys } from '../../functions/adapters/datadog-vendor.js';
import { DynamoVendorStateStore } from '../../functions/adapters/dynamodb-vendor-state.js';
import { fetchVendorHttp } from '../../functions/adapters/http-vendor.js';
import { SecretsManagerStore } from '../../functions/adapters/secrets-manager-store.js';
import { parseVendorKey, rotateIfDue, rotateVendorKey, runRotationStep, type RotateDeps } from '../../functions/core/rotate-vendor-key.js';
import type { VendorConfig } from '../../functions/core/vendor-config.js';
import { AWSCURRENT, AWSPENDING, AWSPREVIOUS } from '../../functions/core/vendor-ports.js';
import { secretsManagerClient } from '../../functions/shared/vendor-runtime.js';
import { ensureTable } from '../../local/dynamo.js';
import { DatadogFake } from '../../local/vendor-fakes/datadog.js';
import { startAnsweringServer } from '../helpers/answering-server.js';
import { hasMoto, MOTO_CREDENTIALS, startMoto, type Moto } from '../helpers/moto.js';
import { vendorStateStoreContract } from './vendor-state-contract.js';

const TABLE = 'tvm-moto';
const NO_LAMBDA = 'arn:aws:lambda:us-east-1:123456789012:function:tvm-rotate-not-in-moto';
const T0 = Date.parse('2031-01-01T00:00:00Z');

describe.skipIf(!hasMoto('Secrets Manager and vendor state conformance'))('against moto', () => {
  let moto: Moto;
  let sm: SecretsManagerClient;
  let store: SecretsManagerStore;
  let ddb: DynamoDBDocumentClient;
  let raw: DynamoDBClient;
  let fake: DatadogFake;
  let vendor: VendorConfig;

  beforeAll(async () => {
    moto = await startMoto();
    sm = secretsManagerClient({ region: 'us-east-1', credentials: MOTO_CREDENTIALS, endpoint: moto.endpoint });
    store = new SecretsManagerStore(sm);
    raw = new DynamoDBClient({ region: 'us-east-1', credentials: MOTO_CREDENTIALS, endpoint: moto.endpoint, maxAttempts: 1 });
    ddb = DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
    await ensureTable(raw, TABLE);
    fake = new DatadogFake('datadog');
    await fake.start();
    vendor = { name: 'datadog', kind: 'datadog', baseUrl: fake.url, rotation: { every: '24h', overlap: '15m' }, broker: { allow: ['GET /api/v1/validate'], timeoutSeconds: 5, keyCacheSeconds: 30 } };
  }, 60_000);
  afterAll(async () => {
    sm?.destroy();
    raw?.destroy();
    await fake?.close();
    await moto?.close();
  });

  /** A key secret as the stack creates it: a placeholder value as AWSCURRENT. */
  async function newSecret(): Promise<string> {
    const out = await sm.send(new CreateSecretCommand({ Name: `tvm-datadog-key-${randomUUID()}`, SecretString: 'tvm:not-configured' }));
    return out.ARN!;
  }

  describe('SecretsManagerStore', () => {
    it('versions and labels: PutSecretValue under the token, idempotent for the same data; moving AWSCURRENT leaves AWSPREVIOUS', async () => {
      const arn = await newSecret();
      const placeholder = (await store.getValue(arn, { stage: AWSCURRENT }))!;
      expect(placeholder.value).toBe('tvm:not-configured');
      expect(await store.getValue(arn, { stage: AWSPENDING })).toBeUndefined();
      const token = randomUUID();
      await store.putValue(arn, token, '{"keyId":"k","key":"v"}', [AWSPENDING]);
      await store.putValue(arn, token, '{"keyId":"k","key":"v"}', [AWSPENDING]);
      expect(await store.versions(arn)).toEqual({ [placeholder.versionId]: [AWSCURRENT], [token]: [AWSPENDING] });
      expect(await store.getValue(arn, { versionId: token })).toEqual({ versionId: token, value: '{"keyId":"k","key":"v"}', stages: [AWSPENDING] });
      await store.updateStage(arn, AWSCURRENT, token, placeholder.versionId);
      await store.updateStage(arn, AWSPENDING, undefined, token);
      expect(await store.versions(arn)).toEqual({ [placeholder.versionId]: [AWSPREVIOUS], [token]: [AWSCURRENT] });
    });

    it("Secrets Manager's refusals come back as SecretStoreError with the exception's name", async () => {
      await expect(store.versions(`tvm-missing-${randomUUID()}`)).rejects.toMatchObject({ name: 'SecretStoreError', awsName: 'ResourceNotFoundException', code: 'upstream_unavailable' });
      expect(await store.getValue(`tvm-missing-${randomUUID()}`, { stage: AWSCURRENT })).toBeUndefined();
      const arn = await newSecret();
      await expect(store.updateStage(arn, AWSCURRENT, randomUUID(), undefined)).rejects.toMatchObject({ name: 'SecretStoreError' });
    });

    it('each refusal names its operation and HTTP status for the log (not the message: it may quote a request)', async () => {
      const missing = `tvm-missing-${randomUUID()}`;
      await expect(store.versions(missing)).rejects.toMatchObject({ detail: { awsName: 'ResourceNotFoundException', operation: 'DescribeSecret', httpStatus: expect.any(Number) } });
      await expect(store.putValue(missing, randomUUID(), 'v', [AWSPENDING])).rejects.toMatchObject({ detail: { awsName: 'ResourceNotFoundException', operation: 'PutSecretValue', httpStatus: expect.any(Number) } });
      const arn = await newSecret();
      const e = (await store.updateStage(arn, AWSCURRENT, randomUUID(), undefined).catch((x: unknown) => x)) as { detail: Record<string, unknown> };
      expect(e.detail).toMatchObject({ operation: 'UpdateSecretVersionStage', httpStatus: expect.any(Number) });
      expect(Object.keys(e.detail).sort()).toEqual(['awsName', 'httpStatus', 'operation']);
    });

    it('a version that holds no string (a binary secret) is no value to get', async () => {
      const out = await sm.send(new CreateSecretCommand({ Name: `tvm-binary-${randomUUID()}`, SecretBinary: Buffer.from([1, 2, 3]) }));
      expect(await store.getValue(out.ARN!, { stage: AWSCURRENT })).toBeUndefined();
    });

    it('RotateSecret with a Lambda moto does not have: the empty AWSPENDING version carrying the token, nothing to get', async () => {
      const arn = await newSecret();
      const token = randomUUID();
      await expect(sm.send(new RotateSecretCommand({ SecretId: arn, ClientRequestToken: token, RotationLambdaARN: NO_LAMBDA }))).rejects.toMatchObject({
        name: 'ResourceNotFoundException',
      });
      expect((await store.versions(arn))[token]).toEqual([AWSPENDING]);
      expect(await store.getValue(arn, { versionId: token })).toBeUndefined();
      expect(await store.getValue(arn, { stage: AWSPENDING })).toBeUndefined();
    });
  });

  describe('DynamoVendorStateStore', () => {
    vendorStateStoreContract(() => new DynamoVendorStateStore(ddb, TABLE));
  });

  describe('a whole rotation driven the way RotateSecret drives it', () => {
    let clock: { t: number; now(): number };
    beforeEach(() => {
      clock = { t: T0, now: () => clock.t };
      fake.keys.clear();
      fake.faults = [];
    });
    const deps = (): RotateDeps => ({
      secrets: store,
      keys: new DatadogVendorKeys(vendor, async () => fake.managementSecret(), fetchVendorHttp()),
      state: new DynamoVendorStateStore(ddb, TABLE),
      clock,
      audit: { event: () => undefined },
      newToken: randomUUID,
      owner: randomUUID(),
      lockTtlMs: 60_000,
      configured: async () => true,
    });
    const keyOf = async (arn: string, versionId: string) => parseVendorKey((await store.getValue(arn, { versionId }))?.value);

    it('RotateSecret, then the four steps with its token: exactly one AWSCURRENT holding the new key, AWSPREVIOUS the old', async () => {
      const arn = await newSecret();
      const v = { ...vendor, name: `datadog-${randomUUID().slice(0, 8)}` };
      const target = { vendor: v, secretId: arn };
      await rotateIfDue(deps(), target); // the first key replaces the placeholder
      const firstVersion = (await store.getValue(arn, { stage: AWSCURRENT }))!.versionId;
      const first = (await keyOf(arn, firstVersion))!;
      expect(fake.isLive(first.key)).toBe(true);

      const token = randomUUID();
      await expect(sm.send(new RotateSecretCommand({ SecretId: arn, ClientRequestToken: token, RotationLambdaARN: NO_LAMBDA }))).rejects.toThrow();
      for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) await runRotationStep(deps(), target, step, token);

      const versions = await store.versions(arn);
      const holders = (label: string) => Object.keys(versions).filter((id) => versions[id].includes(label));
      expect(holders(AWSCURRENT)).toEqual([token]);
      expect(holders(AWSPREVIOUS)).toEqual([firstVersion]);
      expect(holders(AWSPENDING)).toEqual([]);
      const now = (await keyOf(arn, token))!;
      expect(now.keyId).not.toBe(first.keyId);
      expect(fake.isLive(now.key)).toBe(true);
      expect(fake.isLive(first.key)).toBe(true); // until the overlap has passed

      clock.t += 16 * 60_000;
      expect((await rotateIfDue(deps(), target)).revoked).toEqual([first.keyId]);
      expect(fake.isLive(first.key)).toBe(false);
    });

    it('a RotateSecret whose steps never ran (a jam): the admin rotation finishes it under its token', async () => {
      const arn = await newSecret();
      const v = { ...vendor, name: `datadog-${randomUUID().slice(0, 8)}` };
      const target = { vendor: v, secretId: arn };
      await rotateIfDue(deps(), target);
      const token = randomUUID();
      await expect(sm.send(new RotateSecretCommand({ SecretId: arn, ClientRequestToken: token, RotationLambdaARN: NO_LAMBDA }))).rejects.toThrow();
      const out = await rotateVendorKey(deps(), target, { reason: 'after a jam', by: 'admin' });
      expect(out.outcome).toBe('resumed');
      const versions = await store.versions(arn);
      expect(Object.keys(versions).filter((id) => versions[id].includes(AWSCURRENT))).toEqual([token]);
      expect(Object.values(versions).flat()).not.toContain(AWSPENDING);
      expect(fake.isLive((await keyOf(arn, token))!.key)).toBe(true);
    });
  });
});

describe('the Secrets Manager client gives up on a hung endpoint', () => {
  let server: Server;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    // Accepts connections and never answers.
    server = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('GetSecretValue that fails for another reason than not-found is an error, not "no value" (fail closed)', async () => {
    const dead = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const client = secretsManagerClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, endpoint: `http://127.0.0.1:${(dead.address() as { port: number }).port}` });
    const e = await new SecretsManagerStore(client).getValue('any', { stage: AWSCURRENT }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'upstream_timeout', reason: 'secret_store_timeout', detail: { operation: 'GetSecretValue' } });
    client.destroy();
    await new Promise<void>((resolve) => dead.close(() => resolve()));
  });

  // Secrets Manager (any AWS JSON service) may answer a timeout of its own: the SDK parses the
  // error type from the wire into the error's name, and the store reads it as a timeout.
  it.each(['RequestTimeout', 'RequestTimeoutException'])('an answer of type %s fails as upstream_timeout, not as a store error', async (type) => {
    const http = await startAnsweringServer();
    http.answer = () => ({ status: 400, headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type }, body: JSON.stringify({ __type: type, message: 'timed out' }) });
    const c = secretsManagerClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, endpoint: http.url });
    try {
      await expect(new SecretsManagerStore(c).versions('any')).rejects.toMatchObject({ code: 'upstream_timeout', reason: 'secret_store_timeout', detail: { operation: 'DescribeSecret' } });
      expect(http.seen.length).toBeGreaterThanOrEqual(1);
    } finally {
      c.destroy();
      await http.close();
    }
  });

  it('a call that never answers fails as upstream_timeout (the broker and rotation never wait past their budget)', async () => {
    const { port } = server.address() as { port: number };
    const c = secretsManagerClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, endpoint: `http://127.0.0.1:${port}` });
    await expect(new SecretsManagerStore(c).versions('any')).rejects.toMatchObject({ code: 'upstream_timeout', reason: 'secret_store_timeout' });
    c.destroy();
  }, 20_000);
});
