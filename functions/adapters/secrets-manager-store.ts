/**
 * SecretStore over AWS Secrets Manager: DescribeSecret for the version → labels map,
 * GetSecretValue by version or label, PutSecretValue with the ClientRequestToken as the version
 * id (idempotent for the same data), UpdateSecretVersionStage to move labels. Secrets Manager's
 * errors become `SecretStoreError` (its exception name kept as `awsName`), a call that does not
 * answer in time `UpstreamTimeout`: the caller meets tvm's errors, never the SDK's.
 */
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { SecretStoreError, UpstreamTimeout } from '../core/errors.js';
import type { SecretStore, SecretVersionValue } from '../core/vendor-ports.js';

const TIMEOUTS = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'AbortError']);

function isNotFound(e: unknown): boolean {
  return (e as Error)?.name === 'ResourceNotFoundException';
}

/** The SDK's error as tvm's: its name only (a message may quote a request). */
function storeError(e: unknown, operation: string): Error {
  const name = (e as Error)?.name ?? 'Error';
  if (TIMEOUTS.has(name)) return new UpstreamTimeout('secret_store_timeout', { operation });
  return new SecretStoreError(name, { operation, httpStatus: (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode });
}

export class SecretsManagerStore implements SecretStore {
  constructor(private readonly client: SecretsManagerClient) {}

  private async send<T>(operation: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      throw storeError(e, operation);
    }
  }

  async versions(secretId: string): Promise<Record<string, string[]>> {
    const out = await this.send('DescribeSecret', () => this.client.send(new DescribeSecretCommand({ SecretId: secretId })));
    const map: Record<string, string[]> = {};
    for (const [vid, stages] of Object.entries(out.VersionIdsToStages ?? {})) map[vid] = [...(stages ?? [])];
    return map;
  }

  async getValue(secretId: string, by: { versionId?: string; stage?: string }): Promise<SecretVersionValue | undefined> {
    try {
      const out = await this.client.send(new GetSecretValueCommand({ SecretId: secretId, VersionId: by.versionId, VersionStage: by.stage }));
      if (!out.VersionId || out.SecretString === undefined) return undefined;
      return { versionId: out.VersionId, value: out.SecretString, stages: [...(out.VersionStages ?? [])] };
    } catch (e) {
      // No version with that id or label (e.g. no AWSPENDING, or the empty version RotateSecret
      // creates): not an error for the caller.
      if (isNotFound(e)) return undefined;
      throw storeError(e, 'GetSecretValue');
    }
  }

  async putValue(secretId: string, versionId: string, value: string, stages: string[]): Promise<void> {
    await this.send('PutSecretValue', () =>
      this.client.send(new PutSecretValueCommand({ SecretId: secretId, ClientRequestToken: versionId, SecretString: value, VersionStages: stages })),
    );
  }

  async updateStage(secretId: string, stage: string, moveTo: string | undefined, removeFrom: string | undefined): Promise<void> {
    await this.send('UpdateSecretVersionStage', () =>
      this.client.send(new UpdateSecretVersionStageCommand({ SecretId: secretId, VersionStage: stage, MoveToVersionId: moveTo, RemoveFromVersionId: removeFrom })),
    );
  }
}
