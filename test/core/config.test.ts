/**
 * Loading tvm.yaml and its Cedar folder: every problem names the file, the path inside it and
 * what is wrong; the loaded config is frozen. Each case writes its own files to a temp folder.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ZodTypeAny } from 'zod';
import { validatePolicies } from '../../functions/adapters/cedar-policy.js';
import { checkConfig } from '../../functions/core/check-config.js';
import { accountOf, configSchema, formatPath, forDeployment, issuersNamedBy, localSchema, type ConfigProblem, type TvmConfig } from '../../functions/core/config.js';
import { ConfigError, loadConfig, splitCedar } from '../../functions/shared/load-config.js';

const root = mkdtempSync(join(tmpdir(), 'tvm-config-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ISSUER = `  - name: dev
    issuer: http://127.0.0.1:8787/_dev/issuer
    audiences: [tvm]
`;
const GRANT = `  - name: reports-read
    roleArn: arn:aws:iam::123456789012:role/tvm/reports-read
    durationSeconds: { default: 900, max: 3600 }
    sessionPolicy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: [s3:GetObject]
          Resource: ["arn:aws:s3:::reports/\${claims.team}/*"]
`;
const PERMIT = `@id("dev-read")
permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"reports-read")
when { principal.issuer == "dev" && principal.claims has team };
`;

let n = 0;
/** Writes a config folder: `tvm.yaml` plus `policies/*.cedar`; answers the yaml's path. */
function write(yaml: string, cedar: Record<string, string> | null = { 'vend.cedar': PERMIT }): string {
  const dir = join(root, `c${n++}`);
  mkdirSync(dir);
  if (cedar) {
    mkdirSync(join(dir, 'policies'));
    for (const [f, text] of Object.entries(cedar)) writeFileSync(join(dir, 'policies', f), text);
  }
  writeFileSync(join(dir, 'tvm.yaml'), yaml);
  return join(dir, 'tvm.yaml');
}

const yamlOf = ({ issuers = ISSUER, grants = GRANT, extra = '' } = {}) => `issuers:\n${issuers}grants:\n${grants}${extra}`;

/**
 * Every problem `schema` finds in `value`, as `path: message` (the path without its first `drop`
 * parts); the test fails if `value` parses.
 */
function schemaRefusals(schema: ZodTypeAny, value: unknown, drop = 0): string[] {
  const r = schema.safeParse(value);
  expect(r.success, 'expected a refusal').toBe(false);
  return r.success ? [] : r.error.issues.map((i) => `${formatPath(i.path.slice(drop))}: ${i.message}`);
}

function problemsOf(path: string): ConfigProblem[] {
  try {
    loadConfig(path);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig accepts', () => {
  it('the example config of the repository, frozen, with its Cedar policies by @id', () => {
    const config = loadConfig('config/tvm.yaml');
    expect(config.source).toBe(resolve('config/tvm.yaml'));
    expect(config.issuers.map((i) => i.name)).toEqual(['dev', 'github']);
    expect(config.cedar.map((p) => p.id).sort()).toEqual(['ci-deploys-artifacts', 'ci-reads-reports', 'ci-uses-vendors', 'dev-agents-read-reports', 'dev-agents-use-vendors', 'no-restricted-data-for-long', 'self-revoke']);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.grants[0].sessionPolicy.Statement[0])).toBe(true);
    expect(() => (config.grants as unknown as unknown[]).push({})).toThrow();
  });

  it('fills the defaults', () => {
    const config = loadConfig(write(yamlOf({ grants: GRANT.replace('    durationSeconds: { default: 900, max: 3600 }\n', '') })));
    expect(config.issuers[0]).toMatchObject({ algorithms: ['RS256', 'ES256'], singleUse: false });
    expect(config.grants[0].durationSeconds).toEqual({ default: 900, max: 3600 });
    expect(config.leases).toEqual({ retentionDays: 90, pendingTimeoutSeconds: 300, ratePerPrincipal: { vends: 120, windowSeconds: 60 } });
    expect(config.vendors).toEqual([]);
  });

  it.each([
    ['900..900', '{ default: 900, max: 900 }'],
    ['3600..3600', '{ default: 3600, max: 3600 }'],
    ['900..3600', '{ default: 900, max: 3600 }'],
  ])('durations at the STS bounds (%s)', (_name, d) => {
    expect(() => loadConfig(write(yamlOf({ grants: GRANT.replace('{ default: 900, max: 3600 }', d) })))).not.toThrow();
  });

  it.each([['http://localhost:9000/issuer'], ['http://127.0.0.1/x'], ['https://token.actions.githubusercontent.com/']])('issuer URL %s', (url) => {
    expect(() => loadConfig(write(yamlOf({ issuers: ISSUER.replace('http://127.0.0.1:8787/_dev/issuer', url) })))).not.toThrow();
  });

  it('the compiled JSON form with its Cedar policies inline', () => {
    const dir = join(root, `c${n++}`);
    mkdirSync(dir);
    const file = join(dir, 'tvm.json');
    const compiled = {
      issuers: [{ name: 'dev', issuer: 'http://127.0.0.1:8787/_dev/issuer', audiences: ['tvm'] }],
      grants: [],
      cedar: [{ id: 'all', file: 'policies/all.cedar', text: '@id("all") permit (principal, action, resource);' }],
      source: '/elsewhere/tvm.yaml',
    };
    writeFileSync(file, JSON.stringify(compiled));
    const config = loadConfig(file);
    expect(config.cedar).toEqual(compiled.cedar);
    expect(config.source).toBe(file);
  });

  it('a policy using a claim as a non-string: a note, not a problem', () => {
    const level = `@id("levels") permit (principal, action == Tvm::Action::"vend", resource) when { principal.claims has level && principal.claims.level > 2 };\n`;
    const path = write(yamlOf(), { 'vend.cedar': PERMIT + level });
    const config = loadConfig(path);
    const { problems, notes } = validatePolicies(config);
    expect(problems).toEqual([]);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toContain('@id("levels")');
    expect(notes[0]).toContain(join(path, '..', 'policies', 'vend.cedar'));
  });
});

