/**
 * Recovery: what a crashed or interrupted rotation left is brought to an end before anything
 * else — a pending key tested and made current (or rolled back), an empty pending version
 * (a RotateSecret whose createSecret never stored a key) filled under its own token, a finished
 * move recorded, a key the vendor may hold without a record found by name and revoked.
 */
import { AWSCURRENT, AWSPENDING, type InflightRotation } from '../vendor-ports.js';
import { type Run, stageOf } from './run.js';
import { parseVendorKey } from './vendor-key.js';

/**
 * Brings an interrupted rotation to an end: a pending key is tested and made current (or rolled
 * back), a finished move is recorded, a key the vendor may hold without a record is revoked.
 * Answers whether a rotation was finished.
 */
export async function settle(run: Run): Promise<{ keyId: string; previousKeyId?: string } | undefined> {
  run.step = 'settle';
  let finished: { keyId: string; previousKeyId?: string } | undefined;
  const versions = await run.deps.secrets.versions(run.id);
  const pending = stageOf(versions, AWSPENDING);
  if (pending) {
    if (!versions[pending].includes(AWSCURRENT)) {
      const held = parseVendorKey((await run.deps.secrets.getValue(run.id, { versionId: pending }))?.value);
      // An empty pending version: a rotation Secrets Manager started (RotateSecret) whose
      // createSecret never stored a key. It is finished here under its own token.
      await run.save({ type: 'rotation_resumed', reason: held ? 'pending_key_found' : 'pending_version_empty' });
      if (!held) await run.create(pending, { reason: 'resumed', by: 'schedule' });
      await run.test(pending);
    }
    finished = await run.finish(pending);
  }
  const inflight = run.st.inflight;
  if (inflight) {
    const now = await run.deps.secrets.versions(run.id);
    const stages = now[inflight.token];
    if (!stages) await cleanupOrphans(run, inflight);
    else if (stages.includes(AWSCURRENT)) finished = await run.finish(inflight.token);
    else if (!stages.includes(AWSPENDING)) {
      run.st.inflight = undefined;
      await run.save();
    }
  }
  // A key recorded as retiring that is still current (the move never happened) is not retiring.
  const current = await run.currentKey();
  if (current?.key && run.st.retiring.some((r) => r.keyId === current.key!.keyId)) {
    run.st.retiring = run.st.retiring.filter((r) => r.keyId !== current.key!.keyId);
    await run.save();
  }
  if (current?.key && run.st.currentKeyId !== current.key.keyId) {
    run.st.currentKeyId = current.key.keyId;
    await run.save();
  }
  return finished;
}

/** The vendor may hold the key of a rotation that crashed before storing it: find it by name. */
export async function cleanupOrphans(run: Run, inflight: InflightRotation): Promise<void> {
  run.step = 'cleanup';
  const listable = !!run.deps.keys.list;
  const found = await run.revokeByName(inflight);
  run.st.inflight = undefined;
  if (!listable) await run.save({ type: 'orphan_check_unavailable', reason: inflight.keyName });
  else if (found) await run.save();
  else await run.save({ type: 'rotation_abandoned', reason: 'key_not_created' });
}
