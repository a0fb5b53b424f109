/**
 * Rotation of a vendor key with Secrets Manager's four steps (createSecret, setSecret,
 * testSecret, finishSecret), crash-safe:
 * - the rotation is recorded (`inflight`, with the key's name) before the vendor is asked for a
 *   key, and the key is stored as AWSPENDING right after, so a rerun can finish it or find it by
 *   name and revoke it;
 * - the current key is recorded as retiring before AWSCURRENT moves off it, and revoked at the
 *   vendor only after the overlap (never while it is AWSCURRENT);
 * - one rotation per vendor at a time (a lock with an expiry, so a crashed run does not block).
 */
import type { VendorConfig } from './vendor-config.js';
import { parseDurationSeconds } from './vendor-config.js';
import { SecretStoreError, Throttled, TvmError } from './errors.js';
import type { Audit, Clock } from './ports.js';
import {
  AWSCURRENT,
  AWSPENDING,
  AWSPREVIOUS,
  emptyVendorState,
  type InflightRotation,
  KeyRejected,
  LockLost,
  type SecretStore,
  type VendorEvent,
  type VendorKey,
  type VendorKeys,
  VendorRefused,
  type VendorState,
  type VendorStateStore,
} from './vendor-ports.js';

export interface RotateDeps {
  secrets: SecretStore;
  keys: VendorKeys;
  state: VendorStateStore;
  clock: Clock;
  audit: Audit;
  /** A fresh ClientRequestToken (a UUID). */
  newToken(): string;
  /** Who holds the lock during this run (unique per invocation). */
  owner: string;
  /** How long the lock holds without a release. @default 5 minutes (the rotate function's timeout). */
  lockTtlMs?: number;
}

export interface RotateTarget {
  vendor: VendorConfig;
  /** The key secret (its ARN in AWS). */
  secretId: string;
}

export type RotationStep = 'createSecret' | 'setSecret' | 'testSecret' | 'finishSecret';

export interface RotationOutcome {
  vendor: string;
  /** rotated: a new key is current; resumed: an interrupted rotation was finished instead; not_due: nothing to rotate. */
  outcome: 'rotated' | 'resumed' | 'not_due';
  keyId?: string;
  previousKeyId?: string;
  /** Key ids revoked at the vendor in this run. */
  revoked: string[];
}

const MAX_EVENTS = 50;
export const DEFAULT_LOCK_TTL_MS = 5 * 60_000;

/** The name tvm gives a key at the vendor: the rotation's token, so a rerun can find it. */
export function keyNameFor(vendor: string, token: string): string {
  return `tvm-${vendor}-${token}`;
}

/** Parses a key secret's value; undefined for anything else (e.g. the placeholder a new secret holds). */
export function parseVendorKey(value: string | undefined): VendorKey | undefined {
  if (!value) return undefined;
  try {
    const v = JSON.parse(value) as Record<string, unknown>;
    if (v && typeof v.keyId === 'string' && v.keyId && typeof v.key === 'string' && v.key) return { keyId: v.keyId, key: v.key };
  } catch {
    // not JSON: not a key tvm stored
  }
  return undefined;
}

/** A reason for the record and the log: never a key, never a vendor's free text. */
export function failureReason(e: unknown): string {
  if (e instanceof TvmError) return e.reason;
  if (e instanceof KeyRejected) return `key_rejected_${e.status}`;
  if (e instanceof VendorRefused) return `vendor_refused_${e.operation}_${e.status}`;
  if (e instanceof LockLost) return 'lock_lost';
  return 'error';
}

function stageOf(versions: Record<string, string[]>, stage: string): string | undefined {
  return Object.entries(versions).find(([, stages]) => stages.includes(stage))?.[0];
}

/** One run holding a vendor's lock: its state, and the step it is at (for the failure record). */
class Run {
  step = 'start';
  revoked: string[] = [];
  /** Key ids this run tested (finishSecret moves AWSCURRENT only onto a tested key). */
  readonly tested = new Set<string>();
  constructor(
    readonly deps: RotateDeps,
    readonly target: RotateTarget,
    public st: VendorState,
  ) {}

  get name(): string {
    return this.target.vendor.name;
  }
  get id(): string {
    return this.target.secretId;
  }
  nowIso(offsetSeconds = 0): string {
    return new Date(this.deps.clock.now() + offsetSeconds * 1000).toISOString();
  }

