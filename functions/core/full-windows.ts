/**
 * What a rate limiter may remember without asking its store again. The per-principal rate is a
 * fixed-window counter: once a window has answered "full" it stays full until it ends (its count
 * only grows), so remembering that answer is exact, not an estimate. The vend uses it to refuse a
 * principal that is known to be over its rate before it calls STS (the rate check otherwise runs
 * beside AssumeRole, see vend-credentials.ts), and the store is not asked again in that window.
 */
import type { RateLimiter } from './ports.js';

/** The start of the fixed window of `windowSeconds` that holds `nowEpoch`: the one rule, the limiter's and this memory's. */
export function windowStart(nowEpoch: number, windowSeconds: number): number {
  return Math.floor(nowEpoch / windowSeconds) * windowSeconds;
}

export interface RememberingRateLimiter extends RateLimiter {
  /** True when `key`'s window holding `nowEpoch` already answered full here. */
  knownFull(key: string, windowSeconds: number, nowEpoch: number): boolean;
}

/**
 * Wraps `limiter` so a full window is remembered until it ends. At most `maxWindows` are kept (the
 * oldest remembered is forgotten first): forgetting one costs a round trip, never a wrong answer.
 */
export function rememberFullWindows(limiter: RateLimiter, maxWindows = 10_000): RememberingRateLimiter {
  /** `key#windowStart` of each window seen full, oldest first (a Set keeps insertion order). */
  const full = new Set<string>();
  const id = (key: string, windowSeconds: number, nowEpoch: number) => `${key}#${windowStart(nowEpoch, windowSeconds)}`;
  // The id names one window, so a later instant outside it never matches: no end check is needed,
  // and an ended window is only memory until the bound pushes it out.
  const knownFull = (key: string, windowSeconds: number, nowEpoch: number): boolean => full.has(id(key, windowSeconds, nowEpoch));
  return {
    knownFull,
    async take(key, max, windowSeconds, nowEpoch) {
      if (knownFull(key, windowSeconds, nowEpoch)) return false;
      const taken = await limiter.take(key, max, windowSeconds, nowEpoch);
      if (!taken) {
        full.add(id(key, windowSeconds, nowEpoch));
        for (const oldest of full) {
          if (full.size <= maxWindows) break;
          full.delete(oldest);
        }
      }
      return taken;
    },
  };
}
