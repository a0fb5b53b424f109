/** A vendor's rotation state as `tvm vendors` and `GET /v1/admin/vendors` show it: key ids and times, never a key. */
import type { VendorConfig } from '../vendor-config.js';
import { emptyVendorState, type VendorEvent, type VendorState } from '../vendor-ports.js';
import type { RotateDeps } from './run.js';

export interface VendorStatus {
  name: string;
  kind: VendorConfig['kind'];
  /** false until an operator sets the management credential: no rotation is attempted. */
  configured: boolean;
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
export async function vendorStatus(deps: Pick<RotateDeps, 'state' | 'configured'>, vendor: VendorConfig): Promise<VendorStatus> {
  const [stored, configured] = await Promise.all([deps.state.get(vendor.name), deps.configured()]);
  const st = stored ?? emptyVendorState(vendor.name);
  return {
    name: vendor.name,
    kind: vendor.kind,
    configured,
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
