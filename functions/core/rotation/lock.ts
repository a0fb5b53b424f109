/**
 * How long a rotation's lock lasts. The rotate function's timeout is set from
 * `ROTATE_FUNCTION_TIMEOUT_SECONDS` (infra), and the lock lasts as long as an invocation can still
 * run plus a margin: a crashed run blocks the next one no longer than that, and no run can still
 * write once another has taken the lock (every save checks its lock has not expired).
 */
export const ROTATE_FUNCTION_TIMEOUT_SECONDS = 300;
export const LOCK_MARGIN_MS = 10_000;

/** The lock TTL for an invocation with `remainingMs` left (Lambda's `getRemainingTimeInMillis()`), else the function's whole timeout. */
export function rotationLockTtlMs(remainingMs?: number): number {
  return (remainingMs ?? ROTATE_FUNCTION_TIMEOUT_SECONDS * 1000) + LOCK_MARGIN_MS;
}