  /** Appends events (also as audit lines) and writes the state, under the lock. */
  async save(...events: Omit<VendorEvent, 'at'>[]): Promise<void> {
    for (const e of events) {
      const event: VendorEvent = { at: this.nowIso(), ...e };
      this.st.events.push(event);
      this.deps.audit.event(`vendor_${e.type}`, { vendor: this.name, ...e });
    }
    if (this.st.events.length > MAX_EVENTS) this.st.events = this.st.events.slice(-MAX_EVENTS);
    await this.deps.state.save(this.st, this.deps.owner, this.deps.clock.now());
  }

  async currentKey(): Promise<{ versionId: string; key?: VendorKey } | undefined> {
    const v = await this.deps.secrets.getValue(this.id, { stage: AWSCURRENT });
    return v && { versionId: v.versionId, key: parseVendorKey(v.value) };
  }

  /**
   * createSecret: a new key at the vendor, stored under `token` as AWSPENDING. Idempotent, as
   * Secrets Manager's contract asks: a version `token` that already holds a key is left alone;
   * the empty version `RotateSecret` creates before it invokes this step is filled.
   */
  async create(token: string, meta: { reason?: string; by?: string; revokePrevious?: boolean } = {}): Promise<void> {
    this.step = 'createSecret';
    const versions = await this.deps.secrets.versions(this.id);
    if (versions[token]) {
      const held = await this.deps.secrets.getValue(this.id, { versionId: token });
      if (parseVendorKey(held?.value)) return;
      // Any other value cannot be replaced (Secrets Manager refuses new data under a used token).
      if (held?.value) throw new SecretStoreError('ResourceExistsException', { step: 'createSecret', reason: 'version_holds_other_data' });
    }
    // A retry of a createSecret that crashed between the vendor's create and the store: the key
    // it made (named after the token) is taken back before another is made.
    if (this.st.inflight?.token === token) await this.revokeByName(this.st.inflight);
    const inflight: InflightRotation = { token, keyName: keyNameFor(this.name, token), startedAt: this.nowIso(), ...meta };
    if (!inflight.revokePrevious) delete inflight.revokePrevious;
    this.st.inflight = inflight;
    await this.save({ type: 'rotation_started', by: meta.by, reason: meta.reason });
    const key = await this.deps.keys.create(inflight.keyName);
    try {
      await this.deps.secrets.putValue(this.id, token, JSON.stringify(key), [AWSPENDING]);
    } catch (e) {
      // The key exists only at the vendor: take it back now; if that fails too, the inflight
      // record (its name) lets the next run find and revoke it.
      await this.deps.keys.revoke(key.keyId).catch(() => undefined);
      throw e;
    }
    await this.save({ type: 'key_created', keyId: key.keyId });
  }

  /** Revokes what the vendor holds under a rotation's key name (none when it cannot list: recorded as unresolved). */
  async revokeByName(inflight: InflightRotation): Promise<number> {
    if (!this.deps.keys.list) {
      if (!this.st.unresolved.some((u) => u.keyName === inflight.keyName)) this.st.unresolved.push(inflight);
      return 0;
    }
    const found = (await this.deps.keys.list(inflight.keyName)).filter((k) => k.name === inflight.keyName);
    for (const k of found) {
      await this.deps.keys.revoke(k.keyId);
      this.revoked.push(k.keyId);
      await this.save({ type: 'orphan_revoked', keyId: k.keyId });
    }
    return found.length;
  }

  /** testSecret: the pending key works at the vendor; a key the vendor rejects is rolled back. */
  async test(token: string): Promise<void> {
    this.step = 'testSecret';
    const versions = await this.deps.secrets.versions(this.id);
    if (!versions[token]) throw new SecretStoreError('ResourceNotFoundException', { step: 'testSecret', reason: 'no_such_version' });
    if (versions[token].includes(AWSCURRENT)) return;
    const key = parseVendorKey((await this.deps.secrets.getValue(this.id, { versionId: token }))?.value);
    // No key under the token: createSecret has not run (or failed). The version stays pending, so
    // a retry of the steps, or the next scheduled run, creates the key under this token.
    if (!key) throw new SecretStoreError('ResourceNotFoundException', { step: 'testSecret', reason: 'pending_version_empty' });
    try {
      await this.deps.keys.test(key);
    } catch (e) {
      if (e instanceof KeyRejected) await this.rollback(token, key, failureReason(e));
      throw e;
    }
    if (this.st.inflight?.token === token) this.st.inflight.testedKeyId = key.keyId;
    this.tested.add(key.keyId);
    await this.save({ type: 'key_tested', keyId: key.keyId });
  }

