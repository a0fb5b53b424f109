/**
 * Lease ids (functions/adapters/random-ids.ts): base32 as RFC 4648 writes it (lowercase, complete
 * 5-bit groups only), checked against the RFC's own test vectors and, for any bytes, against a
 * bit-string reference written here; and the lease id's shape.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { base32, randomIds } from '../../functions/adapters/random-ids.js';

const bytes = (s: string) => new TextEncoder().encode(s);

/** The reference: every bit in order, cut in fives, each five a letter of the RFC 4648 alphabet. */
function reference(b: Uint8Array, length: number): string {
  const bits = [...b].map((x) => x.toString(2).padStart(8, '0')).join('');
  const out: string[] = [];
  for (let i = 0; i + 5 <= bits.length && out.length < length; i += 5) out.push('abcdefghijklmnopqrstuvwxyz234567'[parseInt(bits.slice(i, i + 5), 2)]);
  return out.join('');
}

describe('base32', () => {
  it('writes RFC 4648’s test vectors (section 10), without padding or the last partial group', () => {
    // RFC: "" → "", f → MY======, fo → MZXQ====, foo → MZXW6===, foob → MZXW6YQ=, fooba → MZXW6YTB, foobar → MZXW6YTBOI======
    const rfc: [string, string][] = [['', ''], ['f', 'MY'], ['fo', 'MZXQ'], ['foo', 'MZXW6'], ['foob', 'MZXW6YQ'], ['fooba', 'MZXW6YTB'], ['foobar', 'MZXW6YTBOI']];
    for (const [input, encoded] of rfc) {
      const complete = Math.floor((input.length * 8) / 5);
      expect(base32(bytes(input), 99)).toBe(encoded.toLowerCase().slice(0, complete));
    }
  });

  it('stops at the length asked', () => {
    expect(base32(bytes('foobar'), 4)).toBe('mzxw');
    expect(base32(bytes('foobar'), 0)).toBe('');
  });

  it('equals the bit-string reference for any bytes and length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 70 }), (b, n) => {
        expect(base32(b, n)).toBe(reference(b, n));
      }),
      { numRuns: 500 },
    );
  });
});

describe('randomIds.leaseId', () => {
  it('is L and 26 base32 letters (130 of its 136 random bits), different every time', () => {
    const ids = Array.from({ length: 2000 }, () => randomIds.leaseId());
    for (const id of ids) expect(id).toMatch(/^L[a-z2-7]{26}$/);
    expect(new Set(ids).size).toBe(ids.length);
    // Every letter of the alphabet shows up in every position sooner or later (no stuck bits).
    for (let pos = 1; pos <= 26; pos++) expect(new Set(ids.map((id) => id[pos])).size).toBe(32);
  });
});
