/**
 * Bulk revocation as an incident needs it: selectors that name nothing are refusals, not
 * "revoked 0"; a failing role does not stop the others and is named; the answer lists what was
 * revoked; a dry run lists and writes nothing; fallbacks are counted as they happened; and the
 * leases come from an index query (principal, or live), never a scan.
 */
import { describe, expect, it } from 'vitest';
import type { DenyEntry, DenyOutcome } from '../../functions/core/ports.js';
import { revokeLeases, type BulkRevokeDeps } from '../../functions/core/revoke-bulk.js';
import { fixedClock, makeLease, memoryAudit, memoryCounter, MemoryLeaseStore, MemoryRevoker } from './revoke-fakes.js';

const READ = 'arn:aws:iam::123456789012:role/tvm/reports-read';
const DEPLOY = 'arn:aws:iam::123456789012:role/tvm/deploy';

/** A revoker whose deny fails for the roles in `failing` (an account whose revoker role is broken). */
class FlakyRevoker extends MemoryRevoker {
  readonly failing = new Set<string>();
  override async deny(roleArn: string, entries: DenyEntry[], ...rest: unknown[]): Promise<DenyOutcome> {
    if (this.failing.has(roleArn)) throw new Error(`AccessDenied on ${roleArn}`);
    return (super.deny as (...a: unknown[]) => Promise<DenyOutcome>).call(this, roleArn, entries, ...rest);
  }
}

function world(budget?: number) {
  const clock = fixedClock();
  const leases = new MemoryLeaseStore();
  const revoker = new FlakyRevoker(clock, budget);
  const audit = memoryAudit();
  const d: BulkRevokeDeps = {
    clock,
    leases,
    revoker,
    audit,
    metrics: memoryCounter(),
    config: { grants: [{ name: 'reports-read' }, { name: 'deploy' }], issuers: [{ name: 'dev' }, { name: 'github' }] } as never,
  };
  const a1 = makeLease({ principal: 'dev|alice', context: { task: 'INC-7' } }, clock);
  const a2 = makeLease({ principal: 'dev|alice', grant: 'deploy', roleArn: DEPLOY, context: { task: 'INC-7' } }, clock);
  const b1 = makeLease({ principal: 'dev|bob' }, clock);
  const b2 = makeLease({ principal: 'dev|bob', grant: 'deploy', roleArn: DEPLOY }, clock);
  const gone = makeLease({ principal: 'dev|alice', status: 'expired', context: { task: 'INC-7' } }, clock);
  leases.put(a1, a2, b1, b2, gone);
  return { d, leases, revoker, audit, a1, a2, b1, b2, gone };
}

const actor = { by: 'arn:aws:iam::1:user/oncall', reason: 'incident' };

describe('revokeLeases: refusals', () => {
  it.each([
    ['an unknown grant', { grant: 'reports-reed' }, 'not_found', 'unknown_grant'],
    ['an unknown issuer', { issuer: 'nope' }, 'not_found', 'unknown_issuer'],
    ['a principal of an unknown issuer', { principal: 'nope|agent-2' }, 'not_found', 'unknown_issuer'],
    ['a principal without an issuer', { principal: 'agent-2' }, 'invalid_request', 'bad_principal'],
    ['a principal with an empty sub', { principal: 'dev|' }, 'invalid_request', 'bad_principal'],
  ])('%s is refused, and nothing is written', async (_n, selector, code, reason) => {
    const w = world();
    await expect(revokeLeases(w.d, selector as never, actor)).rejects.toMatchObject({ code, reason });
    expect(w.revoker.calls).toEqual([]);
  });
});

