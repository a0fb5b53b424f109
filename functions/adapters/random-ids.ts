/** Lease ids from the OS's CSPRNG. */
import { randomBytes } from 'node:crypto';
import type { IdGenerator } from '../core/ports.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

export function base32(bytes: Uint8Array, length: number): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5 && out.length < length) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

export const randomIds: IdGenerator = {
  leaseId: () => `L${base32(randomBytes(17), 26)}`,
};
