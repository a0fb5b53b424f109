/** `tvm policy check` and `tvm policy eval`: validate the config and explain decisions offline. */
import { createCedarPolicyEngine, validatePolicies } from '../../functions/adapters/cedar-policy.js';
import { ConfigError, loadConfig } from '../../functions/shared/load-config.js';
import type { AuthzRequest } from '../../functions/core/ports.js';
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
    if (values.grant && !config.grants.some((g) => g.name === values.grant)) throw new Refusal(`no grant named '${values.grant}' in ${path}`);
    const context = jsonObject('--context', values.context);
    if (action === 'vend' && context.durationSeconds === undefined) {
      context.durationSeconds = config.grants.find((g) => g.name === values.grant)?.durationSeconds.default ?? 900;
    }
    const decision = createCedarPolicyEngine(config).decide({
      principal: { issuer: issuerName, iss: issuer.issuer, sub: subParts.join('|'), claims: jsonObject('--claims', values.claims) },
      action,
      resource: values.grant ? { type: 'Grant', id: values.grant } : { type: 'Vendor', id: values.vendor! },
      context,
    });
    if (decision.allow) {
      io.out(`allow\npermitted by: ${decision.policyIds.join(', ')}\n`);
    } else {
      const why = decision.policyIds.length
        ? `forbidden by: ${decision.policyIds.join(', ')}`
        : 'no policy permits this request (deny by default)';
      io.out(`deny\n${why}\n`);
    }
    for (const e of decision.errors) io.out(`error in policy ${e}\n`);
    return decision.allow ? EXIT.ok : EXIT.refused;
  }
  throw new UsageError(`unknown 'policy ${sub}' (check or eval)`);
}
