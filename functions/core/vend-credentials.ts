/**
 * The vend use case: a verified token, a policy decision and a grant become STS credentials
 * and an active lease. No credentials leave without an active lease.
 */
import type { GrantConfig, TvmConfig } from './config.js';
import { MAX_DURATION_SECONDS, MIN_DURATION_SECONDS } from './config.js';
import { AccessDenied, InvalidRequest, Throttled, TvmError, UpstreamUnavailable } from './errors.js';
import { sessionNameFor, sourceIdentityFor } from './lease.js';
import { allLeases } from './lease-pages.js';
import { principalOf, requireAllow } from './decision.js';
import type { AuditRecord, AuthzRequest, Clock, CredentialIssuer, IdGenerator, IssuedCredentials, Lease, LeaseStore, PolicyEngine, RateLimiter, RequestContext } from './ports.js';
import type { RememberingRateLimiter } from './full-windows.js';
import { renderSessionPolicy, renderSessionTags } from './render-session-policy.js';
import type { VerifiedToken } from './verify-token.js';

export interface VendDeps {
  config: Pick<TvmConfig, 'grants' | 'leases'>;
  policy: PolicyEngine;
  leases: LeaseStore;
  credentials: CredentialIssuer;
  clock: Clock;
  ids: IdGenerator;
  /** The per-principal vend rate (`leases.ratePerPrincipal`); one that remembers full windows lets a known-throttled principal be refused before STS. */
  rates: RateLimiter & Partial<Pick<RememberingRateLimiter, 'knownFull'>>;
}

export interface VendRequest {
  who: VerifiedToken;
  grant: string;
  durationSeconds?: number;
  context: RequestContext;
  sourceIp?: string;
}

export interface VendResult {
  lease: Lease;
  credentials: IssuedCredentials;
}

/** The bounds every grant shares: checked before the grant is looked up, so a 400 reveals no grant. */
export function checkDuration(requested: number | undefined): void {
  if (requested === undefined) return;
  if (!Number.isInteger(requested) || requested < MIN_DURATION_SECONDS || requested > MAX_DURATION_SECONDS) {
    throw new InvalidRequest('duration_out_of_bounds', { requested }, `durationSeconds must be an integer from ${MIN_DURATION_SECONDS} to ${MAX_DURATION_SECONDS}.`);
  }
}

export function effectiveDuration(grant: GrantConfig, requested: number | undefined): number {
  checkDuration(requested);
  return requested === undefined ? grant.durationSeconds.default : Math.min(requested, grant.durationSeconds.max);
}

/** Builds the Cedar context of SPEC.md from a request: absent values stay absent. */
export function cedarContext(context: RequestContext, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(context)) if (v !== undefined) out[k] = v;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
  return out;
}

/** The Cedar request of a vend (also what `tvm policy eval` decides, so the two cannot differ). */
export function vendAuthzRequest(who: Pick<VerifiedToken, 'issuer' | 'iss' | 'sub' | 'claims'>, grant: string, durationSeconds: number, context: RequestContext, sourceIp?: string): AuthzRequest {
  return { principal: principalOf(who), action: 'vend', resource: { type: 'Grant', id: grant }, context: cedarContext(context, { durationSeconds, sourceIp }) };
}

/**
 * What one principal may make tvm do: its vend rate (all grants), then its live leases on the
 * grant (`maxLiveLeasesPerPrincipal`). Checked after the policy decision, so a caller no policy
 * permits learns nothing from a 429, and before the pending write, so a throttled vend leaves no lease.
 * @throws Throttled `principal_rate` or `max_live_leases`.
 */
export async function checkLimits(deps: VendDeps, principal: string, grant: GrantConfig): Promise<void> {
  const nowMs = deps.clock.now();
  const { vends, windowSeconds } = deps.config.leases.ratePerPrincipal;
  if (!(await deps.rates.take(`vend#${principal}`, vends, windowSeconds, Math.floor(nowMs / 1000)))) {
    throw new Throttled('principal_rate', { principal, vends, windowSeconds });
  }
  const max = grant.maxLiveLeasesPerPrincipal;
  if (max === undefined) return;
  const live = (await allLeases(deps.leases, { principal, grant: grant.name, live: true })).filter((l) => Date.parse(l.expiresAt) > nowMs);
  if (live.length >= max) throw new Throttled('max_live_leases', { principal, grant: grant.name, live: live.length, max });
}

/**
 * Exchanges a verified token for credentials under `request.grant`.
 * @throws AccessDenied (policy or unknown grant), InvalidRequest (duration, placeholders, policy size),
 *   and the issuer's and store's mapped errors (429/403/503).
 * @example const { lease, credentials } = await vendCredentials(deps, { who, grant: 'reports-read', context: {} }, record);
 */
