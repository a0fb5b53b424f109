/** `tvm policy check` and `tvm policy eval`: validate the config and explain decisions offline. */
import { createCedarPolicyEngine, validatePolicies } from '../../functions/adapters/cedar-policy.js';
import { ConfigError, loadConfig } from '../../functions/shared/load-config.js';
import { brokerAuthzRequest, canonicalVendorPath } from '../../functions/core/broker-request.js';
import type { GrantConfig, IssuerConfig } from '../../functions/core/config.js';
import { principalOf } from '../../functions/core/decision.js';
import { TvmError } from '../../functions/core/errors.js';
import type { AuthzRequest } from '../../functions/core/ports.js';
import { cedarContext, effectiveDuration, vendAuthzRequest } from '../../functions/core/vend-credentials.js';
import { policyClaims } from '../../functions/core/verify-token.js';
import { contextSchema, parseRequest } from '../../functions/shared/request.js';
import { EXIT, parse, Refusal, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm policy check [--config F]
       tvm policy eval --principal ISSUER|SUB (--grant G | --vendor V) [--action vend|revoke|broker]
                       [--claims JSON] [--context JSON] [--config F]
`;

function load(path: string) {
  try {
    return loadConfig(path);
  } catch (e) {
    if (e instanceof ConfigError) throw new Refusal(`${e.problems.length} problem${e.problems.length > 1 ? 's' : ''}:\n${e.message}`);
    throw e;
  }
}

function jsonObject(flag: string, text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new UsageError(`${flag} must be a JSON object`);
}

/**
 * The request the service would decide, built by the service's own functions: claims through
 * `policyClaims` (a claim Cedar cannot carry is refused, as the service refuses the token),
 * context through the request schema, the duration through the grant's bounds, and the
 * vend/broker request builders the use cases call.
 */
function evalRequest(action: AuthzRequest['action'], issuer: IssuerConfig, sub: string, grant: GrantConfig | undefined, vendor: string | undefined, claimsJson?: string, contextJson?: string): AuthzRequest {
  const claims = policyClaims(jsonObject('--claims', claimsJson));
  const { durationSeconds, sourceIp, method, path, ...rest } = jsonObject('--context', contextJson);
  const context = parseRequest(contextSchema, rest);
  const who = { issuer, iss: issuer.issuer, sub, claims };
  const ip = typeof sourceIp === 'string' ? sourceIp : undefined;
  if (action === 'vend') return vendAuthzRequest(who, grant!.name, effectiveDuration(grant!, durationSeconds as number | undefined), context, ip);
  if (action === 'broker') {
    if (!vendor) throw new UsageError('--action broker needs --vendor');
    return brokerAuthzRequest(who, vendor, String(method ?? 'GET').toUpperCase(), canonicalVendorPath(String(path ?? '/')), context, ip);
  }
  return { principal: principalOf(who), action, resource: { type: 'Grant', id: grant?.name ?? '' }, context: cedarContext(context, { sourceIp: ip }) };
}

export async function run(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parse(rest, {
    config: { type: 'string' },
    principal: { type: 'string' },
    grant: { type: 'string' },
    vendor: { type: 'string' },
    action: { type: 'string' },
    claims: { type: 'string' },
    context: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help || !sub) return (sub ? io.out : io.err)(HELP), sub ? EXIT.ok : EXIT.usage;
  const path = values.config ?? io.env.TVM_CONFIG ?? 'config/tvm.yaml';

  if (sub === 'check') {
    const config = load(path);
    const { problems, notes } = validatePolicies(config);
    for (const n of notes) io.out(`note: ${n}\n`);
    if (problems.length) throw new Refusal(`${problems.length} problem${problems.length > 1 ? 's' : ''}:\n${problems.map((p) => `${p.file}: ${p.path}: ${p.message}`).join('\n')}`);
    io.out(`ok: ${config.issuers.length} issuers, ${config.grants.length} grants, ${config.vendors.length} vendors, ${config.cedar.length} policies\n`);
    return EXIT.ok;
  }

  if (sub === 'eval') {
    if (!values.principal || !values.principal.includes('|')) throw new UsageError('--principal ISSUER|SUB is required');
    if (!values.grant === !values.vendor) throw new UsageError('give one of --grant or --vendor');
    const action = (values.action ?? (values.vendor ? 'broker' : 'vend')) as AuthzRequest['action'];
    if (!['vend', 'revoke', 'broker'].includes(action)) throw new UsageError('--action is vend, revoke or broker');
    const config = load(path);
    const [issuerName, ...subParts] = values.principal.split('|');
    const issuer = config.issuers.find((i) => i.name === issuerName);
    if (!issuer) throw new Refusal(`no issuer named '${issuerName}' in ${path}`);
    const grant = values.grant === undefined ? undefined : config.grants.find((g) => g.name === values.grant);
    if (values.grant && !grant) throw new Refusal(`no grant named '${values.grant}' in ${path}`);
    let request: AuthzRequest;
    try {
      request = evalRequest(action, issuer, subParts.join('|'), grant, values.vendor, values.claims, values.context);
    } catch (e) {
      // What the service would refuse before deciding (a claim Cedar cannot carry, a bad context).
      if (e instanceof TvmError) throw new Refusal(`refused before any policy: ${e.code} (${e.reason}${e.detail ? ` ${JSON.stringify(e.detail)}` : ''})`);
      throw e;
    }
    const decision = createCedarPolicyEngine(config).decide(request);
    if (decision.allow) {
      io.out(`allow\npermitted by: ${decision.policyIds.join(', ')}\n`);
    } else {
      const why = decision.errors.length
        ? `policy error (fail closed) in: ${decision.policyIds.join(', ')}`
        : decision.policyIds.length
          ? `forbidden by: ${decision.policyIds.join(', ')}`
          : 'no policy permits this request (deny by default)';
      io.out(`deny\n${why}\n`);
    }
    for (const e of decision.errors) io.out(`error in policy ${e}\n`);
    return EXIT.ok;
  }
  throw new UsageError(`unknown 'policy ${sub}' (check or eval)`);
}
