/**
 * Decisions of the Cedar engine as tvm builds it: policies split from Cedar text by their `@id`,
 * preparsed once, deny by default, forbid wins, absent context values tested with `has`.
 */
import { describe, expect, it } from 'vitest';
import { cedarSchema, claimNames, createCedarPolicyEngine, validatePolicies } from '../../functions/adapters/cedar-policy.js';
import type { ConfigProblem } from '../../functions/core/config.js';
import type { AuthzRequest } from '../../functions/core/ports.js';
import { splitCedar } from '../../functions/shared/load-config.js';

const POLICIES = `
// Local agents with a team claim may read their team's reports.
@id("dev-agents-read-reports")
permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"reports-read")
when { principal.issuer == "dev" && principal.claims has team };

@id("ci-deploys-artifacts")
permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"deploy")
when {
  principal.issuer == "github" &&
  principal.claims has repository_id && principal.claims.repository_id == "123456" &&
  principal.claims has job_workflow_ref &&
  principal.claims.job_workflow_ref == "acme/app/.github/workflows/release.yml@refs/heads/main"
};

@id("no-restricted-data-for-long")
forbid (principal, action == Tvm::Action::"vend", resource)
when { context has sensitivity && context.sensitivity == "restricted" && context.durationSeconds > 900 };

@id("office-network-only")
permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"office")
when { context has sourceIp && context.sourceIp.isInRange(ip("10.0.0.0/8")) };

@id("admins-group")
permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"admin")
when { principal.claims has groups && principal.claims.groups.contains("admins") };

@id("admins-any-team")
permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"admin")
when { principal.claims has groups && principal.claims.groups.containsAny(["admins", "ops"]) };

@id("prod-env-needs-task")
forbid (principal, action == Tvm::Action::"vend", resource)
when { context has environment && context.environment == "prod" && !(context has task) };

@id("level-claim")
permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"levels")
when { principal.claims has level && principal.claims.level >= 3 && principal.claims has verified && principal.claims.verified };

@id("self-revoke")
permit (principal, action == Tvm::Action::"revoke", resource);

@id("broker-read")
permit (principal, action == Tvm::Action::"broker", resource == Tvm::Vendor::"datadog")
when { context.method == "GET" };
`;

function policies(text = POLICIES) {
  const problems: ConfigProblem[] = [];
  const cedar = splitCedar('policies/test.cedar', text, problems);
  expect(problems).toEqual([]);
  return cedar;
}

const engine = createCedarPolicyEngine({ cedar: policies() });

type Req = { issuer?: string; claims?: Record<string, unknown>; action?: AuthzRequest['action']; resource?: AuthzRequest['resource']; context?: Record<string, unknown> };
function req({ issuer = 'dev', claims = { team: 'blue' }, action = 'vend', resource = { type: 'Grant', id: 'reports-read' }, context = { durationSeconds: 900 } }: Req): AuthzRequest {
  return { principal: { issuer, iss: `https://${issuer}.example.com`, sub: 'agent-1', claims }, action, resource, context };
}

const CI = { repository_id: '123456', job_workflow_ref: 'acme/app/.github/workflows/release.yml@refs/heads/main' };

