/**
 * Session-policy and tag rendering: placeholders fill in safe values only; anything that could
 * change the policy's structure refuses the request (never escaped into place).
 */
import { describe, expect, it } from 'vitest';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import type { GrantConfig } from '../../functions/core/config.js';
import { TvmError } from '../../functions/core/errors.js';
import {
  MAX_SESSION_POLICY_CHARS,
  renderSessionPolicy,
  renderSessionTags,
  unknownPlaceholders,
  type RenderValues,
} from '../../functions/core/render-session-policy.js';

function grant(resource: string, sessionTags?: Record<string, string>, extra: Partial<GrantConfig['sessionPolicy']['Statement'][0]> = {}): GrantConfig {
  return {
    name: 'reports-read',
    roleArn: 'arn:aws:iam::123456789012:role/tvm/reports-read',
    durationSeconds: { default: 900, max: 3600 },
    sessionPolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: [resource], ...extra }] },
    sessionTags,
  };
}

const values = (claims: Record<string, unknown> = {}, context: Record<string, unknown> = {}): RenderValues => ({
  claims: { team: 'blue', repository: 'acme/app', n: 42, ok: true, ...claims },
  context: { task: 'nightly-report', ...context },
  principal: 'github|repo:acme/app:ref:refs/heads/main',
  leaseId: 'Labcdefghijklmnopqrstuvwxyz',
});

function refusal(f: () => unknown): { code: string; reason: string; detail?: Record<string, unknown> } {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TvmError);
    const t = e as TvmError;
    return { code: t.code, reason: t.reason, detail: t.detail };
  }
  throw new Error('expected a refusal');
}

const resourceOf = (policy: string) => JSON.parse(policy).Statement[0].Resource[0];