describe('loadConfig refuses, naming file, path and what is wrong', () => {
  // [name, yaml, path, message pattern]
  const table: [string, string, string, RegExp][] = [
    ['an unknown key at the root', yamlOf({ extra: 'grnats: []\n' }), '(root)', /unknown key 'grnats'/],
    ['an unknown key in a grant', yamlOf({ grants: GRANT + '    role: x\n' }), 'grants[0]', /unknown key 'role'/],
    ['an unknown key in an issuer', yamlOf({ issuers: ISSUER + '    audience: tvm\n' }), 'issuers[0]', /unknown key 'audience'/],
    ['an unknown key in durationSeconds', yamlOf({ grants: GRANT.replace('max: 3600 }', 'max: 3600, min: 900 }') }), 'grants[0].durationSeconds', /unknown key 'min'/],
    ['an unknown key in a statement', yamlOf({ grants: GRANT + '          Principal: "*"\n' }), 'grants[0].sessionPolicy.Statement[0]', /unknown key 'Principal'/],
    ['an unknown key in leases', yamlOf({ extra: 'leases: { retention: 3 }\n' }), 'leases', /unknown key 'retention'/],
    ['a default under 900', yamlOf({ grants: GRANT.replace('default: 900', 'default: 899') }), 'grants[0].durationSeconds.default', /900/],
    ['a max over 3600', yamlOf({ grants: GRANT.replace('max: 3600', 'max: 3601') }), 'grants[0].durationSeconds.max', /3600/],
    ['a max under 900', yamlOf({ grants: GRANT.replace('default: 900, max: 3600', 'default: 900, max: 600') }), 'grants[0].durationSeconds.max', /900/],
    ['a fractional duration', yamlOf({ grants: GRANT.replace('default: 900', 'default: 900.5') }), 'grants[0].durationSeconds.default', /integer/],
    ['a default over the max', yamlOf({ grants: GRANT.replace('default: 900, max: 3600', 'default: 1800, max: 1200') }), 'grants[0].durationSeconds', /default must not exceed max/],
    ['no issuers', 'issuers: []\n', 'issuers', /at least one issuer/],
    ['no audiences', yamlOf({ issuers: ISSUER.replace('[tvm]', '[]') }), 'issuers[0].audiences', /at least one audience/],
    ['an http issuer off loopback', yamlOf({ issuers: ISSUER.replace('http://127.0.0.1:8787', 'http://example.com') }), 'issuers[0].issuer', /https/],
    ['an http issuer on a look-alike host', yamlOf({ issuers: ISSUER.replace('http://127.0.0.1:8787', 'http://127.0.0.1.evil.com') }), 'issuers[0].issuer', /https/],
    ['alg none', yamlOf({ issuers: ISSUER + '    algorithms: [none]\n' }), 'issuers[0].algorithms[0]', /never none or HS/],
    ['alg HS256', yamlOf({ issuers: ISSUER + '    algorithms: [RS256, HS256]\n' }), 'issuers[0].algorithms[1]', /never none or HS/],
    ['alg HS256: the refusal names every algorithm allowed', yamlOf({ issuers: ISSUER + '    algorithms: [HS256]\n' }), 'issuers[0].algorithms[0]', /^must be one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA \(never none or HS\*\)$/],
    ['a statement with neither Action nor NotAction', yamlOf({ grants: GRANT.replace(/ +Action:.*\n/, '') }), 'grants[0].sessionPolicy.Statement[0]', /exactly one of Action or NotAction/],
    ['a statement with Resource and NotResource', yamlOf({ grants: GRANT + '          NotResource: ["arn:aws:s3:::other/*"]\n' }), 'grants[0].sessionPolicy.Statement[0]', /exactly one of Resource or NotResource/],
    ['an issuer name with capitals', yamlOf({ issuers: ISSUER.replace('name: dev', 'name: Dev') }), 'issuers[0].name', /\[a-z0-9-\]\+/],
    ['a role ARN that is not one', yamlOf({ grants: GRANT.replace(':role/', ':user/') }), 'grants[0].roleArn', /IAM role ARN/],
    ['a statement with Action and NotAction', yamlOf({ grants: GRANT + '          NotAction: [s3:PutObject]\n' }), 'grants[0].sessionPolicy.Statement[0]', /exactly one of Action or NotAction/],
    ['a statement without a resource', yamlOf({ grants: GRANT.replace(/ +Resource:.*\n/, '') }), 'grants[0].sessionPolicy.Statement[0]', /exactly one of Resource or NotResource/],
    ['a policy version from 2008', yamlOf({ grants: GRANT.replace('2012-10-17', '2008-10-17') }), 'grants[0].sessionPolicy.Version', /2012-10-17/],
    ['a retention of 0 days', yamlOf({ extra: 'leases: { retentionDays: 0 }\n' }), 'leases.retentionDays', /1/],
    ['bind with both sourceIp and sourceVpce', yamlOf({ grants: GRANT + '    bind: { sourceIp: true, sourceVpce: [vpce-0123456789abcdef0] }\n' }), 'grants[0].bind', /exactly one of sourceIp/],
    ['bind with neither', yamlOf({ grants: GRANT + '    bind: {}\n' }), 'grants[0].bind', /exactly one of sourceIp/],
    ['bind.sourceIp false', yamlOf({ grants: GRANT + '    bind: { sourceIp: false }\n' }), 'grants[0].bind.sourceIp', /true/],
    ['a VPC endpoint id that is not one', yamlOf({ grants: GRANT + '    bind: { sourceVpce: [vpc-123] }\n' }), 'grants[0].bind.sourceVpce[0]', /vpce-/],
    ['maxLiveLeasesPerPrincipal of 0', yamlOf({ grants: GRANT + '    maxLiveLeasesPerPrincipal: 0\n' }), 'grants[0].maxLiveLeasesPerPrincipal', /1/],
    ['a rate window of 0 seconds', yamlOf({ extra: 'leases: { ratePerPrincipal: { vends: 10, windowSeconds: 0 } }\n' }), 'leases.ratePerPrincipal.windowSeconds', /1/],
  ];

  it.each(table)('%s', (_name, yaml, path, message) => {
    const file = write(yaml);
    const problems = problemsOf(file);
    const hit = problems.find((p) => p.path === path);
    expect(hit, JSON.stringify(problems)).toBeDefined();
    expect(hit!.file).toBe(file);
    expect(hit!.message).toMatch(message);
  });

  it('names every schema problem at once', () => {
    const yaml = yamlOf({ issuers: ISSUER.replace('[tvm]', '[]'), grants: GRANT.replace('default: 900', 'default: 1').replace(':role/', ':user/') });
    expect(problemsOf(write(yaml)).map((p) => p.path).sort()).toEqual(['grants[0].durationSeconds.default', 'grants[0].roleArn', 'issuers[0].audiences']);
  });

  it.each([
    ['a file that does not exist', () => join(root, 'nope.yaml'), '(file)'],
    ['YAML that does not parse', () => write('issuers:\n  - name: [dev\n'), /^line \d+$/],
    ['a duplicate YAML key', () => write(`issuers:\n${ISSUER}issuers:\n${ISSUER}`), /^line \d+$/],
    ['a scalar document', () => write('just text\n'), '(root)'],
    ['JSON that does not parse', () => {
      const f = join(root, `c${n++}.json`);
      writeFileSync(f, '{');
      return f;
    }, '(file)'],
  ])('%s', (_name, make, path) => {
    const file = resolve(make());
    const problems = problemsOf(file);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0].file).toBe(file);
    if (typeof path === 'string') expect(problems[0].path).toBe(path);
    else expect(problems[0].path).toMatch(path);
  });

  it('an unknown placeholder, at its path', () => {
    const file = write(yamlOf({ grants: GRANT.replace('${claims.team}', '${claim.team}') }));
    expect(problemsOf(file)).toEqual([{ file, path: 'grants[0].sessionPolicy.Statement[0].Resource[0]', message: expect.stringContaining('${claim.team}') }]);
  });

  it('an unclosed placeholder and one in a session tag', () => {
    const file = write(yamlOf({ grants: GRANT.replace('${claims.team}', '${claims.team') + '    sessionTags: { team: "${context.who}" }\n' }));
    expect(problemsOf(file).map((p) => p.path).sort()).toEqual(['grants[0].sessionPolicy.Statement[0].Resource[0]', 'grants[0].sessionTags.team']);
  });

  it.each([['tvm:lease'], ['aws:x'], ['TVM:grant']])('a reserved tag key %s', (key) => {
    const file = write(yamlOf({ grants: GRANT + `    sessionTags: { "${key}": x }\n` }));
    expect(problemsOf(file)).toEqual([{ file, path: `grants[0].sessionTags.${key}`, message: expect.stringMatching(/reserved/) }]);
  });

  it('duplicate grant and issuer names, each occurrence named', () => {
    const file = write(yamlOf({ issuers: ISSUER + ISSUER.replace('_dev/issuer', 'other'), grants: GRANT + GRANT }));
    expect(problemsOf(file).map((p) => p.path).sort()).toEqual(['grants[0].name', 'grants[1].name', 'issuers[0].name', 'issuers[1].name']);
  });

  it('the same issuer URL twice, trailing slash or not', () => {
    const file = write(yamlOf({ issuers: ISSUER + ISSUER.replace('name: dev', 'name: dev2').replace('_dev/issuer', '_dev/issuer/') }));
    expect(problemsOf(file).map((p) => p.path).sort()).toEqual(['issuers[0].issuer', 'issuers[1].issuer']);
  });

  it('a Cedar policy id used twice across files, naming each file', () => {
    const file = write(yamlOf(), { 'a.cedar': PERMIT, 'b.cedar': PERMIT });
    const problems = problemsOf(file);
    expect(problems.map((p) => [p.file, p.path])).toEqual([
      [join(file, '..', 'policies', 'a.cedar'), '@id("dev-read")'],
      [join(file, '..', 'policies', 'b.cedar'), '@id("dev-read")'],
    ]);
  });

  it('a Cedar policy without an @id, at its line', () => {
    const file = write(yamlOf(), { 'vend.cedar': `${PERMIT}\n// second\npermit (principal, action, resource);\n` });
    expect(problemsOf(file)).toEqual([{ file: join(file, '..', 'policies', 'vend.cedar'), path: 'line 6', message: expect.stringContaining('@id') }]);
  });

  it('Cedar text after the last policy', () => {
    const file = write(yamlOf(), { 'vend.cedar': `${PERMIT}@id("x") permit (principal, action, resource)` });
    expect(problemsOf(file)).toEqual([{ file: join(file, '..', 'policies', 'vend.cedar'), path: '(after policy 1)', message: expect.stringContaining(';') }]);
  });

  it.each([
    ['a syntax error', `@id("broken") permit (principal, action, resource) when { principal.issuer == };`, 'broken'],
    ['an unknown action', `@id("fly") permit (principal, action == Tvm::Action::"fly", resource);`, 'fly'],
    ['an unknown context attribute', `@id("ctx") permit (principal, action == Tvm::Action::"vend", resource) when { context.region == "eu" };`, 'ctx'],
    ['an optional context attribute without has', `@id("nohas") forbid (principal, action == Tvm::Action::"vend", resource) when { context.sensitivity == "restricted" };`, 'nohas'],
    ['an impossible policy', `@id("never") permit (principal, action == Tvm::Action::"vend", resource) when { context.durationSeconds == "900" };`, 'never'],
    ['a vend policy on a Vendor', `@id("wrong-type") permit (principal, action == Tvm::Action::"vend", resource == Tvm::Vendor::"datadog");`, 'wrong-type'],
  ])('Cedar: %s, naming file and @id', (_name, text, id) => {
    const file = write(yamlOf(), { 'vend.cedar': `${PERMIT}${text}\n` });
    const problems = problemsOf(file);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.find((p) => p.path === `@id("${id}")`), JSON.stringify(problems)).toMatchObject({
      file: join(file, '..', 'policies', 'vend.cedar'),
      message: expect.stringMatching(/^Cedar: /),
    });
  });

  it('a Cedar folder that does not exist', () => {
    const file = write(yamlOf({ extra: 'policies: ./nowhere\n' }), null);
    expect(problemsOf(file)).toEqual([{ file: join(file, '..', 'nowhere'), path: '(policies)', message: expect.any(String) }]);
  });
});