  /** A pending key that does not work: revoked at the vendor, then unlabelled. */
  async rollback(token: string, key: VendorKey, reason: string): Promise<void> {
    this.step = 'rollback';
    await this.deps.keys.revoke(key.keyId);
    await this.deps.secrets.updateStage(this.id, AWSPENDING, undefined, token);
    if (this.st.inflight?.token === token) this.st.inflight = undefined;
    this.revoked.push(key.keyId);
    await this.save({ type: 'rotation_rolled_back', keyId: key.keyId, reason });
  }

  /** finishSecret: AWSCURRENT moves to `token`; the old key is recorded as retiring first. */
  async finish(token: string): Promise<{ keyId: string; previousKeyId?: string }> {
    this.step = 'finishSecret';
    const versions = await this.deps.secrets.versions(this.id);
    if (!versions[token]) throw new SecretStoreError('ResourceNotFoundException', { step: 'finishSecret', reason: 'no_such_version' });
    const currentVersion = stageOf(versions, AWSCURRENT);
    let previousKeyId: string | undefined;
    if (currentVersion !== token) {
      // AWSCURRENT moves only onto a version that holds a key, and a key that was tested (by this
      // run, or by the run that recorded it; else it is tested now).
      const pending = parseVendorKey((await this.deps.secrets.getValue(this.id, { versionId: token }))?.value);
      if (!pending) throw new SecretStoreError('ResourceNotFoundException', { step: 'finishSecret', reason: 'pending_version_empty' });
      const recorded = this.st.inflight?.token === token && this.st.inflight.testedKeyId === pending.keyId;
      if (!recorded && !this.tested.has(pending.keyId)) {
        await this.test(token);
        this.step = 'finishSecret';
      }
      const current = currentVersion ? parseVendorKey((await this.deps.secrets.getValue(this.id, { versionId: currentVersion }))?.value) : undefined;
      if (current && currentVersion) {
        previousKeyId = current.keyId;
        if (!this.st.retiring.some((r) => r.keyId === current.keyId)) {
          // An incident rotation (recorded with the rotation, so a rerun keeps it) skips the overlap.
          const incident = this.st.inflight?.token === token && this.st.inflight.revokePrevious;
          const overlap = incident ? 0 : parseDurationSeconds(this.target.vendor.rotation.overlap)!;
          this.st.retiring.push({ keyId: current.keyId, versionId: currentVersion, revokeAfter: this.nowIso(overlap) });
          await this.save();
        }
      }
      await this.deps.secrets.updateStage(this.id, AWSCURRENT, token, currentVersion);
    }
    if (versions[token].includes(AWSPENDING)) await this.deps.secrets.updateStage(this.id, AWSPENDING, undefined, token);
    const now = parseVendorKey((await this.deps.secrets.getValue(this.id, { versionId: token }))?.value);
    if (!now) throw new SecretStoreError('ResourceNotFoundException', { step: 'finishSecret', reason: 'current_version_empty' });
    const changed = this.st.currentKeyId !== now.keyId;
    previousKeyId ??= changed ? this.st.currentKeyId : undefined;
    this.st.currentKeyId = now.keyId;
    this.st.retiring = this.st.retiring.filter((r) => r.keyId !== now.keyId);
    if (this.st.inflight?.token === token) this.st.inflight = undefined;
    this.st.lastError = undefined;
    if (changed || !this.st.lastRotatedAt) {
      this.st.lastRotatedAt = this.nowIso();
      this.st.nextDueAt = this.nowIso(parseDurationSeconds(this.target.vendor.rotation.every)!);
      await this.save({ type: 'rotated', keyId: now.keyId, detail: previousKeyId ? { previousKeyId } : undefined });
    } else {
      await this.save();
    }
    return { keyId: now.keyId, previousKeyId };
  }

