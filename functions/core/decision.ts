/**
 * What a policy decision means for a use case: an allow goes on; anything else is a refusal
 * whose reason tells a policy that errored (fail closed) from one that forbade or never permitted.
 */
import { AccessDenied } from './errors.js';
import type { AuthzRequest, Decision } from './ports.js';
import type { VerifiedToken } from './verify-token.js';

/** The Cedar principal of a verified token: the same fields on every route and in `tvm policy eval`. */
export function principalOf(who: Pick<VerifiedToken, 'issuer' | 'iss' | 'sub' | 'claims'>): AuthzRequest['principal'] {
  return { issuer: who.issuer.name, iss: who.iss, sub: who.sub, claims: who.claims };
}

/**
 * @throws AccessDenied `policy_error` (a policy errored: the detail names it and the error) or
 *   `policy_deny` (a forbid decided, or no permit applied).
 */
export function requireAllow(decision: Decision): void {
  if (decision.allow) return;
  throw new AccessDenied(decision.errors.length ? 'policy_error' : 'policy_deny', { policies: decision.policyIds, errors: decision.errors });
}
