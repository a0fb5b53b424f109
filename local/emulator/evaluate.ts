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

/** What a request adds to a role session's context: where it came from and how. */
export interface RequestFacts {
  /** The TCP peer's address (`aws:SourceIp`). */
  sourceIp?: string;
  /** Default true (the STS/IAM emulator stands in for an https endpoint); the local S3 is plain http. */
  secureTransport?: boolean;
  /** Service-specific keys (`s3:prefix`, `sts:RoleSessionName`, `aws:RequestTag/…`). */
  extra?: Record<string, string | string[]>;
}

/** The request context AWS would supply for a call made with this role session. */
export function requestContext(s: SessionFacts, nowMs: number, req: RequestFacts = {}): Record<string, string | string[]> {
  const ctx: Record<string, string | string[]> = {
    'aws:userid': s.userId,
    'aws:PrincipalArn': s.roleArn,
    'aws:PrincipalAccount': s.accountId,
    'aws:PrincipalType': 'AssumedRole',
    'aws:TokenIssueTime': isoSeconds(s.issuedAt),
    ...timeAndTransport(nowMs, req),
  };
  if (s.sourceIdentity !== undefined) ctx['aws:SourceIdentity'] = s.sourceIdentity;
  for (const t of s.tags) ctx[`aws:PrincipalTag/${t.Key}`] = t.Value;
  return { ...ctx, ...req.extra };
}

/** The keys every request carries whoever makes it. */
export function timeAndTransport(nowMs: number, req: RequestFacts = {}): Record<string, string> {
  const ctx: Record<string, string> = {
    'aws:CurrentTime': isoSeconds(nowMs),
    'aws:EpochTime': String(Math.floor(nowMs / 1000)),
    'aws:SecureTransport': String(req.secureTransport ?? true),
    'aws:ViaAWSService': 'false',
  };
  if (req.sourceIp !== undefined) ctx['aws:SourceIp'] = req.sourceIp;
  return ctx;
}

/**
 * Evaluates one request as IAM does: identity policies ∩ session policy (∪ a resource policy
 * that names the principal), explicit denies winning.
 */
export async function evaluatePolicies(input: {
  principalArn: string;
  identityPolicies: PolicyInput[];
  sessionPolicy?: unknown;
  /** A resource-based policy (a role's trust policy for sts:AssumeRole). */
  resourcePolicy?: unknown;
  action: string;
  resource: string;
  resourceAccountId: string;
  context: Record<string, string | string[]>;
}): Promise<EvaluationOutcome> {
  const simulation: Simulation = {
    request: {
      principal: input.principalArn,
      action: input.action,
      resource: { resource: input.resource, accountId: input.resourceAccountId },
      contextVariables: input.context,
    },
    identityPolicies: input.identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
  if (input.sessionPolicy !== undefined) simulation.sessionPolicy = input.sessionPolicy;
  if (input.resourcePolicy !== undefined) simulation.resourcePolicy = input.resourcePolicy;
  const result = await runSimulation(simulation, { simulationMode: 'Strict' });
  if (result.resultType === 'error') {
    return { decision: 'Error', detail: result.errors.message };
  }
  return { decision: result.overallResult };
}

/**
 * Evaluates identity policies ∩ session policy, explicit denies winning, for one request made
 * with a role session (resources in the session's own account).
 */
export async function evaluateRequest(input: {
  session: SessionFacts;
  identityPolicies: PolicyInput[];
  sessionPolicy?: unknown;
  action: string;
  resource: string;
  nowMs: number;
  request?: RequestFacts;
}): Promise<EvaluationOutcome> {
  return evaluatePolicies({
    principalArn: input.session.assumedRoleArn,
    identityPolicies: input.identityPolicies,
    sessionPolicy: input.sessionPolicy,
    action: input.action,
    resource: input.resource,
    resourceAccountId: input.session.accountId,
    context: requestContext(input.session, input.nowMs, input.request),
  });
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