describe('renderSessionPolicy fills placeholders', () => {
  it.each([
    ['arn:aws:s3:::reports/${claims.team}/*', 'arn:aws:s3:::reports/blue/*'],
    ['arn:aws:s3:::artifacts/${claims.repository}/*', 'arn:aws:s3:::artifacts/acme/app/*'],
    ['arn:aws:s3:::r/${claims.n}/${claims.ok}', 'arn:aws:s3:::r/42/true'],
    ['arn:aws:s3:::r/${context.task}', 'arn:aws:s3:::r/nightly-report'],
    ['arn:aws:s3:::r/${principal}', 'arn:aws:s3:::r/github|repo:acme/app:ref:refs/heads/main'],
    ['arn:aws:s3:::r/${lease.id}', 'arn:aws:s3:::r/Labcdefghijklmnopqrstuvwxyz'],
    ['arn:aws:s3:::r/${claims.team}-${claims.team}', 'arn:aws:s3:::r/blue-blue'],
    ['arn:aws:s3:::static/*', 'arn:aws:s3:::static/*'],
  ])('%s → %s', (template, rendered) => {
    expect(resourceOf(renderSessionPolicy(grant(template), values()))).toBe(rendered);
  });

  it('renders minified JSON with the same structure', () => {
    const out = renderSessionPolicy(grant('arn:aws:s3:::reports/${claims.team}/*'), values());
    expect(out).not.toMatch(/\s/);
    expect(JSON.parse(out)).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::reports/blue/*'] }],
    });
  });

  it('fills placeholders in Condition keys and values', () => {
    const g = grant('*', undefined, { Condition: { StringEquals: { 'aws:PrincipalTag/${claims.team}': '${context.task}' } } });
    expect(JSON.parse(renderSessionPolicy(g, values())).Statement[0].Condition).toEqual({ StringEquals: { 'aws:PrincipalTag/blue': 'nightly-report' } });
  });
});

describe('renderSessionPolicy keeps what has no placeholder', () => {
  it('numbers, booleans and strings in a Condition render as they are (only strings are searched)', () => {
    const g = grant('arn:aws:s3:::reports/*', undefined, {
      Condition: { NumericLessThan: { 'aws:MultiFactorAuthAge': 3600 }, Bool: { 'aws:SecureTransport': true }, StringEquals: { 's3:prefix': 'a' } } as never,
    });
    expect(JSON.parse(renderSessionPolicy(g, values())).Statement[0].Condition).toEqual({
      NumericLessThan: { 'aws:MultiFactorAuthAge': 3600 },
      Bool: { 'aws:SecureTransport': true },
      StringEquals: { 's3:prefix': 'a' },
    });
  });
});

describe('renderSessionPolicy refuses', () => {
  // A claim value that tries to widen the policy is refused, never escaped.
  it.each([
    ['a wildcard *', '*'],
    ['a wildcard ?', 'a?b'],
    ['a double quote', 'a"b'],
    ['a JSON breakout', 'x"],"Resource":["*'],
    ['a nested placeholder ${', '${aws:username}'],
    ['a dollar', 'a$b'],
    ['a space', 'a b'],
    ['a newline', 'a\nb'],
    ['a NUL', 'a\u0000b'],
    ['a backslash', 'a\\b'],
    ['a pipe (only the principal may carry one)', 'a|b'],
    ['non-ASCII', 'blü'],
    ['an empty string', ''],
    ['over 256 characters', 'a'.repeat(257)],
  ])('a claim with %s → placeholder_unsafe', (_name, team) => {
    expect(refusal(() => renderSessionPolicy(grant('arn:aws:s3:::reports/${claims.team}/*'), values({ team })))).toMatchObject({
      code: 'invalid_request',
      reason: 'placeholder_unsafe',
      detail: { grant: 'reports-read', placeholder: 'claims.team' },
    });
  });

  it.each([
    ['an array', ['a', 'b']],
    ['an object', { a: 1 }],
  ])('a claim that is %s → placeholder_unsafe', (_name, team) => {
    expect(refusal(() => renderSessionPolicy(grant('r/${claims.team}'), values({ team })))).toMatchObject({ code: 'invalid_request', reason: 'placeholder_unsafe' });
  });

  it('a context value with a wildcard → placeholder_unsafe', () => {
    expect(refusal(() => renderSessionPolicy(grant('r/${context.task}'), values({}, { task: '*' })))).toMatchObject({
      code: 'invalid_request',
      reason: 'placeholder_unsafe',
    });
  });

  it.each([['dev|*'], ['dev|a*b'], ['*dev|ab'], ['dev|a b'], ['dev|ab\n']])('a principal %j (a character outside the safe set, wherever it is) → placeholder_unsafe', (principal) => {
    expect(refusal(() => renderSessionPolicy(grant('r/${principal}'), { ...values(), principal }))).toMatchObject({ reason: 'placeholder_unsafe' });
  });

  it.each([
    ['an absent claim', 'r/${claims.missing}', values()],
    ['a null claim', 'r/${claims.team}', values({ team: null })],
    ['an absent context value', 'r/${context.tool}', values()],
    ['an inherited property', 'r/${claims.toString}', values()],
    ['an inherited context property', 'r/${context.constructor}', values()],
  ])('%s → placeholder_missing, naming the grant and the placeholder', (_name, template, v) => {
    expect(refusal(() => renderSessionPolicy(grant(template), v))).toEqual({
      code: 'invalid_request',
      reason: 'placeholder_missing',
      detail: { grant: 'reports-read', placeholder: template.slice('r/${'.length, -1) },
    });
  });

  it('a rendered policy over 2,048 characters → session_policy_too_large, naming the grant', () => {
    const long = grant('arn:aws:s3:::r/${claims.team}/' + 'x'.repeat(MAX_SESSION_POLICY_CHARS));
    expect(refusal(() => renderSessionPolicy(long, values()))).toMatchObject({
      code: 'invalid_request',
      reason: 'session_policy_too_large',
      detail: { grant: 'reports-read' },
    });
  });

  it('a policy of exactly 2,048 characters renders', () => {
    const base = renderSessionPolicy(grant('r/'), values()).length;
    const g = grant('r/' + 'x'.repeat(MAX_SESSION_POLICY_CHARS - base));
    expect(renderSessionPolicy(g, values())).toHaveLength(MAX_SESSION_POLICY_CHARS);
  });
});

describe('renderSessionTags', () => {
  it('renders the grant tags and nothing else', () => {
    expect(renderSessionTags(grant('*', { team: '${claims.team}', task: 'fixed-${context.task}' }), values())).toEqual({
      team: 'blue',
      task: 'fixed-nightly-report',
    });
    expect(renderSessionTags(grant('*'), values())).toEqual({});
  });

  it.each([
    ['*', 'placeholder_unsafe'],
    ['a b', 'placeholder_unsafe'],
    [undefined, 'placeholder_missing'],
  ])('a tag claim %j → %s', (team, reason) => {
    expect(refusal(() => renderSessionTags(grant('*', { team: '${claims.team}' }), values({ team })))).toMatchObject({ code: 'invalid_request', reason });
  });
});

describe('unknownPlaceholders', () => {
  it.each([
    ['r/${claims.team}', []],
    ['r/${claims.a-b:c.d_e}', []],
    ['${context.task}${context.tool}${context.sensitivity}${context.environment}', []],
    ['${principal}/${lease.id}', []],
    ['no placeholders', []],
    ['${claim.team}', ['${claim.team}']],
    ['${context.other}', ['${context.other}']],
    ['${aws:username}', ['${aws:username}']],
    ['${claims.}', ['${claims.}']],
    ['${}', ['${}']],
    ['${lease.expiresAt}', ['${lease.expiresAt}']],
    ['${xprincipal}', ['${xprincipal}']],
    ['${principals}', ['${principals}']],
    ['${lease.idx}', ['${lease.idx}']],
    ['${my.claims.team}', ['${my.claims.team}']],
    ['r/${claims.team', ['${ (unclosed)']],
    ['${principal} and ${claims.x', ['${ (unclosed)']],
  ])('%s → %j', (text, bad) => {
    expect(unknownPlaceholders(text)).toEqual(bad);
  });
});

describe('bind: credentials that work only where they were vended', () => {
  const bound = (bind: GrantConfig['bind']): GrantConfig => ({ ...grant('arn:aws:s3:::reports/*'), bind });
  const ROLE = 'arn:aws:iam::123456789012:role/tvm/reports-read';
  const ALLOW_ALL = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

  /** IAM's answer (a real policy engine) for s3:GetObject with this session policy and context. */
  async function decide(sessionPolicy: string, context: Record<string, string>): Promise<string> {
    const result = await runSimulation(
      {
        request: {
          principal: `arn:aws:sts::123456789012:assumed-role/reports-read/tvm-L`,
          action: 's3:GetObject',
          resource: { resource: 'arn:aws:s3:::reports/x.csv', accountId: '123456789012' },
          contextVariables: { 'aws:PrincipalArn': ROLE, 'aws:ViaAWSService': 'false', ...context },
        },
        identityPolicies: [{ name: 'role', policy: ALLOW_ALL }],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        sessionPolicy: JSON.parse(sessionPolicy),
      },
      { simulationMode: 'Strict' },
    );
    if (result.resultType === 'error') throw new Error(result.errors.message);
    return result.overallResult;
  }

  it.each([
    ['the address that vended them', { 'aws:SourceIp': '127.0.0.1' }, 'Allowed'],
    ['another address', { 'aws:SourceIp': '127.0.0.2' }, 'ExplicitlyDenied'],
    ['no address at all', {}, 'ExplicitlyDenied'],
    ['an AWS service on the caller’s behalf', { 'aws:SourceIp': '52.95.1.1', 'aws:ViaAWSService': 'true' }, 'Allowed'],
  ])('sourceIp: a request from %s is %s', async (_label, context, want) => {
    const policy = renderSessionPolicy(bound({ sourceIp: true }), { ...values(), sourceIp: '127.0.0.1' });
    expect(JSON.parse(policy).Statement.at(-1)).toEqual({
      Sid: 'TvmBindSourceIp',
      Effect: 'Deny',
      Action: '*',
      Resource: '*',
      Condition: { NotIpAddress: { 'aws:SourceIp': '127.0.0.1/32' }, Bool: { 'aws:ViaAWSService': 'false' } },
    });
    expect(await decide(policy, context)).toBe(want);
  });

  it('binds an IPv6 caller to its /128', () => {
    const policy = renderSessionPolicy(bound({ sourceIp: true }), { ...values(), sourceIp: '2001:db8::7' });
    expect(JSON.parse(policy).Statement.at(-1).Condition.NotIpAddress).toEqual({ 'aws:SourceIp': '2001:db8::7/128' });
  });

  it.each([[undefined], [''], ['not-an-ip'], ['10.0.0.7/8']])('refuses (fails closed) when the caller’s address is %s', (sourceIp) => {
    const g = bound({ sourceIp: true });
    expect(refusal(() => renderSessionPolicy(g, { ...values(), sourceIp }))).toEqual({ code: 'access_denied', reason: 'source_ip_unknown', detail: { grant: g.name } });
  });

  it.each([
    ['through a listed endpoint', { 'aws:SourceVpce': 'vpce-0123456789abcdef0' }, 'Allowed'],
    ['through another endpoint', { 'aws:SourceVpce': 'vpce-0fffffffffffffff0' }, 'ExplicitlyDenied'],
    ['from the internet', { 'aws:SourceIp': '198.51.100.7' }, 'ExplicitlyDenied'],
  ])('sourceVpce: a request %s is %s', async (_label, context, want) => {
    const policy = renderSessionPolicy(bound({ sourceVpce: ['vpce-0123456789abcdef0', 'vpce-0aaaaaaaaaaaaaaa0'] }), values());
    expect(JSON.parse(policy).Statement.at(-1)).toEqual({
      Sid: 'TvmBindSourceVpce',
      Effect: 'Deny',
      Action: '*',
      Resource: '*',
      Condition: { StringNotEquals: { 'aws:SourceVpce': ['vpce-0123456789abcdef0', 'vpce-0aaaaaaaaaaaaaaa0'] }, Bool: { 'aws:ViaAWSService': 'false' } },
    });
    expect(await decide(policy, context)).toBe(want);
  });

  it('counts the bind statement in the 2,048-character limit', () => {
    // A template that fits alone but not with the statement.
    const base = renderSessionPolicy(grant('arn:aws:s3:::r/x'), values()).length;
    const pad = 'p'.repeat(MAX_SESSION_POLICY_CHARS - base - 10);
    const g = grant(`arn:aws:s3:::r/${pad}`);
    expect(renderSessionPolicy(g, values()).length).toBeLessThanOrEqual(MAX_SESSION_POLICY_CHARS);
    expect(refusal(() => renderSessionPolicy({ ...g, bind: { sourceIp: true } }, { ...values(), sourceIp: '127.0.0.1' }))).toMatchObject({
      code: 'invalid_request',
      reason: 'session_policy_too_large',
    });
  });

  it('leaves an unbound grant as it was', () => {
    expect(JSON.parse(renderSessionPolicy(grant('arn:aws:s3:::r/x'), { ...values(), sourceIp: '127.0.0.1' })).Statement).toHaveLength(1);
  });
});
