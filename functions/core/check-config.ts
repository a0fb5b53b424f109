/**
 * Checks across fields of a schema-valid config: unique names, known placeholders,
 * unique policy ids. Pure; Cedar syntax and schema checks run in the Cedar adapter.
 */
import { accountOf, type ConfigProblem, type TvmConfig } from './config.js';
import { unknownPlaceholders } from './render-session-policy.js';

function duplicates(names: string[]): Set<string> {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const n of names) (seen.has(n) ? dup : seen).add(n);
  return dup;
}

function walkStrings(v: unknown, path: string, visit: (s: string, path: string) => void): void {
  if (typeof v === 'string') visit(v, path);
  else if (Array.isArray(v)) v.forEach((x, i) => walkStrings(x, `${path}[${i}]`, visit));
  // Stryker disable next-line ConditionalExpression,LogicalOperator: a schema-valid config holds no null, and Object.entries of a number or boolean is empty, so walking those visits nothing either way
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) {
    visit(k, `${path}.${k}`);
    walkStrings(x, `${path}.${k}`, visit);
  }
}

export function checkConfig(config: TvmConfig): ConfigProblem[] {
  const file = config.source;
  const problems: ConfigProblem[] = [];
  for (const [section, list] of [
    ['issuers', config.issuers],
    ['grants', config.grants],
    ['vendors', config.vendors],
  ] as const) {
    const dup = duplicates(list.map((x) => x.name));
    list.forEach((x, i) => {
      if (dup.has(x.name)) problems.push({ file, path: `${section}[${i}].name`, message: `'${x.name}' is used more than once` });
    });
  }
  const issuerUrls = duplicates(config.issuers.map((i) => i.issuer.replace(/\/$/, '')));
  config.issuers.forEach((x, i) => {
    if (issuerUrls.has(x.issuer.replace(/\/$/, ''))) problems.push({ file, path: `issuers[${i}].issuer`, message: 'the same issuer URL is configured twice' });
  });
  config.grants.forEach((g, i) => {
    walkStrings(g.sessionPolicy, `grants[${i}].sessionPolicy`, (s, path) => {
      for (const p of unknownPlaceholders(s)) problems.push({ file, path, message: `unknown placeholder ${p}` });
    });
    walkStrings(g.sessionTags ?? {}, `grants[${i}].sessionTags`, (s, path) => {
      for (const p of unknownPlaceholders(s)) problems.push({ file, path, message: `unknown placeholder ${p}` });
    });
    // STS takes at most 50 session tags; tvm adds tvm:lease, tvm:grant and tvm:issuer.
    if (Object.keys(g.sessionTags ?? {}).length > 47) {
      problems.push({ file, path: `grants[${i}].sessionTags`, message: 'at most 47 tags (STS allows 50 and tvm adds 3)' });
    }
    for (const k of Object.keys(g.sessionTags ?? {})) {
      if (k.toLowerCase().startsWith('tvm:') || k.toLowerCase().startsWith('aws:')) {
        problems.push({ file, path: `grants[${i}].sessionTags.${k}`, message: 'tag keys starting with tvm: or aws: are reserved' });
      }
    }
  });
  problems.push(...accountProblems(config));
  const ids = duplicates(config.cedar.map((p) => p.id));
  for (const p of config.cedar) if (ids.has(p.id)) problems.push({ file: p.file, path: `@id("${p.id}")`, message: 'policy id is used more than once' });
  return problems;
}

/**
 * Every grant's role is in tvm's own account or in one listed under `accounts` (whose revoker
 * role tvm assumes to revoke there): otherwise its sessions could be vended but never revoked.
 * Without `account`, the own account is the one account grants use that is not listed.
 */
function accountProblems(config: TvmConfig): ConfigProblem[] {
  const file = config.source;
  const problems: ConfigProblem[] = [];
  const listed = config.accounts ?? {};
  for (const [id, a] of Object.entries(listed)) {
    if (accountOf(a.revokerRoleArn) !== id) problems.push({ file, path: `accounts.${id}.revokerRoleArn`, message: `must be a role in account ${id}` });
    if (config.account === id) problems.push({ file, path: `accounts.${id}`, message: "is tvm's own account (account): list only other accounts" });
  }
  const unlisted = new Set<string>();
  config.grants.forEach((g) => {
    const a = accountOf(g.roleArn);
    // Stryker disable next-line ConditionalExpression: the schema's roleArn pattern is ROLE_ARN's, so accountOf never answers undefined for a grant here
    if (a && !(a in listed) && a !== config.account) unlisted.add(a);
  });
  const own = config.account ?? (unlisted.size === 1 ? [...unlisted][0] : undefined);
  config.grants.forEach((g, i) => {
    const a = accountOf(g.roleArn);
    if (!a || a in listed || a === own) return;
    problems.push({
      file,
      path: `grants[${i}].roleArn`,
      message: `is in account ${a}, which is neither tvm's own${config.account ? ` (${config.account})` : ''} nor listed under accounts (with its revokerRoleArn): its sessions could not be revoked`,
    });
  });
  return problems;
}
