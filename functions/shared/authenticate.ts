/**
 * Verifies the caller's JWT for a handler, with the runtime's issuers, keys, clock and replay guard.
 */
import { verifyToken, type VerifiedToken } from '../core/verify-token.js';
import { bearerToken, type HttpEvent } from './http.js';
import type { Base, TokenParts } from './compose.js';

export function authenticate(rt: Pick<Base, 'config' | 'clock'> & TokenParts, event: HttpEvent, allowRaw = false): Promise<VerifiedToken> {
  return verifyToken({ issuers: rt.config.issuers, keys: rt.keys, clock: rt.clock, replay: rt.replay }, bearerToken(event, allowRaw));
}
