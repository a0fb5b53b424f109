/**
 * Rotation of vendor keys with Secrets Manager's four steps. The parts live in `rotation/`:
 * `run.ts` (one run under the lock, and the steps), `recovery.ts` (finishing what a crash left),
 * `retirement.ts` (revoking old keys after the overlap), `status.ts`, `use-cases.ts`.
 */
export { isConfiguredValue, keyNameFor, NOT_CONFIGURED, parseVendorKey } from './rotation/vendor-key.js';
export { DeadlineReached, type DeferredRotation, failureReason, ROTATION_STEPS, type RotateDeps, type RotateTarget, type RotationOutcome, type RotationStep } from './rotation/run.js';
export { rotateIfDue, rotateVendorKey, runRotationStep, runScheduledRotations, type ScheduledResult } from './rotation/use-cases.js';
export { vendorStatus, type VendorStatus } from './rotation/status.js';
