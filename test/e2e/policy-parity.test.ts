/**
 * `tvm policy eval` decides with exactly the service's code: one table of claim shapes against
 * forbid policies, each row run through a vend on the local stack and through `policy eval`, the
 * two decisions asserted equal (and equal to the row). A policy that errors is a deny on both,
 * audited as `policy_error` naming the policy; a claim Cedar cannot carry is refused by both.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as policyCommand } from '../../cli/commands/policy.js';
import { Refusal } from '../../cli/lib.js';
import { startTestStack, writeConfig, type TestStack } from '../helpers/stack.js';

const YAML = `
issuers:
  - { name: dev, issuer: "http://127.0.0.1:1/_dev/issuer", audiences: [tvm], algorithms: [ES256] }
grants:
  - name: reports-read
    roleArn: arn:aws:iam::123456789012:role/tvm/reports-read
    sessionPolicy: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: [s3:GetObject], Resource: ["arn:aws:s3:::reports/*"] }] }
local:
  devIssuer: dev
`;
const POLICIES = {
  'p.cedar': `
@id("dev-reads") permit (principal, action == Tvm::Action::"vend", resource == Tvm::Grant::"reports-read") when { principal.issuer == "dev" };
@id("no-interns") forbid (principal, action, resource) when { principal.claims has groups && principal.claims.groups.contains("interns") };
@id("no-high-levels") forbid (principal, action, resource) when { principal.claims has level && principal.claims.level >= 9 };
@id("no-ops-org") forbid (principal, action, resource) when { principal.claims has org && principal.claims.org.name == "ops" };
@id("no-long-restricted") forbid (principal, action == Tvm::Action::"vend", resource) when { context has sensitivity && context.sensitivity == "restricted" && context.durationSeconds > 900 };
`,
};

let stack: TestStack;
let configPath: string;
beforeAll(async () => {
  configPath = writeConfig(YAML, POLICIES);
  stack = await startTestStack({ configPath });
});
afterAll(() => stack?.close());

type Outcome = 'allow' | 'deny' | 'refused';
type Row = [name: string, claims: Record<string, unknown>, context: Record<string, unknown>, want: Outcome, reason?: string];

const rows: Row[] = [
  ['groups a set naming interns', { groups: ['interns'] }, {}, 'deny', 'policy_deny'],
  ['groups a string naming interns (one group, as some providers send it)', { groups: 'interns' }, {}, 'deny', 'policy_error'],
  ['groups a string naming another group', { groups: 'staff' }, {}, 'deny', 'policy_error'],
  ['groups a mixed set naming interns', { groups: ['interns', 1] }, {}, 'deny', 'policy_deny'],
  ['groups a mixed set without interns', { groups: ['staff', 1] }, {}, 'allow'],
  ['groups a set of records', { groups: [{ name: 'interns' }] }, {}, 'allow'],
  ['groups a record', { groups: { interns: true } }, {}, 'deny', 'policy_error'],
  ['groups a number', { groups: 7 }, {}, 'deny', 'policy_error'],
  ['groups a boolean', { groups: false }, {}, 'deny', 'policy_error'],
  ['groups null', { groups: null }, {}, 'refused', 'claim_unsupported'],
  ['groups a set holding null', { groups: ['staff', null] }, {}, 'refused', 'claim_unsupported'],
  ['groups a set of staff', { groups: ['staff'] }, {}, 'allow'],
  ['level a number over the bound', { level: 9 }, {}, 'deny', 'policy_deny'],
  ['level a number under the bound', { level: 3 }, {}, 'allow'],
  ['level a string', { level: '9' }, {}, 'deny', 'policy_error'],
  ['level a fraction', { level: 9.5 }, {}, 'refused', 'claim_unsupported'],
  ['org a nested record naming ops', { org: { name: 'ops' } }, {}, 'deny', 'policy_deny'],
  ['org a nested record naming another', { org: { name: 'dev' } }, {}, 'allow'],
  ['org a record without name', { org: { id: 1 } }, {}, 'deny', 'policy_error'],
  ['org a string', { org: 'ops' }, {}, 'deny', 'policy_error'],
  ['no claims the policies name', {}, {}, 'allow'],
  ['restricted for longer than 900 s', {}, { sensitivity: 'restricted', durationSeconds: 1800 }, 'deny', 'policy_deny'],
  ['restricted for 900 s', {}, { sensitivity: 'restricted', durationSeconds: 900 }, 'allow'],
];

async function viaService(claims: Record<string, unknown>, context: Record<string, unknown>): Promise<{ outcome: Outcome; reason?: string; policies?: unknown }> {
  const { durationSeconds, ...ctx } = context;
  const sessions = stack.stack.sessionCount();
  const leases = (await stack.runtime.leases.list({ limit: 1000 })).length;
  const answer = await stack.vend({ grant: 'reports-read', ...(durationSeconds ? { durationSeconds } : {}), ...(Object.keys(ctx).length ? { context: ctx } : {}) }, await stack.mintToken(claims));
  const event = stack.logs.map((l) => JSON.parse(l) as Record<string, any>).filter((e) => e.event === 'vend').at(-1)!;
  if (answer.status !== 200) {
    // A refusal writes nothing and calls no STS.
    expect(stack.stack.sessionCount()).toBe(sessions);
    expect((await stack.runtime.leases.list({ limit: 1000 })).length).toBe(leases);
  }
  const outcome: Outcome = answer.status === 200 ? 'allow' : answer.status === 403 ? 'deny' : 'refused';
  if (answer.status === 401) expect(answer.body.error).toBe('invalid_token');
  return { outcome, reason: event.reason, policies: event.detail?.policies };
}

async function viaPolicyEval(claims: Record<string, unknown>, context: Record<string, unknown>): Promise<{ outcome: Outcome; out: string }> {
  let out = '';
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s), env: {} };
  try {
    const code = await policyCommand(['eval', '--config', configPath, '--principal', 'dev|agent-1', '--grant', 'reports-read', '--claims', JSON.stringify(claims), '--context', JSON.stringify(context)], io);
    expect(code).toBe(0);
  } catch (e) {
    if (e instanceof Refusal) return { outcome: 'refused', out: e.message };
    throw e;
  }
  return { outcome: out.startsWith('allow\n') ? 'allow' : out.startsWith('deny\n') ? 'deny' : ('?' as Outcome), out };
}

describe('the service and `tvm policy eval` decide alike', () => {
  it.each(rows)('%s', async (_name, claims, context, want, reason) => {
    const service = await viaService(claims, context);
    const offline = await viaPolicyEval(claims, context);
    expect(service.outcome).toBe(want);
    expect(offline.outcome).toBe(service.outcome);
    if (reason) expect(service.reason).toBe(reason);
    if (reason === 'policy_error') {
      // Logged with the erroring policy's id, and `policy eval` names the same policy and error.
      expect(Array.isArray(service.policies) && service.policies.length).toBeTruthy();
      for (const id of service.policies as string[]) expect(offline.out).toContain(`error in policy ${id}: `);
    }
    if (reason === 'claim_unsupported') expect(offline.out).toContain('claim_unsupported');
  });
});
