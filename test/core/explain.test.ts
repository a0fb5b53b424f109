/**
 * Every reason code tvm raises has words in `tvm explain`: the codes are derived from functions/
 * (each `new SomeError('code'` and `reason: 'code'`), not copied by hand, so a new code without
 * words fails here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { explainRequest, reasonInWords, REASONS } from '../../functions/core/explain.js';
import type { AuditEvent } from '../../functions/core/audit-events.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : f.endsWith('.ts') ? [join(dir, f)] : []));
}

/**
 * The source as written. Under Stryker the files are instrumented in place: each literal becomes
 * `stryMutAct_x("6") ? "" : (stryCov_x("6"), 'code')`; put the literal back so the scan reads
 * the same code in a mutation run as in `npm test`.
 */
function uninstrumented(text: string): string {
  return text.replace(/stryMutAct_\w+\("\d+"\) \? (?:""|"Stryker was here!") : \(stryCov_\w+\((?:"\d+"(?:, )?)+\), ('[^'\n]*')\)/g, '$1');
}

const CODES = new Set<string>();
for (const f of files('functions')) {
  const text = uninstrumented(readFileSync(f, 'utf8'));
  // VendorRefused's first argument is an operation; its reason is `vendor_refused_<op>_<status>` (tested below).
  for (const m of text.matchAll(/new (?!VendorRefused)[A-Z]\w*\(\s*'([a-z][a-z0-9_]*)'/g)) CODES.add(m[1]);
  // A reason chosen by a condition: `new AccessDenied(x ? 'a' : 'b', …)`.
  for (const m of text.matchAll(/new [A-Z]\w*\([^'()]*\? '([a-z][a-z0-9_]*)' : '([a-z][a-z0-9_]*)'/g)) (CODES.add(m[1]), CODES.add(m[2]));
  for (const m of text.matchAll(/super\('[a-z_]+', '[^']*', '([a-z][a-z0-9_]*)'/g)) CODES.add(m[1]);
}
// Codes that are TvmError codes in errors.ts constructors' first argument, not reasons.
for (const code of ['invalid_request', 'invalid_token', 'access_denied', 'not_found', 'token_replayed', 'payload_too_large', 'throttled', 'upstream_unavailable', 'upstream_timeout', 'upstream_refused', 'internal']) CODES.delete(code);

const event = (reason: string, over: Partial<AuditEvent> = {}): AuditEvent => ({ at: '2030-01-01T00:00:00.000Z', type: 'denied', name: 'vend', reason, ...over });

describe('tvm explain', () => {
  it('reads the codes through Stryker\'s instrumentation too (a mutation run scans the same codes)', () => {
    const instrumented = `throw new AccessDenied(decision.errors.length ? stryMutAct_9fa48("5") ? "" : (stryCov_9fa48("5"), 'policy_error') : stryMutAct_9fa48("6") ? "" : (stryCov_9fa48("6", "7"), 'policy_deny'), {`;
    expect(uninstrumented(instrumented)).toBe("throw new AccessDenied(decision.errors.length ? 'policy_error' : 'policy_deny', {");
  });

  it('finds the codes it must cover', () => {
    expect(CODES.size).toBeGreaterThan(40);
    expect(CODES).toContain('policy_deny');
    expect(CODES).toContain('token_expired');
  });

  it.each([...CODES].sort())('%s has words of its own', (code) => {
    expect(REASONS[code], `no words for ${code}`).toBeDefined();
    expect(reasonInWords(event(code))).not.toMatch(/reason code/);
  });

  it.each([
    ['policy_deny', { policies: [] }, 'no policy permits this request (deny by default)'],
    ['policy_deny', { policies: ['no-restricted-data-for-long'] }, 'policy no-restricted-data-for-long forbids this request'],
    ['duration_out_of_bounds', { detail: { requested: 60 } }, 'the requested duration (60 s) is outside 900–3600 seconds'],
    ['token_expired', { detail: { issuer: 'dev', exp: 1893456000 } }, 'the token had expired at 2030-01-01T00:00:00.000Z when it was presented (issuer dev)'],
    ['claim_nbf_check_failed', {}, 'the token is not valid yet'],
    ['header_crit_refused', {}, 'the token header carries crit, which tvm refuses'],
    ['vendor_refused_create_401', {}, "the vendor refused tvm's create call (HTTP 401)"],
  ])('%s in words: %j', (code, over, words) => {
    expect(reasonInWords(event(code, over as Partial<AuditEvent>))).toContain(words);
  });

  it('explains a request from its events: outcome, reason and code', () => {
    const lines = explainRequest('r1', [
      event('policy_deny', { requestId: 'r1', route: 'POST /v1/vend', principal: 'dev|a', grant: 'reports-read', status: 403, policies: [] }),
      event('token_expired', { requestId: 'other', route: 'POST /v1/vend' }),
    ]);
    expect(lines).toEqual([
      '2030-01-01T00:00:00.000Z  POST /v1/vend by dev|a for grant reports-read: denied (HTTP 403)',
      'because no policy permits this request (deny by default) [policy_deny]',
    ]);
    expect(explainRequest('nope', [])).toEqual([]);
  });
});
