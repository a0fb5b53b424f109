/** allLeases: every lease a query matches, page after page, asking 1000 at a time. */
import { describe, expect, it } from 'vitest';
import { allLeases } from '../../functions/core/lease-pages.js';
import type { LeaseQuery } from '../../functions/core/ports.js';
import { makeLease } from './revoke-fakes.js';

describe('allLeases', () => {
  it('follows the cursor to the end, with the query and the largest page each time', async () => {
    const leases = Array.from({ length: 5 }, () => makeLease());
    const asked: LeaseQuery[] = [];
    const store = {
      async page(q: LeaseQuery) {
        asked.push(q);
        const from = q.next ? Number(q.next) : 0;
        return { leases: leases.slice(from, from + 2), next: from + 2 < leases.length ? String(from + 2) : undefined };
      },
    };
    expect(await allLeases(store, { principal: 'dev|alice', live: true })).toEqual(leases);
    expect(asked).toEqual([
      { principal: 'dev|alice', live: true, limit: 1000, next: undefined },
      { principal: 'dev|alice', live: true, limit: 1000, next: '2' },
      { principal: 'dev|alice', live: true, limit: 1000, next: '4' },
    ]);
  });
});
