/**
 * The embedded secret store of the local stack: Secrets Manager's versions and staging labels
 * (AWSCURRENT, AWSPENDING, AWSPREVIOUS; ClientRequestToken as the version id), kept in one JSON
 * file under the data directory (mode 0600), or in memory. The rules are Secrets Manager's, so
 * rotation behaves locally as it does in AWS.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { SecretStoreError } from '../core/errors.js';
import { AWSCURRENT, AWSPENDING, AWSPREVIOUS, type SecretStore, type SecretVersionValue } from '../core/vendor-ports.js';

interface StoredVersion {
  /** Absent on the empty version `RotateSecret` creates before it invokes `createSecret`. */
  value?: string;
  stages: string[];
  /** Epoch ms, for pruning deprecated versions. */
  createdAt: number;
}

type Secrets = Record<string, { versions: Record<string, StoredVersion> }>;

/** Deprecated versions (no label) kept per secret, newest first; Secrets Manager also prunes them. */
const KEEP_DEPRECATED = 10;

/** Secrets Manager's label rules over plain data: shared by the local store and the tests' fake Secrets Manager. */
export class SecretVersionsModel {
  constructor(
    public secrets: Secrets = {},
    private readonly now: () => number = () => Date.now(),
  ) {}

  private secret(id: string, create = false) {
    let s = this.secrets[id];
    if (!s && create) s = this.secrets[id] = { versions: {} };
    if (!s) throw new SecretStoreError('ResourceNotFoundException', { message: "Secrets Manager can't find the specified secret." });
    return s;
  }

  has(id: string): boolean {
    return !!this.secrets[id];
  }

  create(id: string): void {
    this.secret(id, true);
  }