describe('decisions', () => {
  const table: [string, Req, boolean, string[]][] = [
    ['a dev agent with a team claim', {}, true, ['dev-agents-read-reports']],
    ['a dev agent without a team claim (deny by default)', { claims: {} }, false, []],
    ['another issuer with a team claim', { issuer: 'github' }, false, []],
    ['a grant no policy names', { resource: { type: 'Grant', id: 'nothing' } }, false, []],
    ['CI on the pinned workflow', { issuer: 'github', claims: CI, resource: { type: 'Grant', id: 'deploy' } }, true, ['ci-deploys-artifacts']],
    [
      'CI on another workflow',
      { issuer: 'github', claims: { ...CI, job_workflow_ref: 'acme/app/.github/workflows/x.yml@refs/heads/main' }, resource: { type: 'Grant', id: 'deploy' } },
      false,
      [],
    ],
    ['restricted data for 900 s', { context: { sensitivity: 'restricted', durationSeconds: 900 } }, true, ['dev-agents-read-reports']],
    ['restricted data for 1800 s: forbid wins over a permit', { context: { sensitivity: 'restricted', durationSeconds: 1800 } }, false, ['no-restricted-data-for-long']],
    ['internal data for 1800 s', { context: { sensitivity: 'internal', durationSeconds: 1800 } }, true, ['dev-agents-read-reports']],
    ['an unknown sensitivity value is dropped, not matched', { context: { sensitivity: 'RESTRICTED', durationSeconds: 1800 } }, true, ['dev-agents-read-reports']],
    ['prod without a task (context has)', { context: { environment: 'prod', durationSeconds: 900 } }, false, ['prod-env-needs-task']],
    ['prod with a task', { context: { environment: 'prod', task: 'deploy', durationSeconds: 900 } }, true, ['dev-agents-read-reports']],
    ['a source IP inside the range', { resource: { type: 'Grant', id: 'office' }, context: { durationSeconds: 900, sourceIp: '10.1.2.3' } }, true, ['office-network-only']],
    ['a source IP outside the range', { resource: { type: 'Grant', id: 'office' }, context: { durationSeconds: 900, sourceIp: '192.168.1.1' } }, false, []],
    ['no source IP', { resource: { type: 'Grant', id: 'office' }, context: { durationSeconds: 900 } }, false, []],
    ['an IPv6 source IP', { resource: { type: 'Grant', id: 'office' }, context: { durationSeconds: 900, sourceIp: '::1' } }, false, []],
    [
      'a claims set containing admins: every permitting id comes back',
      { claims: { groups: ['admins', 'dev'] }, resource: { type: 'Grant', id: 'admin' } },
      true,
      ['admins-any-team', 'admins-group'],
    ],
    ['a claims set with ops only', { claims: { groups: ['ops'] }, resource: { type: 'Grant', id: 'admin' } }, true, ['admins-any-team']],
    ['a claims set without admins', { claims: { groups: ['dev'] }, resource: { type: 'Grant', id: 'admin' } }, false, []],
    ['an empty claims set', { claims: { groups: [] }, resource: { type: 'Grant', id: 'admin' } }, false, []],
    ['number and boolean claims', { claims: { level: 3, verified: true }, resource: { type: 'Grant', id: 'levels' } }, true, ['level-claim']],
    ['a number claim too low', { claims: { level: 2, verified: true }, resource: { type: 'Grant', id: 'levels' } }, false, []],
    ['a revoke anyone may do', { action: 'revoke', context: {} }, true, ['self-revoke']],
    ['a broker GET', { action: 'broker', resource: { type: 'Vendor', id: 'datadog' }, context: { method: 'GET', path: '/api/v1/validate' } }, true, ['broker-read']],
    ['a broker POST', { action: 'broker', resource: { type: 'Vendor', id: 'datadog' }, context: { method: 'POST', path: '/api/v2/series' } }, false, []],
  ];

  it.each(table)('%s', (_name, r, allow, ids) => {
    const d = engine.decide(req(r));
    expect({ allow: d.allow, policyIds: [...d.policyIds].sort() }).toEqual({ allow, policyIds: ids });
  });

  it('a permit whose condition errors does not allow, and says why', () => {
    const e = createCedarPolicyEngine({
      cedar: policies(`@id("typo") permit (principal, action, resource) when { principal.claims.team == "blue" };`),
    });
    const d = e.decide(req({ claims: {} }));
    expect(d).toMatchObject({ allow: false, policyIds: ['typo'] });
    expect(d.errors).toHaveLength(1);
    expect(d.errors[0]).toMatch(/^typo: /);
  });

  describe('a forbid that errors denies (Cedar alone would skip it and let the permit allow)', () => {
    const e = createCedarPolicyEngine({
      cedar: policies(`@id("everyone") permit (principal, action, resource);
@id("no-interns") forbid (principal, action, resource) when { principal.claims has groups && principal.claims.groups.contains("interns") };
@id("no-level-9") forbid (principal, action, resource) when { principal.claims has level && principal.claims.level >= 9 };
@id("no-ops-org") forbid (principal, action, resource) when { principal.claims has org && principal.claims.org.name == "ops" };`),
    });
    it.each<[string, Record<string, unknown>, boolean, string[], boolean]>([
      ['groups as a set naming interns', { groups: ['interns'] }, false, ['no-interns'], false],
      ['groups as a string (one group, as some providers send it)', { groups: 'interns' }, false, ['no-interns'], true],
      ['groups as a string naming someone else', { groups: 'staff' }, false, ['no-interns'], true],
      ['groups as a mixed set', { groups: ['interns', 1] }, false, ['no-interns'], false],
      ['groups as a mixed set without interns', { groups: ['staff', 1] }, true, ['everyone'], false],
      ['groups as a record', { groups: { interns: true } }, false, ['no-interns'], true],
      ['groups as a number', { groups: 1 }, false, ['no-interns'], true],
      ['groups as a boolean', { groups: true }, false, ['no-interns'], true],
      ['groups as a set of staff', { groups: ['staff'] }, true, ['everyone'], false],
      ['level as a string', { level: '9' }, false, ['no-level-9'], true],
      ['level as the number', { level: 9 }, false, ['no-level-9'], false],
      ['level as another number', { level: 3 }, true, ['everyone'], false],
      ['org as a nested record', { org: { name: 'ops' } }, false, ['no-ops-org'], false],
      ['org as a string', { org: 'ops' }, false, ['no-ops-org'], true],
      ['org as a record without name', { org: { id: 1 } }, false, ['no-ops-org'], true],
      ['no claims at all', {}, true, ['everyone'], false],
    ])('%s', (_name, claims, allow, policyIds, errored) => {
      const d = e.decide(req({ claims }));
      expect(d.allow).toBe(allow);
      expect(d.policyIds).toEqual(policyIds);
      // An errored decision names each erroring policy with Cedar's error, for the audit log.
      expect(d.errors.length > 0).toBe(errored);
      for (const m of d.errors) expect(m).toMatch(new RegExp(`^${policyIds[0]}: \\S`));
  });
  });

  it('a context value Cedar cannot take (a malformed source IP) denies', () => {
    const d = engine.decide(req({ resource: { type: 'Grant', id: 'office' }, context: { durationSeconds: 900, sourceIp: 'not-an-ip' } }));
    expect(d.allow).toBe(false);
    expect(d.policyIds).toEqual([]);
    expect(d.errors.length).toBeGreaterThan(0);
  });

  it.each([['__extn'], ['__entity'], ['__expr']])('a string claim named %s stays an ordinary attribute, not a Cedar escape', (name) => {
    expect(engine.decide(req({ claims: { team: 'blue', [name]: 'x' } }))).toMatchObject({ allow: true, policyIds: ['dev-agents-read-reports'] });
    expect(engine.decide(req({ claims: { [name]: 'x' } }))).toMatchObject({ allow: false, policyIds: [] });
  });

  it('no policies at all deny everything', () => {
    const d = createCedarPolicyEngine({ cedar: [] }).decide(req({}));
    expect(d).toEqual({ allow: false, policyIds: [], errors: [] });
  });

  it('two engines keep their own policy sets', () => {
    // both built here, in the test (an engine built at import would be built before Stryker activates a mutant)
    const first = createCedarPolicyEngine({ cedar: policies() });
    const other = createCedarPolicyEngine({ cedar: policies(`@id("all") permit (principal, action, resource);`) });
    expect(other.decide(req({ claims: {} })).policyIds).toEqual(['all']);
    expect(first.decide(req({ claims: {} })).allow).toBe(false);
    expect(engine.decide(req({ claims: {} })).allow).toBe(false);
  });

  it('refuses to build from policies that do not parse, with each of Cedar’s reasons', () => {
    expect(() => createCedarPolicyEngine({ cedar: [{ id: 'bad', file: 'x.cedar', text: 'permit (principal, action, resource) when {' }] })).toThrow();
    expect(() =>
      createCedarPolicyEngine({
        cedar: [
          { id: 'x', file: 'x.cedar', text: 'permit (principal, action, resource) when {' },
          { id: 'y', file: 'y.cedar', text: 'forbid (' },
        ],
      }),
    ).toThrow(/^Cedar policies do not parse: failed to parse policy with id `[xy]`[^;]*; failed to parse policy with id `[xy]`/);
  });

  it('the principal is the Cedar entity Tvm::Workload::"<issuer>|<sub>"', () => {
    const byId = createCedarPolicyEngine({ cedar: policies(`@id("one") permit (principal == Tvm::Workload::"dev|agent-1", action, resource);`) });
    expect(byId.decide(req({})).allow).toBe(true);
    expect(byId.decide(req({ issuer: 'ci' })).allow).toBe(false);
  });

  it('a source IP that is not a string is an erroring policy, not an IP (deny, naming the policy)', () => {
    const d = engine.decide(req({ resource: { type: 'Grant', id: 'office' }, context: { durationSeconds: 900, sourceIp: 167772161 } }));
    expect(d.allow).toBe(false);
    expect(d.policyIds).toEqual(['office-network-only']);
  });

  it('a malformed request context denies with Cedar’s reasons as text', () => {
    const d = engine.decide(req({ resource: { type: 'Grant', id: 'office' }, context: { durationSeconds: 900, sourceIp: 'not-an-ip' } }));
    expect(d.errors.length).toBeGreaterThan(0);
    for (const m of d.errors) expect(m).toMatch(/\S/);
  });

  it('a sensitivity outside the four levels is left out of the context; a known one (or a non-string) is kept', () => {
    const open = createCedarPolicyEngine({ cedar: policies(`@id("unlabelled") permit (principal, action, resource) when { !(context has sensitivity) };`) });
    const allow = (sensitivity: unknown) => open.decide(req({ context: { durationSeconds: 900, sensitivity } })).allow;
    expect(allow('top-secret')).toBe(true);
    for (const known of ['public', 'internal', 'confidential', 'restricted']) expect(allow(known), known).toBe(false);
    expect(allow(3)).toBe(false);
    expect(allow(undefined)).toBe(true);
  });
});

