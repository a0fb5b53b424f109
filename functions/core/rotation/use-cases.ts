/**
 * The rotation use cases: rotate now (`tvm rotate`, the admin route), the scheduled run over
 * every vendor, and one Secrets Manager step (the rotate function is each key secret's rotation
 * Lambda). A vendor whose management credential is not set is left alone by all of them: no
 * lock, no vendor request, no failure.
 */
import { InvalidRequest, Throttled } from '../errors.js';
import { AWSCURRENT, AWSPENDING } from '../vendor-ports.js';
import type { VendorConfig } from '../vendor-config.js';
import { settle } from './recovery.js';
import { expediteRetired, revokeRetired } from './retirement.js';
import {
  DeadlineReached,
  type DeferredRotation,
  failureReason,
  type Run,
  type RotateDeps,
  type RotateTarget,
  type RotationOutcome,
  type RotationStep,
  withLock,
} from './run.js';
import { parseVendorKey } from './vendor-key.js';

/**
 * Rotates a vendor's key now: finishes an interrupted rotation if one is found, else runs the
 * four steps; `revokePrevious` (an incident) revokes the retired keys at once instead of after
 * the overlap.
 * @throws InvalidRequest (`vendor_not_configured`) when the management credential is not set;
 *   Throttled (`rotation_in_progress`) when another rotation of this vendor holds the lock;
 *   the vendor's and the store's errors otherwise (recorded as `lastError` first).
 * @example await rotateVendorKey(deps, { vendor, secretId }, { reason: 'leaked', revokePrevious: true, by: admin });
 */
export async function rotateVendorKey(
  deps: RotateDeps,
  target: RotateTarget,
  opts: { reason?: string; by?: string; revokePrevious?: boolean } = {},
): Promise<RotationOutcome | DeferredRotation> {
  if (!(await deps.configured())) {
    throw new InvalidRequest('vendor_not_configured', { vendor: target.vendor.name }, "The vendor's management credential is not set.");
  }
  return withLock(deps, target, async (run) => {
    let rotated = false;
    try {
      if (opts.revokePrevious) await expediteRetired(run);
      const resumed = await settle(run);
      const result = resumed ?? (await run.rotate({ reason: opts.reason, by: opts.by, revokePrevious: opts.revokePrevious }));
      rotated = true;
      if (opts.revokePrevious) {
        await expediteRetired(run);
        await revokeRetired(run, true);
      }
      return { vendor: target.vendor.name, outcome: resumed ? 'resumed' : 'rotated', ...result, revoked: run.revoked };
    } catch (e) {
      if (!(e instanceof DeadlineReached)) throw e;
      return defer(run, rotated, e, opts);
    }
  });
}

/**
 * The deadline came first: what was asked and not done is left to the scheduled run, recorded
 * so it does it (a rotation not started becomes `requested`; a started one is `inflight`, which
 * recovery finishes; an incident's retired keys are already due), and answered; the audit event
 * names the call it stopped before.
 */
async function defer(run: Run, rotated: boolean, stop: DeadlineReached, opts: { reason?: string; by?: string; revokePrevious?: boolean }): Promise<DeferredRotation> {
  const remaining: DeferredRotation['remaining'] = [];
  // Stopped before asking the vendor for the key: nothing exists under the rotation just
  // recorded, so it is no rotation to finish (recovery would abandon it) but one still to do.
  // (Run.create records the rotation in flight just before that call.)
  if (stop.before === 'vendor.create' && !rotated) run.st.inflight = undefined;
  if (run.st.inflight) remaining.push('finish_rotation');
  else if (!rotated) {
    run.st.requested = { at: run.nowIso(), reason: opts.reason, by: opts.by, ...(opts.revokePrevious ? { revokePrevious: true } : {}) };
    remaining.push('rotate');
  }
  if (opts.revokePrevious && (run.st.retiring.length > 0 || remaining.length > 0)) remaining.push('revoke_retired');
  await run.save({ type: 'rotation_deferred', by: opts.by, reason: 'deadline', detail: { remaining, stoppedBefore: stop.before } });
  const done = run.done.filter((t) => t !== 'rotation_deferred');
  return { vendor: run.name, outcome: 'deferred', complete: false, keyId: run.st.currentKeyId, done, remaining, revoked: run.revoked };
}

