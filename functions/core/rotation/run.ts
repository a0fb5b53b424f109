/**
 * One rotation run holding a vendor's lock, and Secrets Manager's four steps on it (createSecret,
 * testSecret, finishSecret; setSecret has nothing to do: API keys live at the vendor), crash-safe:
 * - the rotation is recorded (`inflight`, with the key's name) before the vendor is asked for a
 *   key, and the key is stored as AWSPENDING right after, so a rerun can finish it or find it by
 *   name and revoke it;
 * - the current key is recorded as retiring before AWSCURRENT moves off it;
 * - AWSCURRENT moves only onto a version holding a tested key;
 * - every write of the state passes only while this run's lock holds (a lock with an expiry, so
 *   a crashed run does not block).
 */
import type { VendorConfig } from '../vendor-config.js';
import { parseDurationSeconds } from '../vendor-config.js';
import { KeyRejected, LockLost, SecretStoreError, Throttled, TvmError } from '../errors.js';
import type { Audit, Clock } from '../ports.js';
import {
  AWSCURRENT,
  AWSPENDING,
  emptyVendorState,
  type InflightRotation,
  type SecretStore,
  type VendorEvent,
  type VendorKey,
  type VendorKeys,
  type VendorState,
  type VendorStateStore,
} from '../vendor-ports.js';
import { keyNameFor, parseVendorKey } from './vendor-key.js';

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
  /**
   * How long the lock holds without a release: at least as long as the invocation can run (the
   * rotate function derives it from its remaining time), so no second run starts while this one can still write.
   */
  lockTtlMs: number;
  /** Whether the vendor's management credential has been set; a vendor without it is left alone. */
  configured(): Promise<boolean>;
  /**
   * A run that must answer by `atMs` (epoch ms; an admin route inside API Gateway's 29 s): no
   * vendor call starts unless `vendorCallMs` (the longest one may take) still fits, nor a secret
   * store call unless `secretsCallMs` does. Stopping there is as safe as a crash at that point
   * (what recovery is built for): the scheduled run, which has no such deadline, finishes it.
   * @default none: the run goes on until its work is done (the scheduled run, Secrets Manager's steps)
   */
  deadline?: { atMs: number; vendorCallMs: number; secretsCallMs: number };
}

/**
 * Thrown (never answered as an error) when a run with a deadline stops before a call that could
 * outlast it; the use case answers what was done and what remains.
 */
export class DeadlineReached extends Error {
  constructor(readonly before: string) {
    // Stryker disable next-line StringLiteral: equivalent — the use case catches it; what is recorded is `before` (the deferred event's stoppedBefore)
    super(`deadline reached before ${before}`);
  }
}

