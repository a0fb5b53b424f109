/**
 * The rate limiter that remembers full windows (functions/core/full-windows.ts) against a
 * fixed-window counter written here as the store's model: the same answers for every sequence of
 * takes, never more questions to the store, and none for a window already seen full.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rememberFullWindows, windowStart } from '../../functions/core/full-windows.js';
import type { RateLimiter } from '../../functions/core/ports.js';

/** The store's rule, as DynamoDB's conditional ADD applies it: one count per key and window. */
class CountingStore implements RateLimiter {
  readonly counts = new Map<string, number>();
  asked = 0;
  async take(key: string, max: number, windowSeconds: number, nowEpoch: number): Promise<boolean> {
    this.asked++;
    const id = `${key}@${Math.floor(nowEpoch / windowSeconds)}`;
    const n = this.counts.get(id) ?? 0;
    if (n >= max) return false;
    this.counts.set(id, n + 1);
    return true;
  }
}

describe('rememberFullWindows', () => {
  it('answers a window seen full without asking the store again, until the window ends', async () => {
    const store = new CountingStore();
    const rates = rememberFullWindows(store);
    expect(await rates.take('p', 2, 60, 120)).toBe(true);
    expect(await rates.take('p', 2, 60, 130)).toBe(true);
    expect(rates.knownFull('p', 60, 130)).toBe(false);
    expect(await rates.take('p', 2, 60, 140)).toBe(false);
    expect(store.asked).toBe(3);
    expect(rates.knownFull('p', 60, 179)).toBe(true);
    expect(await rates.take('p', 2, 60, 179)).toBe(false);
    expect(store.asked).toBe(3);
    // The next window is asked for, and has room.
    expect(rates.knownFull('p', 60, 180)).toBe(false);
    expect(await rates.take('p', 2, 60, 180)).toBe(true);
    expect(store.asked).toBe(4);
    // Another key is not known full.
    expect(rates.knownFull('q', 60, 150)).toBe(false);
  });

  it('remembers nothing from a store that fails: the error reaches the caller each time', async () => {
    let asked = 0;
    const rates = rememberFullWindows({ take: async () => (asked++, Promise.reject(new Error('store down'))) });
    await expect(rates.take('p', 1, 60, 0)).rejects.toThrow('store down');
    await expect(rates.take('p', 1, 60, 0)).rejects.toThrow('store down');
    expect([asked, rates.knownFull('p', 60, 0)]).toEqual([2, false]);
  });

  it('keeps at most maxWindows, forgetting the oldest first (a forgotten window costs a question, not a wrong answer)', async () => {
    const store = new CountingStore();
    const rates = rememberFullWindows(store, 2);
    for (const key of ['a', 'b', 'c']) {
      await store.take(key, 1, 60, 0);
      expect(await rates.take(key, 1, 60, 0)).toBe(false);
    }
    expect(['a', 'b', 'c'].map((k) => rates.knownFull(k, 60, 10))).toEqual([false, true, true]);
    expect(await rates.take('a', 1, 60, 10)).toBe(false);
  });

  it('windowStart is the window that holds the instant', () => {
    expect([windowStart(0, 60), windowStart(59, 60), windowStart(60, 60), windowStart(1_799_999_999, 3600)]).toEqual([0, 0, 60, 1_799_996_400]);
  });

  it('answers exactly as the store would, for any sequence of takes, asking it no more often', async () => {
    const step = fc.record({ key: fc.constantFrom('p', 'q', 'r'), dt: fc.integer({ min: 0, max: 40 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 80 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), async (steps, max, bound) => {
        const plain = new CountingStore();
        const behind = new CountingStore();
        const rates = rememberFullWindows(behind, bound);
        let now = 1_000;
        for (const { key, dt } of steps) {
          now += dt;
          const known = rates.knownFull(key, 30, now);
          const want = await plain.take(key, max, 30, now);
          if (known) expect(want).toBe(false);
          expect(await rates.take(key, max, 30, now)).toBe(want);
        }
        expect(behind.asked).toBeLessThanOrEqual(plain.asked);
      }),
      { numRuns: 300 },
    );
  });
});