  /**
   * Brings an interrupted rotation to an end: a pending key is tested and made current (or rolled
   * back), a finished move is recorded, a key the vendor may hold without a record is revoked.
   * Answers whether a rotation was finished.
   */
  async settle(): Promise<{ keyId: string; previousKeyId?: string } | undefined> {
    this.step = 'settle';
    let finished: { keyId: string; previousKeyId?: string } | undefined;
    const versions = await this.deps.secrets.versions(this.id);
    const pending = stageOf(versions, AWSPENDING);
    if (pending) {
      if (!versions[pending].includes(AWSCURRENT)) {
        const held = parseVendorKey((await this.deps.secrets.getValue(this.id, { versionId: pending }))?.value);
        // An empty pending version: a rotation Secrets Manager started (RotateSecret) whose
        // createSecret never stored a key. It is finished here under its own token.
        await this.save({ type: 'rotation_resumed', reason: held ? 'pending_key_found' : 'pending_version_empty' });
        if (!held) await this.create(pending, { reason: 'resumed', by: 'schedule' });
        await this.test(pending);
      }
      finished = await this.finish(pending);
    }
    const inflight = this.st.inflight;
    if (inflight) {
      const now = await this.deps.secrets.versions(this.id);
      const stages = now[inflight.token];
      if (!stages) await this.cleanupOrphans(inflight);
      else if (stages.includes(AWSCURRENT)) finished = await this.finish(inflight.token);
      else if (!stages.includes(AWSPENDING)) {
        this.st.inflight = undefined;
        await this.save();
      }
    }
    // A key recorded as retiring that is still current (the move never happened) is not retiring.
    const current = await this.currentKey();
    if (current?.key && this.st.retiring.some((r) => r.keyId === current.key!.keyId)) {
      this.st.retiring = this.st.retiring.filter((r) => r.keyId !== current.key!.keyId);
      await this.save();
    }
    if (current?.key && this.st.currentKeyId !== current.key.keyId) {
      this.st.currentKeyId = current.key.keyId;
      await this.save();
    }
    return finished;
  }

  /** The vendor may hold the key of a rotation that crashed before storing it: find it by name. */
  async cleanupOrphans(inflight: InflightRotation): Promise<void> {
    this.step = 'cleanup';
    const listable = !!this.deps.keys.list;
    const found = await this.revokeByName(inflight);
    this.st.inflight = undefined;
    if (!listable) await this.save({ type: 'orphan_check_unavailable', reason: inflight.keyName });
    else if (found) await this.save();
    else await this.save({ type: 'rotation_abandoned', reason: 'key_not_created' });
  }

  /** Revokes retiring keys whose overlap has passed (all of them when `force`), never the current one. */
  async revokeRetired(force: boolean): Promise<void> {
    this.step = 'revokePrevious';
    const current = await this.currentKey();
    const now = this.deps.clock.now();
    let firstError: unknown;
    for (const r of [...this.st.retiring]) {
      if (!force && Date.parse(r.revokeAfter) > now) continue;
      if (current?.key?.keyId === r.keyId) {
        this.st.retiring = this.st.retiring.filter((x) => x !== r);
        await this.save();
        continue;
      }
      try {
        await this.deps.keys.revoke(r.keyId);
      } catch (e) {
        firstError ??= e;
        continue;
      }
      const versions = await this.deps.secrets.versions(this.id);
      if (versions[r.versionId]?.includes(AWSPREVIOUS)) await this.deps.secrets.updateStage(this.id, AWSPREVIOUS, undefined, r.versionId);
      this.st.retiring = this.st.retiring.filter((x) => x.keyId !== r.keyId);
      this.revoked.push(r.keyId);
      await this.save({ type: 'key_revoked', keyId: r.keyId, reason: force ? 'revoke_now' : 'overlap_passed' });
    }
    if (firstError) throw firstError;
  }

  /** An incident: every retired key is due for revocation now (recorded first, so a rerun revokes them too). */
  async expediteRetired(): Promise<void> {
    const now = this.nowIso();
    if (!this.st.retiring.some((r) => r.revokeAfter > now)) return;
    this.st.retiring = this.st.retiring.map((r) => ({ ...r, revokeAfter: r.revokeAfter > now ? now : r.revokeAfter }));
    await this.save();
  }

  async rotate(meta: { reason?: string; by?: string; revokePrevious?: boolean }): Promise<{ keyId: string; previousKeyId?: string }> {
    const token = this.deps.newToken();
    await this.create(token, meta);
    await this.test(token);
    return this.finish(token);
  }

  /** Records a failed step; the current key stays, the next run retries. */
  async fail(e: unknown): Promise<void> {
    const reason = failureReason(e);
    this.st.lastError = { at: this.nowIso(), step: this.step, reason };
    if (e instanceof LockLost) return;
    await this.save({ type: 'rotation_failed', reason, detail: { step: this.step } }).catch(() => undefined);
  }
}

async function withLock<T>(deps: RotateDeps, target: RotateTarget, fn: (run: Run) => Promise<T>): Promise<T> {
  const name = target.vendor.name;
  const now = deps.clock.now();
  if (!(await deps.state.acquire(name, deps.owner, now, now + (deps.lockTtlMs ?? DEFAULT_LOCK_TTL_MS)))) {
    throw new Throttled('rotation_in_progress', { vendor: name });
  }
  const run = new Run(deps, target, (await deps.state.get(name)) ?? emptyVendorState(name));
  try {
    return await fn(run);
  } catch (e) {
    await run.fail(e);
    throw e;
  } finally {
    await deps.state.release(name, deps.owner).catch(() => undefined);
  }
}