/**
 * The scheduled run for one vendor: settle an interrupted rotation, rotate when due (or when
 * there is no key yet), revoke retired keys whose overlap has passed; nothing at all when the
 * vendor is not configured.
 */
export async function rotateIfDue(deps: RotateDeps, target: RotateTarget): Promise<RotationOutcome> {
  if (!(await deps.configured())) return { vendor: target.vendor.name, outcome: 'not_configured', revoked: [] };
  return withLock(deps, target, async (run) => {
    const resumed = await settle(run);
    let result: { keyId?: string; previousKeyId?: string } | undefined = resumed;
    let outcome: RotationOutcome['outcome'] = resumed ? 'resumed' : 'not_due';
    const due = !run.st.currentKeyId || !run.st.nextDueAt || Date.parse(run.st.nextDueAt) <= deps.clock.now();
    // A rotation an admin asked for, left by the route's deadline: done now, as it was asked.
    const requested = run.st.requested;
    if (requested || (!resumed && due)) {
      result = await run.rotate(requested ? { reason: requested.reason, by: requested.by, revokePrevious: requested.revokePrevious } : { reason: 'scheduled', by: 'schedule' });
      outcome = 'rotated';
    }
    await revokeRetired(run, false);
    return { vendor: target.vendor.name, outcome, keyId: result?.keyId ?? run.st.currentKeyId, previousKeyId: result?.previousKeyId, revoked: run.revoked };
  });
}

export type ScheduledResult = RotationOutcome | { vendor: string; outcome: 'failed' | 'busy'; reason: string };

/**
 * Every vendor, one at a time: one failing never blocks another; failures are answered, not
 * thrown (the caller counts them). `depsFor` answers undefined for a vendor with no secrets.
 */
export async function runScheduledRotations(
  vendors: readonly VendorConfig[],
  targetOf: (vendor: VendorConfig) => { deps: RotateDeps; target: RotateTarget } | undefined,
): Promise<ScheduledResult[]> {
  const results: ScheduledResult[] = [];
  for (const vendor of vendors) {
    const t = targetOf(vendor);
    if (!t) {
      results.push({ vendor: vendor.name, outcome: 'failed', reason: 'vendor_secret_not_configured' });
      continue;
    }
    try {
      results.push(await rotateIfDue(t.deps, t.target));
    } catch (e) {
      const reason = failureReason(e);
      results.push({ vendor: vendor.name, outcome: e instanceof Throttled && reason === 'rotation_in_progress' ? 'busy' : 'failed', reason });
    }
  }
  return results;
}

/**
 * One step of a Secrets Manager rotation (the event `{SecretId, ClientRequestToken, Step}`).
 * Each step is idempotent for its token, as Secrets Manager retries a failed step with the same
 * token. A vendor that is not configured gets no key: createSecret does nothing, testSecret
 * passes on the empty version, finishSecret takes AWSPENDING off it (the rotation ends with
 * AWSCURRENT where it was, a state Secrets Manager accepts).
 */
export async function runRotationStep(deps: RotateDeps, target: RotateTarget, step: RotationStep, token: string): Promise<void> {
  if (step === 'setSecret') return; // API keys live at the vendor: nothing to set.
  if (!(await deps.configured())) {
    const versions = await deps.secrets.versions(target.secretId);
    const held = parseVendorKey((await deps.secrets.getValue(target.secretId, { versionId: token }))?.value);
    if (held || !versions[token]) {
      // A key stored while the vendor was configured: carry on as usual.
    } else {
      if (step === 'finishSecret' && versions[token].includes(AWSPENDING) && !versions[token].includes(AWSCURRENT)) {
        await deps.secrets.updateStage(target.secretId, AWSPENDING, undefined, token);
      }
      deps.audit.event('vendor_not_configured', { vendor: target.vendor.name, step });
      return;
    }
  }
  await withLock(deps, target, async (run) => {
    switch (step) {
      case 'createSecret':
        await run.create(token, { reason: 'secretsmanager', by: 'secretsmanager' });
        return;
      case 'testSecret':
        await run.test(token);
        return;
      case 'finishSecret':
        await run.finish(token);
        await revokeRetired(run, false);
        return;
    }
  });
}
