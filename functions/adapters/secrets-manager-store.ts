/**
 * SecretStore over AWS Secrets Manager: DescribeSecret for the version → labels map,
 * GetSecretValue by version or label, PutSecretValue with the ClientRequestToken as the version
 * id (idempotent for the same data), UpdateSecretVersionStage to move labels.
 */
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import type { SecretStore, SecretVersionValue } from '../core/vendor-ports.js';

function isNotFound(e: unknown): boolean {
  return (e as Error)?.name === 'ResourceNotFoundException';
}

export class SecretsManagerStore implements SecretStore {
  constructor(private readonly client: SecretsManagerClient) {}

  async versions(secretId: string): Promise<Record<string, string[]>> {
    const out = await this.client.send(new DescribeSecretCommand({ SecretId: secretId }));
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
      // No version with that id or label (e.g. no AWSPENDING): not an error for the caller.
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async putValue(secretId: string, versionId: string, value: string, stages: string[]): Promise<void> {
    await this.client.send(new PutSecretValueCommand({ SecretId: secretId, ClientRequestToken: versionId, SecretString: value, VersionStages: stages }));
  }

  async updateStage(secretId: string, stage: string, moveTo: string | undefined, removeFrom: string | undefined): Promise<void> {
    await this.client.send(
      new UpdateSecretVersionStageCommand({ SecretId: secretId, VersionStage: stage, MoveToVersionId: moveTo, RemoveFromVersionId: removeFrom }),
    );
  }
}
