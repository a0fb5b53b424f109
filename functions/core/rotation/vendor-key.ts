/**
 * What a vendor's secrets hold: the key secret's JSON value, the name tvm gives a key at the
 * vendor, and the value that marks a management credential nobody has set yet.
 */
import type { VendorKey } from '../vendor-ports.js';

/** The name tvm gives a key at the vendor: the rotation's token, so a rerun can find it. */
export function keyNameFor(vendor: string, token: string): string {
  return `tvm-${vendor}-${token}`;
}

/** Parses a key secret's value; undefined for anything else (e.g. the placeholder a new secret holds). */
export function parseVendorKey(value: string | undefined): VendorKey | undefined {
  // Stryker disable next-line ConditionalExpression: the "never return" mutant is equivalent — JSON.parse of undefined or "" throws, and the catch answers undefined
  if (!value) return undefined;
  try {
    const v = JSON.parse(value) as Record<string, unknown>;
    if (v && typeof v.keyId === 'string' && v.keyId && typeof v.key === 'string' && v.key) return { keyId: v.keyId, key: v.key };
  } catch {
    // not JSON: not a key tvm stored
  }
  return undefined;
}

/**
 * The value a vendor secret holds until an operator sets it (the stack creates both secrets of
 * a vendor with it). Not a credential: it says so.
 */
export const NOT_CONFIGURED = 'tvm:not-configured';

/**
 * Whether a management credential has been set: false for no value, an empty one, or the
 * placeholder. Anything else counts as set (a wrong credential is a failure, not "not configured").
 */
export function isConfiguredValue(value: string | undefined): boolean {
  const v = value?.trim();
  return !!v && v !== NOT_CONFIGURED;
}