export async function vendCredentials(deps: VendDeps, request: VendRequest, record: AuditRecord = {}): Promise<VendResult> {
  const { who } = request;
  record.grant = request.grant;
  checkDuration(request.durationSeconds);
  const grant = deps.config.grants.find((g) => g.name === request.grant);
  if (!grant) throw new AccessDenied('unknown_grant', { grant: request.grant });
  const durationSeconds = effectiveDuration(grant, request.durationSeconds);
  record.durationSeconds = durationSeconds;

  const decision = deps.policy.decide(vendAuthzRequest(who, grant.name, durationSeconds, request.context, request.sourceIp));
  record.decision = decision.policyIds;
  requireAllow(decision);
  // A principal this instance already saw over its rate in this window is refused before any
  // round trip or STS call (the window stays full until it ends: exact, see full-windows.ts).
  const { vends, windowSeconds } = deps.config.leases.ratePerPrincipal;
  if (deps.rates.knownFull?.(`vend#${who.principal}`, windowSeconds, Math.floor(deps.clock.now() / 1000))) {
    throw new Throttled('principal_rate', { principal: who.principal, vends, windowSeconds, known: true });
  }

  const leaseId = deps.ids.leaseId();
  record.leaseId = leaseId;
  const values = { claims: who.claims, context: request.context as Record<string, unknown>, principal: who.principal, leaseId, sourceIp: request.sourceIp };
  const policy = renderSessionPolicy(grant, values);
  const tags = { ...renderSessionTags(grant, values), 'tvm:lease': leaseId, 'tvm:grant': grant.name, 'tvm:issuer': who.issuer.name };

  const nowMs = deps.clock.now();
  const issuedAt = new Date(nowMs).toISOString();
  const lease: Lease = {
    leaseId,
    status: 'pending',
    principal: who.principal,
    issuer: who.issuer.name,
    sub: who.sub,
    grant: grant.name,
    roleArn: grant.roleArn,
    sessionName: sessionNameFor(leaseId),
    sourceIdentity: sourceIdentityFor(who.issuer.name, who.sub),
    context: request.context,
    decision: decision.policyIds,
    sessionPolicy: policy,
    sessionTags: tags,
    tokenSha256: who.tokenSha256,
    durationSeconds,
    issuedAt,
    // Until STS answers, the latest this session could live: the sweep's bound for a pending lease.
    expiresAt: new Date(nowMs + durationSeconds * 1000).toISOString(),
    ttl: Math.floor(nowMs / 1000) + durationSeconds + deps.config.leases.retentionDays * 86400,
    events: [{ at: issuedAt, type: 'requested', by: who.principal }],
  };
  // Two round trips, not four: the store's side (the limits, then the pending write) and
  // AssumeRole are independent, so they run concurrently, and the activation follows. The rule "no
  // credentials leave without an active lease" is kept by the activation, which happens before
  // anything is returned: credentials from a vend whose limits refused it or whose pending write
  // failed never leave tvm (a session nobody holds) and are only dropped. A throttled vend writes
  // no lease; its AssumeRole is the price of not waiting for the count (once per window and
  // instance: after that the window is known full, above).
  // AssumeRole is sent first: it is the longer round trip (against AWS several times a DynamoDB
  // write), so nothing of the store side's request building stands before it.
  const issuing = deps.credentials.assumeRole({
    roleArn: grant.roleArn,
    sessionName: lease.sessionName,
    sourceIdentity: lease.sourceIdentity,
    durationSeconds,
    policy,
    tags,
  });
  const limits = checkLimits(deps, who.principal, grant).catch((e: Error) => {
    // Fail closed: limits that cannot be read refuse the vend, as 503 (not 500) with why.
    throw e instanceof TvmError ? e : new UpstreamUnavailable('limits_unavailable', { error: e.message });
  });
  const [limited, pending, issued] = await Promise.allSettled([limits, limits.then(() => deps.leases.createPending(lease)), issuing]);
  if (limited.status === 'rejected') {
    // The session STS made for it (if any) is dropped unheld; the refusal's audit event says so.
    if (issued.status === 'fulfilled') record.stsIssued = true;
    throw limited.reason;
  }
  if (pending.status === 'rejected') {
    const e = pending.reason as Error;
    throw e instanceof TvmError ? e : new UpstreamUnavailable('lease_store_unavailable', { error: e.message, stsIssued: issued.status === 'fulfilled' });
  }
  if (issued.status === 'rejected') {
    const e = issued.reason as Error;
    const err = e instanceof TvmError ? e : new UpstreamUnavailable('sts_failed', { error: e.message });
    try {
      await deps.leases.fail(leaseId, { at: new Date(deps.clock.now()).toISOString(), type: 'failed', reason: err.reason });
    } catch {
      // The lease stays pending; the sweep settles it (and denies its session name, which never existed).
    }
    throw err;
  }
  const credentials: IssuedCredentials = issued.value;

  let active: Lease;
  try {
    active = await deps.leases.activate(leaseId, credentials.accessKeyId, credentials.expiration, {
      at: new Date(deps.clock.now()).toISOString(),
      type: 'issued',
      by: who.principal,
      detail: { accessKeyId: credentials.accessKeyId, expiresAt: credentials.expiration },
    });
  } catch (e) {
    // Credentials exist at STS but the lease does not say active: they must not leave.
    // The lease stays pending for the sweep to settle (deny the session, mark it failed).
    throw new UpstreamUnavailable('lease_activate_failed', { leaseId, error: (e as Error).message });
  }
  record.accessKeyId = credentials.accessKeyId;
  return { lease: active, credentials };
}