/**
 * Rotates a vendor's key now (`tvm rotate`, the admin route): finishes an interrupted rotation
 * if one is found, else runs the four steps; `revokePrevious` (an incident) revokes the retired
 * keys at once instead of after the overlap.
 * @throws Throttled (`rotation_in_progress`) when another rotation of this vendor holds the lock;
 *   the vendor's and the store's errors otherwise (recorded as `lastError` first).
 * @example await rotateVendorKey(deps, { vendor, secretId }, { reason: 'leaked', revokePrevious: true, by: admin });
 */
export async function rotateVendorKey(
  deps: RotateDeps,
  target: RotateTarget,
  opts: { reason?: string; by?: string; revokePrevious?: boolean } = {},
): Promise<RotationOutcome> {
  return withLock(deps, target, async (run) => {
    if (opts.revokePrevious) await run.expediteRetired();
    const resumed = await run.settle();
    const result = resumed ?? (await run.rotate({ reason: opts.reason, by: opts.by, revokePrevious: opts.revokePrevious }));
    if (opts.revokePrevious) {
      await run.expediteRetired();
      await run.revokeRetired(true);
    }
    return { vendor: target.vendor.name, outcome: resumed ? 'resumed' : 'rotated', ...result, revoked: run.revoked };
  });
}

/**
 * The scheduled run for one vendor: settle an interrupted rotation, rotate when due (or when
 * there is no key yet), revoke retired keys whose overlap has passed.
 */
export async function rotateIfDue(deps: RotateDeps, target: RotateTarget): Promise<RotationOutcome> {
  return withLock(deps, target, async (run) => {
    const resumed = await run.settle();
    let result: { keyId?: string; previousKeyId?: string } | undefined = resumed;
    let outcome: RotationOutcome['outcome'] = resumed ? 'resumed' : 'not_due';
    const due = !run.st.currentKeyId || !run.st.nextDueAt || Date.parse(run.st.nextDueAt) <= deps.clock.now();
    if (!resumed && due) {
      result = await run.rotate({ reason: 'scheduled', by: 'schedule' });
      outcome = 'rotated';
    }
    await run.revokeRetired(false);
    return { vendor: target.vendor.name, outcome, keyId: result?.keyId ?? run.st.currentKeyId, previousKeyId: result?.previousKeyId, revoked: run.revoked };
  });
}

/**
 * One step of a Secrets Manager rotation (the event `{SecretId, ClientRequestToken, Step}`), so
 * the rotate function also works as the secret's rotation Lambda. Each step is idempotent for
 * its token, as Secrets Manager retries a failed step with the same token.
 */
export async function runRotationStep(deps: RotateDeps, target: RotateTarget, step: RotationStep, token: string): Promise<void> {
  await withLock(deps, target, async (run) => {
    switch (step) {
      case 'createSecret':
        await run.create(token, { reason: 'secretsmanager', by: 'secretsmanager' });
        return;
      case 'setSecret':
        return; // API keys live at the vendor: nothing to set.
      case 'testSecret':
        await run.test(token);
        return;
      case 'finishSecret':
        await run.finish(token);
        await run.revokeRetired(false);
        return;
    }
  });
}

export interface VendorStatus {
  name: string;
  kind: VendorConfig['kind'];
  rotation: VendorConfig['rotation'];
  currentKeyId?: string;
  lastRotatedAt?: string;
  nextDueAt?: string;
  lastError?: VendorState['lastError'];
  rotationInProgress: boolean;
  retiring: { keyId: string; revokeAfter: string }[];
  unresolved: { keyName: string; startedAt: string }[];
  events: VendorEvent[];
}

/** What `tvm vendors` shows: key ids and times, never a key. */
export async function vendorStatus(deps: Pick<RotateDeps, 'state'>, vendor: VendorConfig): Promise<VendorStatus> {
  const st = (await deps.state.get(vendor.name)) ?? emptyVendorState(vendor.name);
  return {
    name: vendor.name,
    kind: vendor.kind,
    rotation: vendor.rotation,
    currentKeyId: st.currentKeyId,
    lastRotatedAt: st.lastRotatedAt,
    nextDueAt: st.nextDueAt,
    lastError: st.lastError,
    rotationInProgress: !!st.inflight,
    retiring: st.retiring.map((r) => ({ keyId: r.keyId, revokeAfter: r.revokeAfter })),
    unresolved: st.unresolved.map((u) => ({ keyName: u.keyName, startedAt: u.startedAt })),
    events: st.events,
  };
}
