/**
 * Cedar as the policy engine: policies and schema are checked at load, preparsed once, and each
 * decision uses the stateful API (no re-parsing on the hot path). Deny by default.
 */
import { setFlagsFromString } from 'node:v8';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { ConfigProblem, TvmConfig } from '../core/config.js';
import type { AuthzRequest, Decision, PolicyEngine } from '../core/ports.js';

// Why: TurboFan inlines JS->Wasm calls whose signature returns externref (CanInlineJSToWasmCall in
// js-call-reducer.cc admits kWasmExternRef), but a lazy deopt taken while such a call is on the
// stack rebuilds the result only for i32/i64/f32/f64 (Deoptimizer::TranslatedValueForWasmReturnKind:
// any other kind is UNREACHABLE) and the process dies with SIGTRAP, "# Fatal error in , line 0 #
// unreachable code". cedar-wasm's exports return externref and call back into JS (where a GC or
// a map change can invalidate the optimised caller — decide, or vendCredentials with decide
// inlined), so a busy `tvm dev` on Node 20.20 (V8 11.3) died after a few hundred vends (issue 10
// item 9). Not inlining those calls costs the generic JS->Wasm wrapper: ~4 µs of CPU on a ~55 µs
// decision (Node 20.20, one core). Set before any caller is optimised (this module runs before the
// first decision); the flag exists from V8 10.6 to today's V8 source (were it gone, V8 would
// only print "unrecognized flag").
setFlagsFromString('--no-turbo-inline-js-wasm-calls');

const CONTEXT_COMMON = 'task?: String, tool?: String, sensitivity?: String, environment?: String, sourceIp?: ipaddr';

/**
 * The entity model of SPEC.md. Claims differ per issuer and Cedar's schema cannot express an open
 * record, so validation declares every claim the policies name as an optional String (the common
 * case); a claim used as another type is reported as a note and checked at request time.
 */
export function cedarSchema(claimNames: Iterable<string> = []): string {
  const claims = [...new Set(claimNames)].map((n) => `${JSON.stringify(n)}?: String`).join(', ');
  return `namespace Tvm {
  type Claims = { ${claims} };
  entity Workload = { issuer: String, iss: String, sub: String, claims: Claims };
  entity Grant;
  entity Vendor;
  action vend appliesTo { principal: [Workload], resource: [Grant], context: { ${CONTEXT_COMMON}, durationSeconds: Long } };
  action revoke appliesTo { principal: [Workload], resource: [Grant], context: { ${CONTEXT_COMMON} } };
  action broker appliesTo { principal: [Workload], resource: [Vendor], context: { ${CONTEXT_COMMON}, method: String, path: String } };
}`;
}

const CLAIM_REF = /\bclaims\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|has\s+([A-Za-z_][A-Za-z0-9_]*)|has\s+"((?:[^"\\]|\\.)*)"|\[\s*"((?:[^"\\]|\\.)*)"\s*\])/g;

/** The claim names a policy text refers to (`claims.x`, `claims has x`, `claims["x"]`). */
export function claimNames(text: string): string[] {
  return [...text.matchAll(CLAIM_REF)].map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]);
}

const SENSITIVITY = new Set(['public', 'internal', 'confidential', 'restricted']);

function policyRecord(config: Pick<TvmConfig, 'cedar'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of config.cedar) out[p.id] = p.text;
  return out;
}

function snippet(text: string, err: cedar.DetailedError): string {
  const loc = err.sourceLocations?.[0];
  return loc ? text.slice(loc.start, loc.end) : '';
}

/**
 * Parses and validates every policy against the schema. Problems name the policy's file and id.
 * `notes` lists what could not be checked (attribute accesses into the open `claims` record).
 */