  versions(id: string): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [vid, v] of Object.entries(this.secret(id).versions)) out[vid] = [...v.stages];
    return out;
  }

  get(id: string, by: { versionId?: string; stage?: string }): SecretVersionValue | undefined {
    const s = this.secret(id);
    const stage = by.stage ?? (by.versionId ? undefined : AWSCURRENT);
    const entry = Object.entries(s.versions).find(([vid, v]) => (!by.versionId || vid === by.versionId) && (!stage || v.stages.includes(stage)));
    // An empty version has no value to get (GetSecretValue answers ResourceNotFoundException).
    return entry && entry[1].value !== undefined ? { versionId: entry[0], value: entry[1].value, stages: [...entry[1].stages] } : undefined;
  }

  put(id: string, versionId: string, value: string, stages: string[] | undefined, createIfMissing = false): void {
    const s = this.secret(id, createIfMissing);
    const existing = s.versions[versionId];
    // AWS (PutSecretValue, ClientRequestToken): the same token and the same data is ignored; the
    // same token and other data is ResourceExistsException, "you cannot modify an existing
    // version". The empty version RotateSecret created is filled (that is what createSecret does).
    if (existing && existing.value !== undefined) {
      if (existing.value !== value) throw new SecretStoreError('ResourceExistsException', { message: 'A version with this ClientRequestToken already exists with different data.' });
      return;
    }
    const labels = stages ?? [AWSCURRENT];
    if (labels.includes(AWSCURRENT)) {
      const current = Object.entries(s.versions).find(([, v]) => v.stages.includes(AWSCURRENT))?.[0];
      if (current) this.moveLabel(s, AWSPREVIOUS, current);
    }
    for (const label of labels) for (const v of Object.values(s.versions)) v.stages = v.stages.filter((x) => x !== label);
    s.versions[versionId] = { value, stages: [...labels], createdAt: this.now() };
    this.prune(s);
  }

  /**
   * What `RotateSecret` does before it invokes the rotation function's `createSecret`: an empty
   * version `token` labelled AWSPENDING. Refused, as AWS refuses it, while AWSPENDING is on
   * another version than AWSCURRENT (a rotation is still in progress).
   */
  startRotation(id: string, token: string): void {
    const s = this.secret(id);
    const pending = Object.entries(s.versions).find(([, v]) => v.stages.includes(AWSPENDING));
    if (pending && !pending[1].stages.includes(AWSCURRENT)) {
      throw new SecretStoreError('InvalidRequestException', { message: 'A previous rotation isn’t complete. That rotation will be reattempted.' });
    }
    if (pending) pending[1].stages = pending[1].stages.filter((x) => x !== AWSPENDING);
    s.versions[token] ??= { stages: [], createdAt: this.now() };
    s.versions[token].stages.push(AWSPENDING);
  }

  updateStage(id: string, stage: string, moveTo: string | undefined, removeFrom: string | undefined): void {
    const s = this.secret(id);
    const holder = Object.entries(s.versions).find(([, v]) => v.stages.includes(stage))?.[0];
    if (moveTo && !s.versions[moveTo]) throw new SecretStoreError('ResourceNotFoundException', { message: 'The version to move the label to does not exist.' });
    if (removeFrom && holder !== removeFrom) {
      throw new SecretStoreError('InvalidParameterException', { message: `The staging label ${stage} is not attached to version ${removeFrom}.` });
    }
    if (holder && holder !== moveTo && holder !== removeFrom) {
      throw new SecretStoreError('InvalidParameterException', { message: `The staging label ${stage} is attached to version ${holder}; name it in RemoveFromVersionId.` });
    }
    if (!moveTo) {
      if (holder) s.versions[holder].stages = s.versions[holder].stages.filter((x) => x !== stage);
      this.prune(s);
      return;
    }
    if (holder === moveTo) return;
    if (holder) s.versions[holder].stages = s.versions[holder].stages.filter((x) => x !== stage);
    s.versions[moveTo].stages.push(stage);
    // Moving AWSCURRENT puts AWSPREVIOUS on the version it left.
    if (stage === AWSCURRENT && holder) this.moveLabel(s, AWSPREVIOUS, holder);
    this.prune(s);
  }

  private moveLabel(s: { versions: Record<string, StoredVersion> }, label: string, to: string): void {
    for (const v of Object.values(s.versions)) v.stages = v.stages.filter((x) => x !== label);
    s.versions[to].stages.push(label);
  }

  private prune(s: { versions: Record<string, StoredVersion> }): void {
    // Newest first; versions made in the same millisecond by creation order (the versions object
    // keeps insertion order, in memory and through the file's JSON).
    const deprecated = Object.entries(s.versions)
      .map(([vid, v], order) => ({ vid, v, order }))
      .filter(({ v }) => v.stages.length === 0)
      .sort((a, b) => b.v.createdAt - a.v.createdAt || b.order - a.order);
    for (const { vid } of deprecated.slice(KEEP_DEPRECATED)) delete s.versions[vid];
  }
}

/**
 * SecretStore over a file (or memory when `file` is undefined). Secrets are created on first
 * write, as the deployed stack creates them with the CDK.
 */
export class LocalSecretStore implements SecretStore {
  private readonly model: SecretVersionsModel;

  constructor(private readonly file?: string) {
    let secrets: Secrets = {};
    if (file) {
      try {
        secrets = (JSON.parse(readFileSync(file, 'utf8')) as { secrets: Secrets }).secrets ?? {};
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    this.model = new SecretVersionsModel(secrets);
  }

  private persist(): void {
    if (!this.file) return;
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify({ secrets: this.model.secrets }), { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  async versions(secretId: string): Promise<Record<string, string[]>> {
    return this.model.has(secretId) ? this.model.versions(secretId) : {};
  }

  async getValue(secretId: string, by: { versionId?: string; stage?: string }): Promise<SecretVersionValue | undefined> {
    return this.model.has(secretId) ? this.model.get(secretId, by) : undefined;
  }

  async putValue(secretId: string, versionId: string, value: string, stages: string[]): Promise<void> {
    this.model.put(secretId, versionId, value, stages, true);
    this.persist();
  }

  async updateStage(secretId: string, stage: string, moveTo: string | undefined, removeFrom: string | undefined): Promise<void> {
    this.model.updateStage(secretId, stage, moveTo, removeFrom);
    this.persist();
  }

  /** `RotateSecret`'s first act (see SecretVersionsModel.startRotation); the caller then runs the four steps with `token`. */
  async startRotation(secretId: string, token: string): Promise<void> {
    this.model.startRotation(secretId, token);
    this.persist();
  }
}
