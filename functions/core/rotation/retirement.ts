/**
 * Retirement: a key that stopped being current waits out the overlap (workloads may still hold
 * it), then is revoked at the vendor; never while it is AWSCURRENT. An incident skips the wait.
 */
import { AWSPREVIOUS } from '../vendor-ports.js';
import { DeadlineReached, type Run } from './run.js';

/** Revokes retiring keys whose overlap has passed (all of them when `force`), never the current one. */
export async function revokeRetired(run: Run, force: boolean): Promise<void> {
  run.step = 'revokePrevious';
  const current = await run.currentKey();
  const now = run.deps.clock.now();
  let firstError: unknown;
  for (const r of [...run.st.retiring]) {
    if (!force && Date.parse(r.revokeAfter) > now) continue;
    if (current?.key?.keyId === r.keyId) {
      run.st.retiring = run.st.retiring.filter((x) => x !== r);
      await run.save();
      continue;
    }
    try {
      await run.deps.keys.revoke(r.keyId);
    } catch (e) {
      // Stryker disable next-line ConditionalExpression: equivalent — kept as firstError, the same DeadlineReached is thrown after the loop, whose later revocations the same deadline refuses too (time only moves on)
      if (e instanceof DeadlineReached) throw e;
      firstError ??= e;
      continue;
    }
    const versions = await run.deps.secrets.versions(run.id);
    if (versions[r.versionId]?.includes(AWSPREVIOUS)) await run.deps.secrets.updateStage(run.id, AWSPREVIOUS, undefined, r.versionId);
    run.st.retiring = run.st.retiring.filter((x) => x.keyId !== r.keyId);
    run.revoked.push(r.keyId);
    await run.save({ type: 'key_revoked', keyId: r.keyId, reason: force ? 'revoke_now' : 'overlap_passed' });
  }
  if (firstError) throw firstError;
}

/** An incident: every retired key is due for revocation now (recorded first, so a rerun revokes them too). */
export async function expediteRetired(run: Run): Promise<void> {
  const now = run.nowIso();
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent — without the early return (or with >=), the map below changes nothing and the record is saved unchanged
  if (!run.st.retiring.some((r) => r.revokeAfter > now)) return;
  // Stryker disable next-line EqualityOperator: equivalent — an entry due exactly now becomes `now` either way
  run.st.retiring = run.st.retiring.map((r) => ({ ...r, revokeAfter: r.revokeAfter > now ? now : r.revokeAfter }));
  await run.save();
}