/** `port` whose every method first checks that a call of `callMs` still ends before the deadline. */
function guarded<T extends object>(port: T, label: string, callMs: number, deps: RotateDeps): T {
  const atMs = deps.deadline!.atMs;
  return new Proxy(port, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        // A rejection, as the port's own failures are (a caller's `.catch` sees it).
        if (deps.clock.now() + callMs > atMs) return Promise.reject(new DeadlineReached(`${label}.${String(prop)}`));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

export interface RotateTarget {
  vendor: VendorConfig;
  /** The key secret (its ARN in AWS). */
  secretId: string;
}

export type RotationStep = 'createSecret' | 'setSecret' | 'testSecret' | 'finishSecret';
export const ROTATION_STEPS: readonly RotationStep[] = ['createSecret', 'setSecret', 'testSecret', 'finishSecret'];

export interface RotationOutcome {
  vendor: string;
  /**
   * rotated: a new key is current; resumed: an interrupted rotation was finished instead;
   * not_due: nothing to rotate; not_configured: the management credential is not set, nothing was done.
   */
  outcome: 'rotated' | 'resumed' | 'not_due' | 'not_configured';
  keyId?: string;
  previousKeyId?: string;
  /** Key ids revoked at the vendor in this run. */
  revoked: string[];
}

/**
 * A rotation the route's deadline stopped (`complete: false`): what this run recorded (`done`,
 * the vendor event types, in order) and what the next scheduled run does (`remaining`):
 * `rotate` (the rotation asked for, with its reason and incident flag), `finish_rotation` (test
 * the pending key and make it current), `revoke_retired` (revoke the keys it replaced).
 */
export interface DeferredRotation {
  vendor: string;
  outcome: 'deferred';
  complete: false;
  keyId?: string;
  done: string[];
  remaining: ('rotate' | 'finish_rotation' | 'revoke_retired')[];
  revoked: string[];
}

const MAX_EVENTS = 50;

/** A reason for the record and the log: never a key, never a vendor's free text. */
export function failureReason(e: unknown): string {
  if (e instanceof TvmError) return e.reason;
  return 'error';
}

export function stageOf(versions: Record<string, string[]>, stage: string): string | undefined {
  return Object.entries(versions).find(([, stages]) => stages.includes(stage))?.[0];
}

/** One run holding a vendor's lock: its state, and the step it is at (for the failure record). */
export class Run {
  step = 'start';
  revoked: string[] = [];
  /** The event types this run recorded, in order (what a deferred answer says was done). */
  readonly done: string[] = [];
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
      this.done.push(e.type);
      this.deps.audit.event(`vendor_${e.type}`, { vendor: this.name, ...e });
    }
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent — slice(-MAX_EVENTS) of at most MAX_EVENTS events is the same list
    if (this.st.events.length > MAX_EVENTS) this.st.events = this.st.events.slice(-MAX_EVENTS);
    await this.deps.state.save(this.st, this.deps.owner, this.deps.clock.now());
  }

  async currentKey(): Promise<{ versionId: string; key?: VendorKey } | undefined> {
    // Stryker disable next-line ObjectLiteral: equivalent — GetSecretValue with neither id nor stage answers AWSCURRENT (AWS, and both SecretStore adapters)
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
    // Stryker disable next-line ConditionalExpression: the "never delete" mutant is equivalent — a stored revokePrevious false or undefined reads as absent (only ever tested for truth)
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
    // Stryker disable next-line ObjectLiteral: equivalent — AWSCURRENT is on `token` here, so GetSecretValue without id or stage answers the same version
    const now = parseVendorKey((await this.deps.secrets.getValue(this.id, { versionId: token }))?.value);
    if (!now) throw new SecretStoreError('ResourceNotFoundException', { step: 'finishSecret', reason: 'current_version_empty' });
    const changed = this.st.currentKeyId !== now.keyId;
    previousKeyId ??= changed ? this.st.currentKeyId : undefined;
    this.st.currentKeyId = now.keyId;
    this.st.retiring = this.st.retiring.filter((r) => r.keyId !== now.keyId);
    if (this.st.inflight?.token === token) this.st.inflight = undefined;
    if (changed) this.st.requested = undefined;
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

/** Runs `fn` holding the vendor's rotation lock; a failure is recorded (`lastError`) before it is rethrown. */
export async function withLock<T>(deps: RotateDeps, target: RotateTarget, fn: (run: Run) => Promise<T>): Promise<T> {
  const name = target.vendor.name;
  const now = deps.clock.now();
  if (!(await deps.state.acquire(name, deps.owner, now, now + deps.lockTtlMs))) {
    throw new Throttled('rotation_in_progress', { vendor: name });
  }
  const runDeps = deps.deadline
    ? { ...deps, keys: guarded(deps.keys, 'vendor', deps.deadline.vendorCallMs, deps), secrets: guarded(deps.secrets, 'secrets', deps.deadline.secretsCallMs, deps) }
    : deps;
  const run = new Run(runDeps, target, (await deps.state.get(name)) ?? emptyVendorState(name));
  try {
    return await fn(run);
  } catch (e) {
    // Stopping at the deadline is no failure: nothing is recorded as an error.
    // Stryker disable next-line ConditionalExpression: equivalent while rotateVendorKey, the one caller with a deadline, answers DeadlineReached itself (defer)
    if (!(e instanceof DeadlineReached)) await run.fail(e);
    throw e;
  } finally {
    await deps.state.release(name, deps.owner).catch(() => undefined);
  }
}