describe('splitCedar', () => {
  it('splits on ";" outside strings and comments and keeps each policy with its @id', () => {
    const problems: ConfigProblem[] = [];
    const text = `// header; with a semicolon\n@id("a") permit (principal, action, resource) when { principal.sub == "x;y" };\n\n@id("b")\nforbid (principal, action, resource);\n`;
    const out = splitCedar('f.cedar', text, problems);
    expect(problems).toEqual([]);
    expect(out.map((p) => p.id)).toEqual(['a', 'b']);
    expect(out[0].text).toContain('"x;y"');
    expect(out[1].text.startsWith('@id("b")')).toBe(true);
  });
});

describe('checkConfig and formatPath (pure)', () => {
  it.each([
    [['grants', 0, 'sessionPolicy', 'Statement', 2], 'grants[0].sessionPolicy.Statement[2]'],
    [['issuers'], 'issuers'],
    [[], '(root)'],
  ] as [(string | number)[], string][])('formatPath(%j) = %s', (path, want) => {
    expect(formatPath(path)).toBe(want);
  });

  it('a clean config has no problems', () => {
    const parsed = configSchema.parse({
      issuers: [{ name: 'dev', issuer: 'http://127.0.0.1/i', audiences: ['tvm'] }],
      grants: [],
    });
    const config: TvmConfig = { ...parsed, cedar: [{ id: 'a', file: 'x.cedar', text: '' }], source: 'tvm.yaml' };
    expect(checkConfig(config)).toEqual([]);
  });
});

