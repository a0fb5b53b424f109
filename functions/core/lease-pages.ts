/**
 * Every lease a query matches, through the store's pages (for the small sets the limits and the
 * fallbacks need: one principal's live leases).
 */
import type { Lease, LeaseQuery, LeaseStore } from './ports.js';

export async function allLeases(store: Pick<LeaseStore, 'page'>, query: Omit<LeaseQuery, 'next' | 'limit'>): Promise<Lease[]> {
  const out: Lease[] = [];
  let next: string | undefined;
  do {
    const page = await store.page({ ...query, limit: 1000, next });
    out.push(...page.leases);
    next = page.next;
  } while (next);
  return out;
}
