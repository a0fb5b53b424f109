/**
 * An in-memory VendorStateStore with the same lock rules as the DynamoDB one (tests and
 * `--ephemeral` use it where no table is wanted).
 */
import { emptyVendorState, LockLost, type VendorState, type VendorStateStore } from '../../functions/core/vendor-ports.js';

export class MemoryVendorStateStore implements VendorStateStore {
  readonly items = new Map<string, { state?: VendorState; lockOwner?: string; lockExpiresAt?: number }>();

  async get(vendor: string): Promise<VendorState | undefined> {
    const s = this.items.get(vendor)?.state;
    return s && { ...emptyVendorState(vendor), ...structuredClone(s) };
  }

  async acquire(vendor: string, owner: string, nowMs: number, expiresAtMs: number): Promise<boolean> {
    const item = this.items.get(vendor) ?? {};
    if (item.lockOwner && item.lockOwner !== owner && (item.lockExpiresAt ?? 0) >= nowMs) return false;
    this.items.set(vendor, { ...item, lockOwner: owner, lockExpiresAt: expiresAtMs });
    return true;
  }

  async save(state: VendorState, owner: string, nowMs: number): Promise<void> {
    const item = this.items.get(state.vendor);
    if (!item || item.lockOwner !== owner || (item.lockExpiresAt ?? 0) <= nowMs) throw new LockLost(state.vendor);
    item.state = structuredClone(state);
  }

  async release(vendor: string, owner: string): Promise<void> {
    const item = this.items.get(vendor);
    if (item?.lockOwner === owner) {
      item.lockOwner = undefined;
      item.lockExpiresAt = undefined;
    }
  }
}