describe('statements with NotAction or NotResource', () => {
  it('a statement naming NotAction instead of Action, or NotResource instead of Resource, loads', () => {
    const grants = GRANT.replace('Action: [s3:GetObject]', 'NotAction: [s3:DeleteObject]').replace(/Resource: (\[.*\])/, 'NotResource: $1');
    const config = loadConfig(write(yamlOf({ grants })));
    expect(config.grants[0].sessionPolicy.Statement[0]).toMatchObject({ NotAction: ['s3:DeleteObject'], NotResource: ['arn:aws:s3:::reports/${claims.team}/*'] });
  });
});

describe('forDeployment', () => {
  it('a config without a local section keeps every issuer and has no problem', () => {
    const config = loadConfig(write(yamlOf()));
    expect(config.local).toBeUndefined();
    const out = forDeployment(config);
    expect(out.problems).toEqual([]);
    expect(out.config.issuers.map((i) => i.name)).toEqual(['dev']);
  });

  it('a config whose only issuer is the local dev issuer leaves nothing to deploy, and says so', () => {
    const file = write(yamlOf({ extra: 'local:\n  devIssuer: dev\n' }));
    const { problems } = forDeployment(loadConfig(file));
    expect(problems).toEqual([{ file, path: 'issuers', message: "no issuer is left to deploy once the local dev issuer 'dev' is removed" }]);
  });

  it('drops the Cedar policies that name only the dev issuer, keeps the rest, and names a policy whose issuer is not deployed', () => {
    const github = `  - name: github\n    issuer: https://token.actions.githubusercontent.com\n    audiences: [tvm]\n`;
    const base = loadConfig(write(yamlOf({ issuers: ISSUER + github, extra: 'local:\n  devIssuer: dev\n' })));
    const policy = (id: string, when: string) => ({ id, file: `/p/${id}.cedar`, text: `@id("${id}") permit (principal, action, resource) when { ${when} };` });
    const cedar = [
      policy('dev-only', 'principal.issuer == "dev"'),
      policy('dev-twice', 'principal.issuer == "dev" || "dev" == principal.issuer'),
      policy('dev-or-github', 'principal.issuer == "dev" || principal.issuer == "github"'),
      policy('any-issuer', 'principal.claims has team'),
      policy('gitlab', '"gitlab" == principal.issuer'),
    ];
    const out = forDeployment({ ...base, cedar });
    expect(out.config.cedar.map((p) => p.id)).toEqual(['dev-or-github', 'any-issuer', 'gitlab']);
    expect(out.config.issuers.map((i) => i.name)).toEqual(['github']);
    expect(out.config).not.toHaveProperty('local');
    expect(out.problems).toEqual([{ file: '/p/gitlab.cedar', path: '@id("gitlab")', message: "names issuer 'gitlab', which the deployed config does not have" }]);
  });
});