describe('revokeLeases: what it answers', () => {
  it('by task (context.task): exactly the live leases of the task, listed', async () => {
    const w = world();
    const out = await revokeLeases(w.d, { task: 'INC-7' }, actor);
    expect(out).toMatchObject({ revoked: 2, fallbacks: 0 });
    expect(out.leaseIds.sort()).toEqual([w.a1.leaseId, w.a2.leaseId].sort());
    expect(out.failed).toBeUndefined();
    expect((await w.leases.get(w.b1.leaseId))!.status).toBe('active');
    expect((await w.leases.get(w.gone.leaseId))!.status).toBe('expired');
  });

  it('goes on past a failing role: the other roles are revoked, the failing one is named with its leases', async () => {
    const w = world();
    w.revoker.failing.add(READ);
    const out = await revokeLeases(w.d, { all: true }, actor, { pageSize: 1 });
    expect(out.leaseIds.sort()).toEqual([w.a2.leaseId, w.b2.leaseId].sort());
    expect(out.revoked).toBe(2);
    expect(out.failed).toEqual([
      { roleArn: READ, leaseIds: [expect.any(String)], reason: 'deny_failed' },
      { roleArn: READ, leaseIds: [expect.any(String)], reason: 'deny_failed' },
    ]);
    expect(out.failed!.flatMap((f) => f.leaseIds).sort()).toEqual([w.a1.leaseId, w.b1.leaseId].sort());
    expect((await w.leases.get(w.a1.leaseId))!.status).toBe('active');
    expect((await w.leases.get(w.b2.leaseId))!.status).toBe('revoked');
    expect(w.audit.events.some((e) => e.type === 'revoke_failed' && e.fields.roleArn === READ)).toBe(true);
  });

  it('--dry-run lists what it would revoke and writes nothing', async () => {
    const w = world();
    const out = await revokeLeases(w.d, { principal: 'dev|alice' }, actor, { dryRun: true });
    expect(out).toMatchObject({ revoked: 0, dryRun: true });
    expect(out.leaseIds.sort()).toEqual([w.a1.leaseId, w.a2.leaseId].sort());
    expect(w.revoker.calls).toEqual([]);
    expect((await w.leases.get(w.a1.leaseId))!.status).toBe('active');
  });

  it('by principal: asks the store for that principal\'s live leases (the principal index), not every live lease', async () => {
    const w = world();
    await revokeLeases(w.d, { principal: 'dev|bob' }, actor);
    expect(w.leases.queries.map((q) => ({ principal: q.principal, live: q.live }))).toEqual([{ principal: 'dev|bob', live: true }]);
  });

  it.each([
    ['grant', { grant: 'deploy' }, { grant: 'deploy', live: true }],
    ['issuer', { issuer: 'dev' }, { issuer: 'dev', live: true }],
    ['task', { task: 'INC-7' }, { task: 'INC-7', live: true }],
  ])('by %s: one live-lease query with the filter', async (_n, selector, query) => {
    const w = world();
    await revokeLeases(w.d, selector as never, actor);
    expect(w.leases.queries).toEqual([expect.objectContaining(query)]);
  });

  it('reports a fallback that happened, by lease id too (not fallbacks: 0)', async () => {
    // Room for the fallback (184 characters) but not for one session entry (191).
    const w = world(188);
    const one = await revokeLeases(w.d, { leaseId: w.b1.leaseId }, actor);
    expect(one).toMatchObject({ revoked: 1, leaseIds: [w.b1.leaseId], fallbacks: 1 });
    const bulk = await revokeLeases(w.d, { grant: 'deploy' }, actor, { pageSize: 1 });
    // Two pages on one role, each falling back: one role fell back.
    expect(bulk).toMatchObject({ revoked: 2, fallbacks: 1 });
  });

  it('by lease id: unknown is not_found; a second call revokes nothing', async () => {
    const w = world();
    expect(await revokeLeases(w.d, { leaseId: w.b1.leaseId }, actor)).toEqual({ revoked: 1, leaseIds: [w.b1.leaseId], fallbacks: 0 });
    expect(await revokeLeases(w.d, { leaseId: w.b1.leaseId }, actor)).toEqual({ revoked: 0, leaseIds: [], fallbacks: 0 });
    await expect(revokeLeases(w.d, { leaseId: 'Lnopeaaaaaaaaaaaaaaaaaaaaaa' }, actor)).rejects.toMatchObject({ code: 'not_found' });
  });
});
