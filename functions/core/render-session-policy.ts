/**
 * Renders a grant's session-policy template and session tags for one request.
 * A placeholder value that could change the policy's structure refuses the request: it is
 * never escaped into place.
 */
import { isIP } from 'node:net';
import { AccessDenied, InvalidRequest } from './errors.js';
import type { GrantConfig } from './config.js';

/** STS refuses a plaintext session policy over this many characters. */
export const MAX_SESSION_POLICY_CHARS = 2048;

/** The characters a placeholder value may carry (SPEC: anything else refuses the request). */
export const SAFE_VALUE = /^[A-Za-z0-9._:/@+=,-]{1,256}$/;
/** tvm's own principal format `<issuer>|<sub>` carries a '|', harmless in IAM strings. */
const SAFE_PRINCIPAL = /^[A-Za-z0-9._:/@+=,|-]{1,300}$/;

export const PLACEHOLDER = /\$\{([^}]*)\}/g;
const KNOWN = /^(claims\.[A-Za-z0-9_:.-]+|context\.(task|tool|sensitivity|environment)|principal|lease\.id)$/;

export interface RenderValues {
  claims: Record<string, unknown>;
  context: Record<string, unknown>;
  principal: string;
  leaseId: string;
  /** The vend's source address as the API saw it (a grant with `bind.sourceIp` needs it). */
  sourceIp?: string;
}

/** Names every placeholder in a template string that tvm does not know (for config checks). */
export function unknownPlaceholders(text: string): string[] {
  const bad: string[] = [];
  for (const m of text.matchAll(PLACEHOLDER)) if (!KNOWN.test(m[1])) bad.push(m[0]);
  // A '${' without a closing brace is a typo that would otherwise pass through literally.
  const opens = text.split('${').length - 1;
  const closed = [...text.matchAll(PLACEHOLDER)].length;
  if (opens > closed) bad.push('${ (unclosed)');
  return bad;
}

function valueOf(name: string, values: RenderValues): unknown {
  if (name === 'principal') return values.principal;
  if (name === 'lease.id') return values.leaseId;
  if (name.startsWith('claims.')) {
    const key = name.slice('claims.'.length);
    return Object.prototype.hasOwnProperty.call(values.claims, key) ? values.claims[key] : undefined;
  }
  const key = name.slice('context.'.length);
  return Object.prototype.hasOwnProperty.call(values.context, key) ? values.context[key] : undefined;
}

function substitute(text: string, grant: string, values: RenderValues): string {
  return text.replace(PLACEHOLDER, (_all, name: string) => {
    const v = valueOf(name, values);
    if (v === undefined || v === null) {
      throw new InvalidRequest('placeholder_missing', { grant, placeholder: name });
    }
    const s = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
    const safe = name === 'principal' ? SAFE_PRINCIPAL : SAFE_VALUE;
    if (s === undefined || !safe.test(s)) {
      throw new InvalidRequest('placeholder_unsafe', { grant, placeholder: name });
    }
    return s;
  });
}

function renderValue(v: unknown, grant: string, values: RenderValues): unknown {
  if (typeof v === 'string') return substitute(v, grant, values);
  if (Array.isArray(v)) return v.map((x) => renderValue(x, grant, values));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[substitute(k, grant, values)] = renderValue(x, grant, values);
    return out;
  }
  return v;
}

/** Requests AWS services make on the caller's behalf keep its credentials but not its address. */
const NOT_VIA_AWS_SERVICE = { Bool: { 'aws:ViaAWSService': 'false' } };

/**
 * The statement that binds a grant's credentials to where they were vended (AWS's pattern for
 * "deny unless from these addresses", with the `aws:ViaAWSService` exception), or none.
 * @throws AccessDenied `source_ip_unknown` when the grant binds to an address tvm does not know.
 */
export function bindStatement(grant: GrantConfig, sourceIp: string | undefined): Record<string, unknown> | undefined {
  const bind = grant.bind;
  if (!bind) return undefined;
  if (bind.sourceVpce) {
    return { Sid: 'TvmBindSourceVpce', Effect: 'Deny', Action: '*', Resource: '*', Condition: { StringNotEquals: { 'aws:SourceVpce': bind.sourceVpce }, ...NOT_VIA_AWS_SERVICE } };
  }
  const family = sourceIp === undefined ? 0 : isIP(sourceIp);
  // Fail closed: a grant bound to the caller's address is never vended unbound.
  if (!family) throw new AccessDenied('source_ip_unknown', { grant: grant.name });
  const cidr = `${sourceIp}/${family === 4 ? 32 : 128}`;
  return { Sid: 'TvmBindSourceIp', Effect: 'Deny', Action: '*', Resource: '*', Condition: { NotIpAddress: { 'aws:SourceIp': cidr }, ...NOT_VIA_AWS_SERVICE } };
}

/**
 * Renders the grant's session policy, minified, with its `bind` statement; the size limit counts it.
 * @throws InvalidRequest `placeholder_unsafe`, `placeholder_missing` or `session_policy_too_large`;
 *   AccessDenied `source_ip_unknown`.
 */
export function renderSessionPolicy(grant: GrantConfig, values: RenderValues): string {
  const rendered = renderValue(grant.sessionPolicy, grant.name, values) as { Statement: unknown[] };
  const bound = bindStatement(grant, values.sourceIp);
  if (bound) rendered.Statement = [...rendered.Statement, bound];
  const policy = JSON.stringify(rendered);
  if (policy.length > MAX_SESSION_POLICY_CHARS) {
    throw new InvalidRequest('session_policy_too_large', { grant: grant.name, chars: policy.length });
  }
  return policy;
}

/** Renders the grant's own session tags (tvm adds its `tvm:*` tags beside them). */
export function renderSessionTags(grant: GrantConfig, values: RenderValues): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(grant.sessionTags ?? {})) out[k] = substitute(v, grant.name, values);
  return out;
}