export function validatePolicies(config: Pick<TvmConfig, 'cedar'>): { problems: ConfigProblem[]; notes: string[] } {
  const problems: ConfigProblem[] = [];
  const notes: string[] = [];
  const byId = new Map(config.cedar.map((p) => [p.id, p]));
  for (const p of config.cedar) {
    const parsed = cedar.checkParsePolicySet({ staticPolicies: { [p.id]: p.text } });
    if (parsed.type === 'failure') {
      for (const e of parsed.errors) problems.push({ file: p.file, path: `@id("${p.id}")`, message: `Cedar: ${e.message}` });
    }
  }
  if (problems.length) return { problems, notes };
  const names = config.cedar.flatMap((p) => claimNames(p.text));
  const answer = cedar.validate({ schema: cedarSchema(names), policies: { staticPolicies: policyRecord(config) } });
  if (answer.type === 'failure') {
    for (const e of answer.errors) problems.push({ file: '(cedar schema)', path: '(schema)', message: e.message });
    return { problems, notes };
  }
  for (const v of answer.validationErrors) {
    const p = byId.get(v.policyId);
    const text = p?.text ?? '';
    const at = snippet(text, v.error);
    if (/\bclaims\b/.test(at)) {
      notes.push(`${p?.file}: @id("${v.policyId}"): '${at}' uses a token claim as a non-string; claim types differ per issuer, so this is checked at request time, not here`);
      continue;
    }
    problems.push({ file: p?.file ?? '(policies)', path: `@id("${v.policyId}")`, message: `Cedar: ${v.error.message}${at ? ` (at '${at}')` : ''}` });
  }
  // An impossible policy (e.g. comparing a String context value with a number) is a mistake, not style.
  for (const w of answer.validationWarnings) {
    const p = byId.get(w.policyId);
    if (/impossible/.test(w.error.message)) problems.push({ file: p?.file ?? '(policies)', path: `@id("${w.policyId}")`, message: `Cedar: ${w.error.message}` });
    else notes.push(`${p?.file}: @id("${w.policyId}"): ${w.error.message}`);
  }
  return { problems, notes };
}

let nextSetId = 0;

/** Builds the engine: preparses the policy set once (the first decision warms the wasm up). */
export function createCedarPolicyEngine(config: Pick<TvmConfig, 'cedar'>): PolicyEngine {
  const setId = `tvm-${nextSetId++}`;
  const parsed = cedar.preparsePolicySet(setId, { staticPolicies: policyRecord(config) });
  if (parsed.type === 'failure') throw new Error(`Cedar policies do not parse: ${parsed.errors.map((e) => e.message).join('; ')}`);
  const engine: PolicyEngine = {
    decide(request: AuthzRequest): Decision {
      const principalId = `${request.principal.issuer}|${request.principal.sub}`;
      const context = toCedarContext(request.context);
      const answer = cedar.statefulIsAuthorized({
        principal: { type: 'Tvm::Workload', id: principalId },
        action: { type: 'Tvm::Action', id: request.action },
        resource: { type: `Tvm::${request.resource.type}`, id: request.resource.id },
        context,
        preparsedPolicySetId: setId,
        entities: [
          {
            uid: { type: 'Tvm::Workload', id: principalId },
            attrs: {
              issuer: request.principal.issuer,
              iss: request.principal.iss,
              sub: request.principal.sub,
              claims: request.principal.claims as Record<string, cedar.CedarValueJson>,
            },
            parents: [],
          },
        ],
      });
      if (answer.type === 'failure') {
        return { allow: false, policyIds: [], errors: answer.errors.map((e) => e.message) };
      }
      const { decision, diagnostics } = answer.response;
      const errors = diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`);
      // Cedar skips a policy that errors; a skipped forbid is a policy that failed open. Any error
      // is a deny, and the erroring policies are the ones that decided it.
      if (errors.length) return { allow: false, policyIds: diagnostics.errors.map((e) => e.policyId), errors };
      return { allow: decision === 'allow', policyIds: diagnostics.reason, errors };
    },
  };
  // Warm the wasm at init, not on the first request.
  engine.decide({ principal: { issuer: 'init', iss: 'init', sub: 'init', claims: {} }, action: 'vend', resource: { type: 'Grant', id: 'init' }, context: {} });
  return engine;
}

function toCedarContext(ctx: Record<string, unknown>): Record<string, cedar.CedarValueJson> {
  const out: Record<string, cedar.CedarValueJson> = {};
  for (const [k, v] of Object.entries(ctx)) {
    if (v === undefined) continue;
    if (k === 'sourceIp' && typeof v === 'string') out[k] = { __extn: { fn: 'ip', arg: v } };
    else if (k === 'sensitivity' && typeof v === 'string' && !SENSITIVITY.has(v)) continue;
    else out[k] = v as cedar.CedarValueJson;
  }
  return out;
}
