/**
 * IAM policy evaluation for the local STS/IAM emulator, with `@cloud-copilot/iam-simulate`
 * (AGPL-3.0: dev/test only, never bundled into a Lambda).
 */
import { runSimulation, type Simulation } from '@cloud-copilot/iam-simulate';

export interface SessionFacts {
  accountId: string;
  roleArn: string;
  /** `<role id>:<session name>` */
  userId: string;
  assumedRoleArn: string;
  sourceIdentity?: string;
  tags: { Key: string; Value: string }[];
  issuedAt: number;
}

export interface PolicyInput {
  name: string;
  policy: unknown;
}

export type Decision = 'Allowed' | 'ExplicitlyDenied' | 'ImplicitlyDenied' | 'Error';

export interface EvaluationOutcome {
  decision: Decision;
  detail?: string;
}

function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** The request context AWS would supply for a call made with this role session. */
export function requestContext(s: SessionFacts, nowMs: number): Record<string, string> {
  const ctx: Record<string, string> = {
    'aws:userid': s.userId,
    'aws:PrincipalArn': s.roleArn,
    'aws:PrincipalAccount': s.accountId,
    'aws:PrincipalType': 'AssumedRole',
    'aws:TokenIssueTime': isoSeconds(s.issuedAt),
    'aws:CurrentTime': isoSeconds(nowMs),
    'aws:EpochTime': String(Math.floor(nowMs / 1000)),
    'aws:SecureTransport': 'true',
    'aws:ViaAWSService': 'false',
  };
  if (s.sourceIdentity !== undefined) ctx['aws:SourceIdentity'] = s.sourceIdentity;
  for (const t of s.tags) ctx[`aws:PrincipalTag/${t.Key}`] = t.Value;
  return ctx;
}

/**
 * Evaluates identity policies ∩ session policy, explicit denies winning, for one request.
 */
export async function evaluateRequest(input: {
  session: SessionFacts;
  identityPolicies: PolicyInput[];
  sessionPolicy?: unknown;
  action: string;
  resource: string;
  nowMs: number;
}): Promise<EvaluationOutcome> {
  const simulation: Simulation = {
    request: {
      principal: input.session.assumedRoleArn,
      action: input.action,
      resource: { resource: input.resource, accountId: input.session.accountId },
      contextVariables: requestContext(input.session, input.nowMs),
    },
    identityPolicies: input.identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
  if (input.sessionPolicy !== undefined) simulation.sessionPolicy = input.sessionPolicy;
  const result = await runSimulation(simulation, { simulationMode: 'Strict' });
  if (result.resultType === 'error') {
    return { decision: 'Error', detail: result.errors.message };
  }
  return { decision: result.overallResult };
}

/** Validates an identity policy document; returns error messages (empty when valid). */
export async function identityPolicyErrors(policy: unknown): Promise<string[]> {
  const result = await runSimulation(
    {
      request: {
        principal: 'arn:aws:iam::123456789012:role/validate',
        action: 'sts:GetAccessKeyInfo',
        resource: { resource: '*', accountId: '123456789012' },
        contextVariables: {},
      },
      identityPolicies: [{ name: 'candidate', policy }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    { simulationMode: 'Strict' },
  );
  if (result.resultType !== 'error') return [];
  const errs = result.errors.identityPolicyErrors?.['candidate'] ?? [];
  return errs.length > 0 ? errs.map((e) => `${e.path}: ${e.message}`) : [result.errors.message];
}

function globToRegExp(pattern: string, caseInsensitive: boolean): RegExp {
  const src = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${src}$`, caseInsensitive ? 'is' : 's');
}

function asArray(v: unknown): unknown[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

function anyMatches(patterns: unknown, value: string, caseInsensitive: boolean): boolean {
  return asArray(patterns).some((p) => typeof p === 'string' && globToRegExp(p, caseInsensitive).test(value));
}

/**
 * Does any Deny statement of these policies apply to `sts:GetCallerIdentity` for this session?
 *
 * AWS answers GetCallerIdentity even under an explicit deny, and iam-simulate models that (it
 * short-circuits the action to Allowed). The emulator deliberately differs — it refuses sessions
 * the role's inline policies deny — so that a revocation is observable with
 * `aws sts get-caller-identity`. Action and resource matching of the Deny statements is done
 * here; their conditions are evaluated by iam-simulate, by re-targeting each applicable Deny at
 * a surrogate wildcard-only action (`sts:GetAccessKeyInfo`) with its Condition unchanged.
 */
export async function deniesGetCallerIdentity(
  session: SessionFacts,
  policies: PolicyInput[],
  nowMs: number,
): Promise<{ denied: boolean; policyName?: string }> {
  const surrogate = 'sts:GetAccessKeyInfo';
  for (const p of policies) {
    const doc = p.policy as { Statement?: unknown } | null;
    if (!doc || typeof doc !== 'object') continue;
    const statements: Record<string, unknown>[] = [];
    for (const st of asArray(doc.Statement)) {
      if (!st || typeof st !== 'object') continue;
      const s = st as Record<string, unknown>;
      if (s['Effect'] !== 'Deny') continue;
      const actionApplies =
        s['Action'] !== undefined
          ? anyMatches(s['Action'], 'sts:GetCallerIdentity', true)
          : s['NotAction'] !== undefined && !anyMatches(s['NotAction'], 'sts:GetCallerIdentity', true);
      // GetCallerIdentity has no resource type: only statements covering "*" apply.
      const resourceApplies =
        s['Resource'] !== undefined
          ? anyMatches(s['Resource'], '*', false)
          : s['NotResource'] !== undefined && !anyMatches(s['NotResource'], '*', false);
      if (!actionApplies || !resourceApplies) continue;
      const rewritten: Record<string, unknown> = { Effect: 'Deny', Action: surrogate, Resource: '*' };
      if (s['Condition'] !== undefined) rewritten['Condition'] = s['Condition'];
      statements.push(rewritten);
    }
    if (statements.length === 0) continue;
    const outcome = await evaluateRequest({
      session,
      identityPolicies: [
        { name: 'allow-all', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } },
        {
          name: p.name,
          policy: typeof (doc as { Version?: unknown }).Version === 'string'
            ? { Version: (doc as { Version: string }).Version, Statement: statements }
            : { Statement: statements },
        },
      ],
      action: surrogate,
      resource: '*',
      nowMs,
    });
    if (outcome.decision === 'ExplicitlyDenied') return { denied: true, policyName: p.name };
  }
  return { denied: false };
}