describe('cedarSchema', () => {
  it('with no claim names declares an empty claims record', () => {
    expect(cedarSchema()).toContain('type Claims = {  };');
  });
});

describe('claimNames', () => {
  it.each([
    ['principal.claims.team == "x"', ['team']],
    ['principal.claims has team && principal.claims has "odd-name"', ['team', 'odd-name']],
    ['principal.claims["a.b"] == "x"', ['a.b']],
    ['principal.claims . spaced', ['spaced']],
    ['principal.claims has  team && principal.claims has  "odd-name"', ['team', 'odd-name']],
    ['principal.claims[ "a.b" ] == "x" && principal.claims["c"  ] == "y"', ['a.b', 'c']],
    ['principal.issuer == "claims"', []],
  ])('%s → %j', (text, names) => {
    expect(claimNames(text)).toEqual(names);
  });
});

describe('validatePolicies', () => {
  it('accepts the policies above with no problems', () => {
    expect(validatePolicies({ cedar: policies() }).problems).toEqual([]);
  });

  const one = (text: string) => validatePolicies({ cedar: [{ id: 'p', file: 'policies/p.cedar', text }] });
  const VEND = 'permit (principal, action == Tvm::Action::"vend", resource)';

  it('a policy that does not parse is a problem naming its file and id, and nothing is validated further', () => {
    const out = validatePolicies({
      cedar: [
        { id: 'p', file: 'policies/p.cedar', text: 'permit (principal, action, resource) when {' },
        { id: 'q', file: 'policies/q.cedar', text: `${VEND} when { context.nope == "x" };` },
      ],
    });
    expect(out).toEqual({ problems: [{ file: 'policies/p.cedar', path: '@id("p")', message: expect.stringMatching(/^Cedar: failed to parse policy with id `p`/) }], notes: [] });
  });

  it('a validation error is a problem quoting the offending text', () => {
    expect(one(`${VEND} when { context.nope == "x" };`)).toEqual({
      problems: [{ file: 'policies/p.cedar', path: '@id("p")', message: expect.stringMatching(/^Cedar: .*`nope`.* \(at 'context\.nope'\)$/) }],
      notes: [],
    });
  });

  it('a claim used as a non-string is a note (checked at request time), not a problem', () => {
    expect(one(`${VEND} when { principal.claims has level && principal.claims.level >= 3 };`)).toEqual({
      problems: [],
      notes: [`policies/p.cedar: @id("p"): 'principal.claims.level' uses a token claim as a non-string; claim types differ per issuer, so this is checked at request time, not here`],
    });
  });

  it('an impossible policy is a problem; another warning is a note', () => {
    expect(one(`${VEND} when { 1 == 2 };`)).toEqual({
      problems: [{ file: 'policies/p.cedar', path: '@id("p")', message: expect.stringMatching(/^Cedar: .*impossible/) }],
      notes: [],
    });
    expect(one(`${VEND} when { principal.sub == "p\u0430ypal" };`)).toEqual({
      problems: [],
      notes: [expect.stringMatching(/^policies\/p\.cedar: @id\("p"\): .*mixed scripts/)],
    });
  });
});