describe('grant bind', () => {
  it.each([
    ['sourceIp', '{ sourceIp: true }', { sourceIp: true }],
    ['sourceVpce', '{ sourceVpce: [vpce-0123456789abcdef0] }', { sourceVpce: ['vpce-0123456789abcdef0'] }],
  ])('a bind naming exactly one of them (%s) loads as written', (_name, bind, expected) => {
    const config = loadConfig(write(yamlOf({ grants: GRANT + `    bind: ${bind}\n` })));
    expect(config.grants[0].bind).toEqual(expected);
  });
});

describe('accountOf', () => {
  it.each([
    ['arn:aws:iam::123456789012:role/tvm/reports-read', '123456789012'],
    ['arn:aws-cn:iam::210987654321:role/x', '210987654321'],
    ['arn:aws:iam::123456789012:user/alice', undefined],
    ['not an arn', undefined],
  ])('%s → %s', (arn, account) => {
    expect(accountOf(arn)).toBe(account);
  });
});

describe('the local section: roles of the local STS/IAM emulator', () => {
  const ROLE = 'arn:aws:iam::123456789012:role/tvm/reports-read';
  const POLICY = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::reports/*'] }] };
  const TRUST_STATEMENT = { Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:root' }, Action: 'sts:AssumeRole' };
  const trust = (s: Record<string, unknown>) => ({ Version: '2012-10-17', Statement: [s] });
  const roleOf = (role: unknown) => localSchema.parse({ roles: { [ROLE]: role } }).roles[ROLE];
  /** The messages of the problems at the role (and below it), as `path: message`. */
  const refusalsOf = (role: unknown): string[] => schemaRefusals(localSchema, { roles: { [ROLE]: role } }, 2);

  it('a bare permission policy: that policy, no trust policy (tvm’s own identity), 3600 s', () => {
    expect(roleOf(POLICY)).toEqual({ policy: POLICY, maxSessionDuration: 3600 });
  });

  it('the long form keeps its policy, trust policy and session duration', () => {
    const role = { policy: POLICY, trustPolicy: trust(TRUST_STATEMENT), maxSessionDuration: 7200 };
    expect(roleOf(role)).toEqual(role);
    expect(roleOf({ policy: POLICY })).toEqual({ policy: POLICY, maxSessionDuration: 3600 });
  });

  it.each([
    ['null', null],
    ['a string', 'arn:aws:iam::aws:policy/ReadOnlyAccess'],
    ['a number', 3],
  ])('a role that is %s is refused as a problem, not a crash', (_name, role) => {
    expect(() => localSchema.safeParse({ roles: { [ROLE]: role } })).not.toThrow();
    expect(refusalsOf(role).length).toBeGreaterThan(0);
  });

  it('a bare policy that is not one is refused at its own paths', () => {
    expect(refusalsOf({ ...POLICY, Version: '2008-10-17' })).toEqual(['Version: Invalid literal value, expected "2012-10-17"']);
  });

  it('the long form is refused at its own paths: a session duration outside IAM’s bounds', () => {
    expect(refusalsOf({ policy: POLICY, maxSessionDuration: 3599 })).toEqual(['maxSessionDuration: Number must be greater than or equal to 3600']);
  });

  it.each([
    ['Action and NotAction', { ...TRUST_STATEMENT, NotAction: 'sts:TagSession' }, 'needs exactly one of Action or NotAction'],
    ['neither Action nor NotAction', { Effect: 'Allow', Principal: '*' }, 'needs exactly one of Action or NotAction'],
    ['Principal and NotPrincipal', { ...TRUST_STATEMENT, NotPrincipal: { AWS: 'arn:aws:iam::123456789012:root' } }, 'needs exactly one of Principal or NotPrincipal'],
    ['neither Principal nor NotPrincipal', { Effect: 'Allow', Action: 'sts:AssumeRole' }, 'needs exactly one of Principal or NotPrincipal'],
  ])('a trust statement with %s is refused', (_name, statement, message) => {
    expect(refusalsOf({ policy: POLICY, trustPolicy: trust(statement) })).toEqual([`trustPolicy.Statement[0]: ${message}`]);
  });

  it.each([
    ['NotAction instead of Action', { Effect: 'Deny', Principal: '*', NotAction: 'sts:AssumeRole' }],
    ['NotPrincipal instead of Principal', { Effect: 'Deny', NotPrincipal: { AWS: 'arn:aws:iam::123456789012:root' }, Action: 'sts:AssumeRole' }],
  ])('a trust statement with %s loads', (_name, statement) => {
    expect(roleOf({ policy: POLICY, trustPolicy: trust(statement) }).trustPolicy?.Statement).toEqual([statement]);
  });
});

