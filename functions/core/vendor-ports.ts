/**
 * The ports of brokered vendor keys: where keys are kept (SecretStore, Secrets Manager's model of
 * versions and staging labels), how a vendor makes and revokes them (VendorKeys), tvm's record of
 * each vendor's rotation (VendorStateStore), and the wire to the vendor (VendorHttp).
 */

export const AWSCURRENT = 'AWSCURRENT';
export const AWSPENDING = 'AWSPENDING';
export const AWSPREVIOUS = 'AWSPREVIOUS';

/** The value kept in a vendor's key secret (JSON): the vendor's id for the key, and the key. */
export interface VendorKey {
  keyId: string;
  key: string;
}

export interface SecretVersionValue {
  versionId: string;
  value: string;
  stages: string[];
}

/**
 * A secret with versions and staging labels, as AWS Secrets Manager keeps them. One label is on
 * at most one version; a version without labels is deprecated.
 */
export interface SecretStore {
  /** Version id → its staging labels (DescribeSecret's `VersionIdsToStages`). */
  versions(secretId: string): Promise<Record<string, string[]>>;
  /** The value of a version, by id or by label; undefined when there is none. */
  getValue(secretId: string, by: { versionId?: string; stage?: string }): Promise<SecretVersionValue | undefined>;
  /**
   * Stores `value` as version `versionId` (the ClientRequestToken) with `stages`, moving those
   * labels from any other version. Idempotent for the same id and value.
   */
  putValue(secretId: string, versionId: string, value: string, stages: string[]): Promise<void>;
  /**
   * Moves `stage` to `moveTo` (removing it from `removeFrom`), or with `moveTo` undefined just
   * removes it from `removeFrom`. Moving AWSCURRENT puts AWSPREVIOUS on the version it left.
   */
  updateStage(secretId: string, stage: string, moveTo: string | undefined, removeFrom: string | undefined): Promise<void>;
}

/** A key as a vendor lists it: never the key itself. */
export interface ListedKey {
  keyId: string;
  name: string;
}

/**
 * One vendor's key management, authenticated with the vendor's management credential.
 * Errors: `KeyRejected` when the vendor says a key does not work; `UpstreamUnavailable` /
 * `UpstreamTimeout` when the vendor cannot be reached or answers 5xx/429; `VendorRefused` for
 * other refusals (the management credential lacks a permission, a bad request).
 */
export interface VendorKeys {
  /** Creates a key named `name` (tvm names keys after the rotation, so a rerun can find them). */
  create(name: string): Promise<VendorKey>;
  /** Calls the vendor with `key`; resolves when it works. */
  test(key: VendorKey): Promise<void>;
  /** Revokes the key; a key the vendor no longer knows counts as revoked. */
  revoke(keyId: string): Promise<void>;
  /** Keys whose name starts with `prefix`; absent when the vendor cannot list. */
  list?(prefix: string): Promise<ListedKey[]>;
  /** The headers that carry `key` on a brokered call. */
  keyHeaders(key: string): Record<string, string>;
}

// The vendor errors are TvmErrors (stable codes and statuses): kept importable from here.
export { KeyRejected, LockLost, VendorRefused } from './errors.js';

/** A retired key waiting out the overlap: revoked at the vendor once `revokeAfter` has passed. */
export interface RetiringKey {
  keyId: string;
  versionId: string;
  /** ISO-8601. */
  revokeAfter: string;
}

/** A rotation under way: written before the vendor is asked for a key, so a rerun can find it. */
export interface InflightRotation {
  token: string;
  keyName: string;
  /** ISO-8601. */
  startedAt: string;
  reason?: string;
  by?: string;
  /** An incident: the key this rotation replaces is revoked without waiting out the overlap. */
  revokePrevious?: boolean;
  /** The key id testSecret found working (finishSecret moves AWSCURRENT only onto a tested key). */
  testedKeyId?: string;
}

export interface VendorEvent {
  /** ISO-8601. */
  at: string;
  type: string;
  keyId?: string;
  by?: string;
  reason?: string;
  detail?: Record<string, unknown>;
}

/** tvm's record of one vendor's rotation. Key ids only, never a key. */
export interface VendorState {
  vendor: string;
  currentKeyId?: string;
  /** ISO-8601. */
  lastRotatedAt?: string;
  /** ISO-8601. */
  nextDueAt?: string;
  lastError?: { at: string; step: string; reason: string };
  inflight?: InflightRotation;
  /**
   * A rotation an admin asked for that the route's deadline left to the scheduled run (which
   * rotates at once, with this reason and incident flag, whether or not the vendor is due).
   */
  requested?: { at: string; reason?: string; by?: string; revokePrevious?: boolean };
  retiring: RetiringKey[];
  /** Keys a crash may have left at the vendor that tvm could not list to clean up (by name). */
  unresolved: InflightRotation[];
  /** The latest events, newest last (bounded). */
  events: VendorEvent[];
}

export function emptyVendorState(vendor: string): VendorState {
  return { vendor, retiring: [], unresolved: [], events: [] };
}

export interface VendorStateStore {
  get(vendor: string): Promise<VendorState | undefined>;
  /**
   * Takes the vendor's rotation lock for `owner` until `expiresAtMs` (epoch ms); false when
   * another owner holds an unexpired lock.
   */
  acquire(vendor: string, owner: string, nowMs: number, expiresAtMs: number): Promise<boolean>;
  /**
   * Writes the state; fails with `LockLost` unless `owner` still holds the lock and it has not
   * expired at `nowMs` (epoch ms): a run that outlived its lock writes nothing.
   */
  save(state: VendorState, owner: string, nowMs: number): Promise<void>;
  release(vendor: string, owner: string): Promise<void>;
}

export interface VendorRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array;
  timeoutMs: number;
  /** Answers larger than this are refused (UpstreamUnavailable). */
  maxResponseBytes: number;
}

export interface VendorResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** The wire: one HTTP exchange. Throws UpstreamTimeout / UpstreamUnavailable. */
export interface VendorHttp {
  send(request: VendorRequest): Promise<VendorResponse>;
}