/**
 * Every rule of the schema from both sides, on the parsed object (no file): a value just inside
 * is kept, one just outside is refused with the rule's own message at its path. Regexes are
 * probed at both ends (junk before, junk after), list minimums with none and with two.
 */
describe('configSchema: each rule, inside and outside', () => {
  const ROLE = 'arn:aws:iam::123456789012:role/tvm/reports-read';
  const statement = (s: Record<string, unknown> = {}) => ({ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::reports/*', ...s });
  const grant = (g: Record<string, unknown> = {}) => ({
    name: 'reports-read',
    roleArn: ROLE,
    sessionPolicy: { Version: '2012-10-17', Statement: [statement()] },
    ...g,
  });
  const base = (c: Record<string, unknown> = {}) => ({ issuers: [{ name: 'dev', issuer: 'http://127.0.0.1:8787/i', audiences: ['tvm'] }], ...c });
  const parse = (c: Record<string, unknown>) => configSchema.parse(c);
  const refusals = (c: Record<string, unknown>): string[] => schemaRefusals(configSchema, c);
  const withIssuer = (issuer: string) => base({ issuers: [{ name: 'dev', issuer, audiences: ['tvm'] }] });

  it('no grants listed: an empty list, nothing invented', () => {
    expect(parse(base()).grants).toEqual([]);
  });

  it.each(['http://127.0.0.1', 'http://localhost:9000', 'http://127.0.0.1/'])('a loopback http issuer with no path (%s) is kept', (url) => {
    expect(parse(withIssuer(url)).issuers[0].issuer).toBe(url);
  });

  it.each(['http://example.com/http://127.0.0.1/', 'http://127.0.0.1.evil.com', 'http://localhostevil.com/'])('an http issuer that only contains a loopback name (%s) is refused', (url) => {
    expect(refusals(withIssuer(url))).toEqual(['issuers[0].issuer: must be https (http only for 127.0.0.1 or localhost)']);
  });

  it('a session policy with a Deny statement, two actions, two resources and two statements is kept', () => {
    const policy = {
      Version: '2012-10-17',
      Statement: [statement({ Action: ['s3:GetObject', 's3:ListBucket'], Resource: ['arn:aws:s3:::a/*', 'arn:aws:s3:::b/*'] }), statement({ Effect: 'Deny', Action: 's3:DeleteObject' })],
    };
    expect(parse(base({ grants: [grant({ sessionPolicy: policy })] })).grants[0].sessionPolicy).toEqual(policy);
  });

  it.each([
    ['Action', { Action: [] }],
    ['Resource', { Resource: [] }],
    ['NotAction', { Action: undefined, NotAction: [] }],
    ['NotResource', { Resource: undefined, NotResource: [] }],
  ])('an empty %s list is refused', (key, s) => {
    const problems = refusals(base({ grants: [grant({ sessionPolicy: { Version: '2012-10-17', Statement: [statement(s)] } })] }));
    expect(problems).toContain(`grants[0].sessionPolicy.Statement[0].${key}: Array must contain at least 1 element(s)`);
  });

  it('a session policy with no statement is refused', () => {
    expect(refusals(base({ grants: [grant({ sessionPolicy: { Version: '2012-10-17', Statement: [] } })] }))).toEqual([
      'grants[0].sessionPolicy.Statement: Array must contain at least 1 element(s)',
    ]);
  });

  it('a grant name with capitals is refused with the rule', () => {
    expect(refusals(base({ grants: [grant({ name: 'Reports' })] }))).toEqual(['grants[0].name: must match [a-z0-9-]+']);
  });

  // Role ARNs: the grant's, the local role keys, an account's revoker role.
  const ROLE_ARN_CASES: [string, string][] = [
    ['junk before', `x${ROLE}`],
    ['junk after', `${ROLE} x`],
    ['a partition that is not one', 'arn:aws0:iam::123456789012:role/x'],
  ];
  it.each(ROLE_ARN_CASES)('a grant role ARN with %s is refused', (_name, arn) => {
    expect(refusals(base({ grants: [grant({ roleArn: arn })] }))).toEqual(['grants[0].roleArn: must be an IAM role ARN']);
  });
  it.each(ROLE_ARN_CASES)('a local role key with %s is refused', (_name, arn) => {
    const policy = { Version: '2012-10-17', Statement: [statement()] };
    expect(refusals(base({ local: { roles: { [arn]: policy } } }))).toEqual([`local.roles.${arn}: must be an IAM role ARN`]);
  });
  it.each(ROLE_ARN_CASES.slice(0, 2))('a revoker role ARN with %s is refused', (_name, arn) => {
    expect(refusals(base({ accounts: { '210987654321': { revokerRoleArn: arn } } }))).toEqual(['accounts.210987654321.revokerRoleArn: must be an IAM role ARN']);
  });
  it('role ARNs in other partitions are kept, in every place', () => {
    const cn = 'arn:aws-cn:iam::210987654321:role/tvm-revoker';
    const policy = { Version: '2012-10-17', Statement: [statement()] };
    const c = parse(base({ grants: [grant({ roleArn: cn })], local: { roles: { [cn]: policy } }, accounts: { '210987654321': { revokerRoleArn: cn } } }));
    expect([c.grants[0].roleArn, Object.keys(c.local!.roles)[0], c.accounts['210987654321'].revokerRoleArn]).toEqual([cn, cn, cn]);
  });

  it.each([['x123456789012'], ['1234567890123'], ['12345678901']])('an account id %s is refused', (id) => {
    expect(refusals(base({ account: id }))).toEqual(['account: must be a 12-digit AWS account id']);
    expect(refusals(base({ accounts: { [id]: { revokerRoleArn: ROLE } } }))).toEqual([`accounts.${id}: must be a 12-digit AWS account id`]);
  });

  it.each([['!team'], ['team!'], ['']])('a session tag key %j is refused', (key) => {
    expect(refusals(base({ grants: [grant({ sessionTags: { [key]: 'x' } })] }))).toEqual([`grants[0].sessionTags.${key}: tag key`]);
  });
  it('a session tag key of 128 allowed characters is kept', () => {
    const key = 'a:b/c=d+e@f.g-h_'.repeat(8);
    expect(parse(base({ grants: [grant({ sessionTags: { [key]: 'x' } })] })).grants[0].sessionTags).toEqual({ [key]: 'x' });
  });

  it.each([[1], [5], [10_000]])('maxLiveLeasesPerPrincipal %d is kept', (n) => {
    expect(parse(base({ grants: [grant({ maxLiveLeasesPerPrincipal: n })] })).grants[0].maxLiveLeasesPerPrincipal).toBe(n);
  });
  it('maxLiveLeasesPerPrincipal over 10 000 is refused', () => {
    expect(refusals(base({ grants: [grant({ maxLiveLeasesPerPrincipal: 10_001 })] }))).toEqual(['grants[0].maxLiveLeasesPerPrincipal: Number must be less than or equal to 10000']);
  });

  const vpce = (i: number) => `vpce-${i.toString(16).padStart(17, '0')}`;
  it.each([[1], [2], [10]])('bind.sourceVpce with %d endpoints is kept', (n) => {
    const ids = Array.from({ length: n }, (_, i) => vpce(i));
    expect(parse(base({ grants: [grant({ bind: { sourceVpce: ids } })] })).grants[0].bind).toEqual({ sourceVpce: ids });
  });
  it.each([
    ['none', [], 'Array must contain at least 1 element(s)'],
    ['eleven', Array.from({ length: 11 }, (_, i) => vpce(i)), 'Array must contain at most 10 element(s)'],
  ])('bind.sourceVpce with %s is refused', (_name, ids, message) => {
    expect(refusals(base({ grants: [grant({ bind: { sourceVpce: ids } })] }))).toEqual([`grants[0].bind.sourceVpce: ${message}`]);
  });
  it.each([['xvpce-0123456789abcdef0'], ['vpce-0123456789abcdef0x'], ['vpce-0123456']])('a VPC endpoint id %s is refused', (id) => {
    expect(refusals(base({ grants: [grant({ bind: { sourceVpce: [id] } })] }))).toEqual(['grants[0].bind.sourceVpce[0]: must be a VPC endpoint id (vpce-…)']);
  });

  describe('local roles: trust policies', () => {
    const policy = { Version: '2012-10-17', Statement: [statement()] };
    const roleWith = (...trust: Record<string, unknown>[]) => base({ local: { roles: { [ROLE]: { policy, trustPolicy: { Version: '2012-10-17', Statement: trust } } } } });
    const trusted = (...trust: Record<string, unknown>[]) => parse(roleWith(...trust)).local!.roles[ROLE].trustPolicy!.Statement;
    const two = ['arn:aws:iam::123456789012:root', 'arn:aws:iam::210987654321:root'];

    it('two statements, lists of two principals and actions, and a condition of each value type are kept', () => {
      const trust = [
        { Effect: 'Allow', Principal: { AWS: two }, Action: ['sts:AssumeRole', 'sts:TagSession'], Condition: { StringEquals: { 'aws:PrincipalTag/team': 'a' }, StringLike: { 'sts:RoleSessionName': ['a*', 'b*'] }, Bool: { 'aws:SecureTransport': true }, NumericLessThan: { 'sts:DurationSeconds': 3600 } } },
        { Effect: 'Deny', NotPrincipal: { AWS: two }, NotAction: ['sts:AssumeRole', 'sts:TagSession'] },
      ];
      expect(trusted(...trust)).toEqual(trust);
    });

    it.each([
      ['Principal', { Principal: { AWS: [] }, Action: 'sts:AssumeRole' }, 'Principal.AWS'],
      ['NotPrincipal', { NotPrincipal: { AWS: [] }, Action: 'sts:AssumeRole' }, 'NotPrincipal.AWS'],
      ['Action', { Principal: '*', Action: [] }, 'Action'],
      ['NotAction', { Principal: '*', NotAction: [] }, 'NotAction'],
    ])('an empty %s list is refused', (_key, s, at) => {
      expect(refusals(roleWith({ Effect: 'Allow', ...s }))).toContain(`local.roles.${ROLE}.trustPolicy.Statement[0].${at}: Array must contain at least 1 element(s)`);
    });

    it('a trust policy with no statement is refused', () => {
      expect(refusals(roleWith())).toEqual([`local.roles.${ROLE}.trustPolicy.Statement: Array must contain at least 1 element(s)`]);
    });
  });

  describe('local buckets', () => {
    const buckets = (b: unknown[]) => parse(base({ local: { buckets: b } })).local!.buckets;
    it('bucket names of 3 and 63 characters are kept, bare or with a seed folder', () => {
      const long = `a${'b'.repeat(61)}c`;
      expect(buckets(['abc', { name: long, seed: './seed' }])).toEqual(['abc', { name: long, seed: './seed' }]);
    });
    it.each([['Xreports'], ['reports_'], ['ab'], ['-reports']])('a bucket name %s is refused, bare or in the long form', (name) => {
      expect(refusals(base({ local: { buckets: [name] } }))).toEqual(['local.buckets[0]: must be an S3 bucket name']);
      expect(refusals(base({ local: { buckets: [{ name, seed: './seed' }] } }))).toEqual(['local.buckets[0].name: must be an S3 bucket name']);
    });
  });
});

describe('issuersNamedBy: the issuer names a Cedar policy compares principal.issuer with', () => {
  it.each([
    ['principal.issuer=="dev"', ['dev']],
    ['"dev"==principal.issuer', ['dev']],
    ['principal.issuer  ==  "dev" || "github"\n==\nprincipal.issuer', ['dev', 'github']],
    ['principal.issuer == "dev" || principal.issuer == "dev"', ['dev']],
    ['principal.claims has team', []],
  ])('%s → %j', (text, names) => {
    expect(issuersNamedBy(text)).toEqual(names);
  });
});
