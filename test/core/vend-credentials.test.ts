/**
 * The vend use case with small fakes for its ports and a fixed clock: every path asserts what
 * reached STS and what the lease store holds (no credentials leave without an active lease).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { GrantConfig } from '../../functions/core/config.js';
import { AccessDenied, Throttled, TvmError, UpstreamUnavailable } from '../../functions/core/errors.js';
import { isLive, sessionNameFor } from '../../functions/core/lease.js';
import type {
  AssumeRoleInput,
  AuthzRequest,
  CredentialIssuer,
  Decision,
  IssuedCredentials,
  Lease,
  LeaseEvent,
  LeaseQuery,
  LeaseStatus,
  LeaseStore,
  PolicyEngine,
} from '../../functions/core/ports.js';
import { cedarContext, vendCredentials, type VendDeps, type VendRequest } from '../../functions/core/vend-credentials.js';
import { rememberFullWindows } from '../../functions/core/full-windows.js';
import type { VerifiedToken } from '../../functions/core/verify-token.js';

const FIXED = Date.UTC(2027, 0, 15, 8, 0, 0);
const ISO = new Date(FIXED).toISOString();
const LEASE = 'Labcdefghijklmnopqrstuvwxyz';

const GRANTS: GrantConfig[] = [
  {
    name: 'reports-read',
    roleArn: 'arn:aws:iam::123456789012:role/tvm/reports-read',
    durationSeconds: { default: 900, max: 1800 },
    sessionPolicy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::reports/${claims.team}/*'] }] },
    sessionTags: { team: '${claims.team}', 'tvm:lease': 'forged' },
  },
  {
    name: 'wide',
    roleArn: 'arn:aws:iam::123456789012:role/tvm/wide',
    durationSeconds: { default: 900, max: 900 },
    sessionPolicy: {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: Array.from({ length: 80 }, (_, i) => `arn:aws:s3:::reports/\${claims.team}/part-${i}/*`) }],
    },
  },
];

const who: VerifiedToken = {
  principal: 'dev|agent-1',
  issuer: { name: 'dev', issuer: 'http://127.0.0.1:8787/_dev/issuer', audiences: ['tvm'], algorithms: ['ES256'], singleUse: false },
  iss: 'http://127.0.0.1:8787/_dev/issuer',
  sub: 'agent-1',
  claims: { team: 'blue', sub: 'agent-1' },
  exp: FIXED / 1000 + 300,
  tokenSha256: 'a'.repeat(64),
};

const CREDS: IssuedCredentials = {
  accessKeyId: 'ASIAEXAMPLE000000001',
  secretAccessKey: 'secret',
  sessionToken: 'session-token',
  expiration: new Date(FIXED + 900_000).toISOString(),
};

class FakeLeases implements LeaseStore {
  readonly leases = new Map<string, Lease>();
  failOn: Partial<Record<'createPending' | 'activate' | 'fail', Error>> = {};
  async createPending(lease: Lease) {
    if (this.failOn.createPending) throw this.failOn.createPending;
    if (this.leases.has(lease.leaseId)) throw new Error('exists');
    this.leases.set(lease.leaseId, structuredClone(lease));
  }
  async activate(leaseId: string, accessKeyId: string, expiresAt: string, event: LeaseEvent) {
    if (this.failOn.activate) throw this.failOn.activate;
    const l = this.leases.get(leaseId)!;
    if (l.status !== 'pending') throw new Error('not pending');
    Object.assign(l, { status: 'active', accessKeyId, expiresAt, events: [...l.events, event] });
    return structuredClone(l);
  }
  async fail(leaseId: string, event: LeaseEvent) {
    if (this.failOn.fail) throw this.failOn.fail;
    await this.transition(leaseId, ['pending'], 'failed', {}, event);
  }
  async get(leaseId: string) {
    return this.leases.get(leaseId);
  }
  async list() {
    return [...this.leases.values()];
  }
  async transition(leaseId: string, from: LeaseStatus[], to: LeaseStatus, _f: object, event: LeaseEvent) {
    const l = this.leases.get(leaseId);
    if (!l || !from.includes(l.status)) return undefined;
    Object.assign(l, { status: to, events: [...l.events, event] });
    return l;
  }
  async listDue() {
    return { leases: [] };
  }
  async listLive() {
    return { leases: [] };
  }
  async page(q: LeaseQuery) {
    const match = (l: Lease) => (q.principal === undefined || l.principal === q.principal) && (q.grant === undefined || l.grant === q.grant) && (!q.live || isLive(l.status));
    return { leases: [...this.leases.values()].filter(match) };
  }
}

class FakeSts implements CredentialIssuer {
  readonly calls: AssumeRoleInput[] = [];
  error?: Error;
  async assumeRole(input: AssumeRoleInput) {
    this.calls.push(input);
    if (this.error) throw this.error;
    return CREDS;
  }
}

class FakePolicy implements PolicyEngine {
  readonly requests: AuthzRequest[] = [];
  decision: Decision = { allow: true, policyIds: ['dev-agents-read-reports'], errors: [] };
  decide(request: AuthzRequest) {
    this.requests.push(request);
    return this.decision;
  }
}

let leases: FakeLeases;
let sts: FakeSts;
let policy: FakePolicy;
let deps: VendDeps;

beforeEach(() => {
  leases = new FakeLeases();
  sts = new FakeSts();
  policy = new FakePolicy();
  deps = {
    config: { grants: GRANTS, leases: { retentionDays: 90, pendingTimeoutSeconds: 300, ratePerPrincipal: { vends: 1000, windowSeconds: 60 } } },
    policy,
    leases,
    credentials: sts,
    clock: { now: () => FIXED },
    ids: { leaseId: () => LEASE },
    rates: { take: async () => true },
  };
});

const request = (over: Partial<VendRequest> = {}): VendRequest => ({ who, grant: 'reports-read', context: { task: 'nightly' }, sourceIp: '10.0.0.7', ...over });

async function refusal(p: Promise<unknown>): Promise<{ code: string; reason: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TvmError);
    return { code: (e as TvmError).code, reason: (e as TvmError).reason };
  }
  throw new Error('expected a refusal');
}

describe('vendCredentials issues', () => {
  it('credentials with an active lease, and asks STS for exactly the grant', async () => {
    const record: Record<string, unknown> = {};
    const { lease, credentials } = await vendCredentials(deps, request(), record);
    expect(credentials).toEqual(CREDS);
    expect(lease).toMatchObject({
      leaseId: LEASE,
      status: 'active',
      principal: 'dev|agent-1',
      issuer: 'dev',
      sub: 'agent-1',
      grant: 'reports-read',
      roleArn: GRANTS[0].roleArn,
      sessionName: `tvm-${LEASE}`,
      sourceIdentity: 'dev.agent-1',
      accessKeyId: CREDS.accessKeyId,
      context: { task: 'nightly' },
      decision: ['dev-agents-read-reports'],
      tokenSha256: who.tokenSha256,
      durationSeconds: 900,
      issuedAt: ISO,
      expiresAt: CREDS.expiration,
      ttl: FIXED / 1000 + 900 + 90 * 86400,
    });
    expect(lease.events.map((e) => e.type)).toEqual(['requested', 'issued']);
    expect(JSON.stringify(lease)).not.toContain(CREDS.secretAccessKey);
    expect(JSON.stringify(lease)).not.toContain(CREDS.sessionToken);
    expect(leases.leases.get(LEASE)!.status).toBe('active');

    expect(sts.calls).toEqual([
      {
        roleArn: GRANTS[0].roleArn,
        sessionName: `tvm-${LEASE}`,
        sourceIdentity: 'dev.agent-1',
        durationSeconds: 900,
        policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::reports/blue/*'] }] }),
        // tvm's own tags win over a grant tag of the same key.
        tags: { team: 'blue', 'tvm:lease': LEASE, 'tvm:grant': 'reports-read', 'tvm:issuer': 'dev' },
      },
    ]);
    // What the lease could do is kept on it: exactly the session policy and tags STS got.
    expect(leases.leases.get(LEASE)).toMatchObject({ sessionPolicy: sts.calls[0].policy, sessionTags: sts.calls[0].tags });
    expect(policy.requests).toEqual([
      {
        principal: { issuer: 'dev', iss: who.iss, sub: 'agent-1', claims: who.claims },
        action: 'vend',
        resource: { type: 'Grant', id: 'reports-read' },
        context: { task: 'nightly', durationSeconds: 900, sourceIp: '10.0.0.7' },
      },
    ]);
    expect(record).toEqual({ grant: 'reports-read', durationSeconds: 900, decision: ['dev-agents-read-reports'], leaseId: LEASE, accessKeyId: CREDS.accessKeyId });
  });

  it('writes the pending lease and calls STS concurrently; credentials leave only once the lease is active', async () => {
    // Hold the pending write open: the sequential design would never reach STS meanwhile.
    let release!: () => void;
    const written = new Promise<void>((r) => (release = r));
    const create = leases.createPending.bind(leases);
    let pendingLease: Lease | undefined;
    leases.createPending = async (lease) => {
      pendingLease = structuredClone(lease);
      await written;
      return create(lease);
    };
    const vend = vendCredentials(deps, request({ durationSeconds: 1200 }));
    await new Promise((r) => setImmediate(r));
    expect(sts.calls).toHaveLength(1);
    expect(leases.leases.size).toBe(0);
    release();
    const { lease } = await vend;
    expect(pendingLease).toMatchObject({ status: 'pending', expiresAt: new Date(FIXED + 1200_000).toISOString(), durationSeconds: 1200 });
    expect(pendingLease!.accessKeyId).toBeUndefined();
    expect(lease.status).toBe('active');
    expect(leases.leases.get(LEASE)!.status).toBe('active');
  });

  it('sends AssumeRole before the limits\' first round trip (the longer call is not queued behind the store side)', async () => {
    const order: string[] = [];
    const take = deps.rates.take.bind(deps.rates);
    deps.rates = { take: (...args) => (order.push('rates.take'), take(...args)) };
    const assumeRole = deps.credentials.assumeRole.bind(deps.credentials);
    deps.credentials = { ...deps.credentials, assumeRole: (input) => (order.push('sts.assumeRole'), assumeRole(input)) };
    await vendCredentials(deps, request());
    expect(order).toEqual(['sts.assumeRole', 'rates.take']);
  });

  it.each([
    [undefined, 900],
    [900, 900],
    [1200, 1200],
    [1800, 1800],
    [3600, 1800],
  ])('duration requested %s → %s (default, clamped to the grant max)', async (durationSeconds, want) => {
    await vendCredentials(deps, request({ durationSeconds }));
    expect(sts.calls[0].durationSeconds).toBe(want);
    expect(policy.requests[0].context.durationSeconds).toBe(want);
  });
});

describe('vendCredentials refuses before any lease or STS call', () => {
  const cases: [string, () => void, Partial<VendRequest>, string, string][] = [
    ['an unknown grant', () => {}, { grant: 'nope' }, 'access_denied', 'unknown_grant'],
    ['a duration under 900', () => {}, { durationSeconds: 899 }, 'invalid_request', 'duration_out_of_bounds'],
    ['a duration over 3600', () => {}, { durationSeconds: 3601 }, 'invalid_request', 'duration_out_of_bounds'],
    ['a fractional duration', () => {}, { durationSeconds: 900.5 }, 'invalid_request', 'duration_out_of_bounds'],
    ['a NaN duration', () => {}, { durationSeconds: Number.NaN }, 'invalid_request', 'duration_out_of_bounds'],
    ['a policy deny', () => (policy.decision = { allow: false, policyIds: ['no-restricted-data-for-long'], errors: [] }), {}, 'access_denied', 'policy_deny'],
    ['a deny by default', () => (policy.decision = { allow: false, policyIds: [], errors: [] }), {}, 'access_denied', 'policy_deny'],
    ['a claim that tries to widen the policy', () => {}, { who: { ...who, claims: { team: '*' } } }, 'invalid_request', 'placeholder_unsafe'],
    ['a claim with a quote', () => {}, { who: { ...who, claims: { team: 'a"b' } } }, 'invalid_request', 'placeholder_unsafe'],
    ['a claim with ${', () => {}, { who: { ...who, claims: { team: '${aws:username}' } } }, 'invalid_request', 'placeholder_unsafe'],
    ['a missing claim', () => {}, { who: { ...who, claims: {} } }, 'invalid_request', 'placeholder_missing'],
    ['a rendered session policy over 2,048 characters', () => {}, { grant: 'wide' }, 'invalid_request', 'session_policy_too_large'],
  ];
  it.each(cases)('%s', async (_name, arrange, over, code, reason) => {
    arrange();
    expect(await refusal(vendCredentials(deps, request(over)))).toEqual({ code, reason });
    expect(sts.calls).toEqual([]);
    expect(leases.leases.size).toBe(0);
  });

  it('records the deciding policy ids of a deny', async () => {
    policy.decision = { allow: false, policyIds: ['no-restricted-data-for-long'], errors: [] };
    const record: Record<string, unknown> = {};
    await refusal(vendCredentials(deps, request(), record));
    expect(record.decision).toEqual(['no-restricted-data-for-long']);
    expect(record.leaseId).toBeUndefined();
  });

});

describe('vendCredentials when the pending write fails (it runs concurrently with STS)', () => {
  it('answers 503 and drops the credentials STS issued: nothing is returned, no lease exists', async () => {
    leases.failOn.createPending = new Error('ECONNREFUSED');
    const record: Record<string, unknown> = {};
    expect(await refusal(vendCredentials(deps, request(), record))).toEqual({ code: 'upstream_unavailable', reason: 'lease_store_unavailable' });
    expect(sts.calls).toHaveLength(1);
    expect(leases.leases.size).toBe(0);
    expect(record.accessKeyId).toBeUndefined();
  });

  it('passes a store error that is already a TvmError through', async () => {
    leases.failOn.createPending = new Throttled('ddb_throttled');
    expect(await refusal(vendCredentials(deps, request()))).toEqual({ code: 'throttled', reason: 'ddb_throttled' });
    expect(leases.leases.size).toBe(0);
  });

  it('the store and STS both fail: the store error answers, no lease exists', async () => {
    leases.failOn.createPending = new Error('ECONNREFUSED');
    sts.error = new Throttled('sts_throttled');
    expect(await refusal(vendCredentials(deps, request()))).toEqual({ code: 'upstream_unavailable', reason: 'lease_store_unavailable' });
    expect(leases.leases.size).toBe(0);
  });
});

describe('vendCredentials after the lease is written', () => {
  it.each([
    ['throttling', new Throttled('sts_throttled'), 'throttled', 'sts_throttled'],
    ['access denied', new AccessDenied('sts_access_denied'), 'access_denied', 'sts_access_denied'],
    ['an unknown failure', new Error('socket hang up'), 'upstream_unavailable', 'sts_failed'],
  ])('STS %s → the lease is failed and the mapped error answers', async (_name, error, code, reason) => {
    sts.error = error;
    expect(await refusal(vendCredentials(deps, request()))).toEqual({ code, reason });
    const lease = leases.leases.get(LEASE)!;
    expect(lease.status).toBe('failed');
    expect(lease.events.at(-1)).toEqual({ at: ISO, type: 'failed', reason });
  });

  it('STS fails and so does the store: the original error answers, the lease stays pending for the sweep', async () => {
    sts.error = new Throttled('sts_throttled');
    leases.failOn.fail = new Error('ddb down');
    expect(await refusal(vendCredentials(deps, request()))).toEqual({ code: 'throttled', reason: 'sts_throttled' });
    expect(leases.leases.get(LEASE)!.status).toBe('pending');
  });

  it('activation fails after STS: no credentials leave, 503, the lease stays pending', async () => {
    leases.failOn.activate = new Error('ddb down');
    const record: Record<string, unknown> = {};
    expect(await refusal(vendCredentials(deps, request(), record))).toEqual({ code: 'upstream_unavailable', reason: 'lease_activate_failed' });
    expect(sts.calls).toHaveLength(1);
    expect(leases.leases.get(LEASE)!.status).toBe('pending');
    expect(record.accessKeyId).toBeUndefined();
  });
});

describe('cedarContext', () => {
  it.each([
    [{}, {}, {}],
    [{ task: 't', tool: undefined }, { durationSeconds: 900, sourceIp: undefined }, { task: 't', durationSeconds: 900 }],
    [{ sensitivity: 'restricted' as const, environment: 'prod' }, { sourceIp: '127.0.0.1' }, { sensitivity: 'restricted', environment: 'prod', sourceIp: '127.0.0.1' }],
  ])('%j + %j → %j (absent values stay absent)', (context, extra, want) => {
    const out = cedarContext(context, extra);
    expect(out).toEqual(want);
    for (const [k, v] of Object.entries(out)) expect(v, k).not.toBeUndefined();
  });
});

describe('bind.sourceIp', () => {
  const BOUND: GrantConfig = { ...GRANTS[0], bind: { sourceIp: true } };

  it("binds the session policy STS gets to the vend's source address", async () => {
    deps.config = { ...deps.config, grants: [BOUND] };
    await vendCredentials(deps, request({ sourceIp: '10.0.0.7' }));
    const statements = JSON.parse(sts.calls[0].policy).Statement;
    expect(statements.at(-1)).toMatchObject({ Effect: 'Deny', Condition: { NotIpAddress: { 'aws:SourceIp': '10.0.0.7/32' }, Bool: { 'aws:ViaAWSService': 'false' } } });
  });

  it('refuses 403 source_ip_unknown without an address: no STS call, no lease', async () => {
    deps.config = { ...deps.config, grants: [BOUND] };
    expect(await refusal(vendCredentials(deps, request({ sourceIp: undefined })))).toEqual({ code: 'access_denied', reason: 'source_ip_unknown' });
    expect(sts.calls).toHaveLength(0);
    expect(leases.leases.size).toBe(0);
  });
});

describe('what one principal can make tvm do (checkLimits)', () => {
  const LIMITED: GrantConfig = { ...GRANTS[0], maxLiveLeasesPerPrincipal: 2 };
  const live = (id: string, over: Partial<Lease> = {}): Lease => ({
    leaseId: id,
    status: 'active',
    principal: who.principal,
    issuer: 'dev',
    sub: 'agent-1',
    grant: 'reports-read',
    roleArn: GRANTS[0].roleArn,
    sessionName: sessionNameFor(id),
    sourceIdentity: 'dev.agent-1',
    context: {},
    decision: [],
    tokenSha256: 'b'.repeat(64),
    durationSeconds: 900,
    issuedAt: ISO,
    expiresAt: new Date(FIXED + 60_000).toISOString(),
    ttl: 0,
    events: [],
    ...over,
  });

  it('refuses 429 principal_rate when the window is full: no lease, the session STS made is dropped and said so; asks with the principal and the configured window', async () => {
    const asked: unknown[][] = [];
    deps.rates = { take: async (...args) => (asked.push(args), false) };
    const record: Record<string, unknown> = {};
    expect(await refusal(vendCredentials(deps, request(), record))).toEqual({ code: 'throttled', reason: 'principal_rate' });
    expect(asked).toEqual([['vend#dev|agent-1', 1000, 60, FIXED / 1000]]);
    // The count is not waited for before AssumeRole (it runs beside it): the session exists, unheld.
    expect(sts.calls).toHaveLength(1);
    expect(record.stsIssued).toBe(true);
    expect(leases.leases.size).toBe(0);
  });

  it('refuses a principal known to be over its rate in this window before any round trip or STS call', async () => {
    const asked: unknown[][] = [];
    const store = { take: async (...args: unknown[]) => (asked.push(args), false) };
    deps.rates = rememberFullWindows(store);
    expect(await refusal(vendCredentials(deps, request()))).toEqual({ code: 'throttled', reason: 'principal_rate' });
    expect([asked.length, sts.calls.length]).toEqual([1, 1]);
    const record: Record<string, unknown> = {};
    const known = await vendCredentials(deps, request(), record).catch((e: TvmError) => e);
    expect([(known as TvmError).reason, (known as TvmError).detail]).toEqual(['principal_rate', { principal: 'dev|agent-1', vends: 1000, windowSeconds: 60, known: true }]);
    expect([asked.length, sts.calls.length, leases.leases.size]).toEqual([1, 1, 0]);
    expect(record.stsIssued).toBeUndefined();
    // Another principal is asked for as usual.
    const other = { ...who, principal: 'dev|agent-2', sub: 'agent-2' };
    expect(await refusal(vendCredentials(deps, request({ who: other })))).toEqual({ code: 'throttled', reason: 'principal_rate' });
    expect([asked.length, sts.calls.length]).toEqual([2, 2]);
  });

  it('runs the limits beside AssumeRole and writes the pending lease only once they pass', async () => {
    let release!: (ok: boolean) => void;
    const gate = new Promise<boolean>((r) => (release = r));
    deps.rates = { take: () => gate };
    const vend = vendCredentials(deps, request());
    await new Promise((r) => setImmediate(r));
    // AssumeRole was asked while the count had not answered; no lease yet.
    expect([sts.calls.length, leases.leases.size]).toEqual([1, 0]);
    release(true);
    const { lease } = await vend;
    expect(lease.status).toBe('active');
    expect(leases.leases.get(LEASE)?.status).toBe('active');
  });

  it('refuses 503 limits_unavailable when the count cannot be read (fail closed): no lease, nothing returned', async () => {
    deps.rates = { take: async () => { throw new Error('connect ECONNREFUSED 127.0.0.1:8000'); } };
    const record: Record<string, unknown> = {};
    expect(await refusal(vendCredentials(deps, request(), record))).toEqual({ code: 'upstream_unavailable', reason: 'limits_unavailable' });
    expect(leases.leases.size).toBe(0);
    expect(record.stsIssued).toBe(true);
    // Both down: the limits' refusal, and no session was made to drop.
    sts.error = new Error('connect ECONNREFUSED 127.0.0.1:8788');
    const both: Record<string, unknown> = {};
    expect(await refusal(vendCredentials(deps, request(), both))).toEqual({ code: 'upstream_unavailable', reason: 'limits_unavailable' });
    expect([both.stsIssued, leases.leases.size]).toEqual([undefined, 0]);
  });

  it('answers 403 before 429: a caller no policy permits learns nothing from the limits', async () => {
    deps.rates = { take: async () => false };
    policy.decision = { allow: false, policyIds: [], errors: [] };
    expect(await refusal(vendCredentials(deps, request()))).toEqual({ code: 'access_denied', reason: 'policy_deny' });
  });

  it('refuses 429 max_live_leases at the grant limit, counting only this principal’s unexpired live leases on this grant', async () => {
    deps.config = { ...deps.config, grants: [LIMITED] };
    for (const l of [
      live('Lpending', { status: 'pending' }),
      live('Lactive'),
      live('Lexpiredbytime', { expiresAt: new Date(FIXED).toISOString() }),
      live('Lrevoked', { status: 'revoked' }),
      live('Lothergrant', { grant: 'deploy' }),
      live('Lotherprincipal', { principal: 'dev|agent-2' }),
    ])
      leases.leases.set(l.leaseId, l);
    const before = leases.leases.size;
    expect(await refusal(vendCredentials(deps, request()))).toEqual({ code: 'throttled', reason: 'max_live_leases' });
    // No pending lease was written for it (its AssumeRole ran beside the count and is dropped).
    expect(leases.leases.size).toBe(before);
    leases.leases.delete('Lpending');
    const { lease } = await vendCredentials(deps, request());
    expect(lease.status).toBe('active');
  });
});

/**
 * A refusal's `detail` is what the audit log and `tvm explain` record of it (errors.ts: "detail
 * goes to the log only"), so each one is asserted whole: its class, code, reason and detail.
 */
describe('what each refusal records (class, code, reason and detail)', () => {
  async function thrown(p: Promise<unknown>): Promise<TvmError> {
    const e = await p.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(TvmError);
    return e as TvmError;
  }
  const fields = (e: TvmError) => ({ class: e.constructor, code: e.code, reason: e.reason, detail: e.detail });

  it('unknown_grant names the grant asked for', async () => {
    expect(fields(await thrown(vendCredentials(deps, request({ grant: 'nope' }))))).toEqual({ class: AccessDenied, code: 'access_denied', reason: 'unknown_grant', detail: { grant: 'nope' } });
  });

  it('principal_rate names the principal and the configured window', async () => {
    deps.rates = { take: async () => false };
    expect(fields(await thrown(vendCredentials(deps, request())))).toEqual({ class: Throttled, code: 'throttled', reason: 'principal_rate', detail: { principal: 'dev|agent-1', vends: 1000, windowSeconds: 60 } });
  });

  it('max_live_leases names the principal, the grant, the live count and the limit', async () => {
    deps.config = { ...deps.config, grants: [{ ...GRANTS[0], maxLiveLeasesPerPrincipal: 1 }] };
    await vendCredentials(deps, request());
    deps.ids = { leaseId: () => 'Lsecondleaseidxxxxxxxxxxxx' };
    expect(fields(await thrown(vendCredentials(deps, request())))).toEqual({
      class: Throttled,
      code: 'throttled',
      reason: 'max_live_leases',
      detail: { principal: 'dev|agent-1', grant: 'reports-read', live: 1, max: 1 },
    });
  });

  it('a grant without maxLiveLeasesPerPrincipal reads no lease listing (no store round trip per vend for a limit that does not exist)', async () => {
    let pages = 0;
    const page = leases.page.bind(leases);
    leases.page = (q) => (pages++, page(q));
    await vendCredentials(deps, request());
    expect(pages).toBe(0);
    deps.config = { ...deps.config, grants: [{ ...GRANTS[0], maxLiveLeasesPerPrincipal: 5 }] };
    deps.ids = { leaseId: () => 'Lsecondleaseidxxxxxxxxxxxx' };
    await vendCredentials(deps, request());
    expect(pages).toBeGreaterThan(0);
  });

  it('limits_unavailable carries the store error', async () => {
    deps.rates = { take: async () => { throw new Error('connect ECONNREFUSED 127.0.0.1:8000'); } };
    expect(fields(await thrown(vendCredentials(deps, request())))).toEqual({
      class: UpstreamUnavailable,
      code: 'upstream_unavailable',
      reason: 'limits_unavailable',
      detail: { error: 'connect ECONNREFUSED 127.0.0.1:8000' },
    });
  });

  it('lease_store_unavailable carries the store error and whether STS issued a session (dropped unheld)', async () => {
    leases.failOn.createPending = new Error('ECONNREFUSED');
    expect(fields(await thrown(vendCredentials(deps, request())))).toEqual({
      class: UpstreamUnavailable,
      code: 'upstream_unavailable',
      reason: 'lease_store_unavailable',
      detail: { error: 'ECONNREFUSED', stsIssued: true },
    });
    sts.error = new Error('socket hang up');
    expect(fields(await thrown(vendCredentials(deps, request())))).toEqual({
      class: UpstreamUnavailable,
      code: 'upstream_unavailable',
      reason: 'lease_store_unavailable',
      detail: { error: 'ECONNREFUSED', stsIssued: false },
    });
  });

  it('sts_failed carries the STS error', async () => {
    sts.error = new Error('socket hang up');
    expect(fields(await thrown(vendCredentials(deps, request())))).toEqual({ class: UpstreamUnavailable, code: 'upstream_unavailable', reason: 'sts_failed', detail: { error: 'socket hang up' } });
  });

  it('lease_activate_failed names the lease left pending and the store error', async () => {
    leases.failOn.activate = new Error('ddb down');
    expect(fields(await thrown(vendCredentials(deps, request())))).toEqual({
      class: UpstreamUnavailable,
      code: 'upstream_unavailable',
      reason: 'lease_activate_failed',
      detail: { leaseId: LEASE, error: 'ddb down' },
    });
  });

  it("the lease's issued event records the access key id and STS's expiry (never the secret)", async () => {
    const { lease } = await vendCredentials(deps, request());
    expect(lease.events[1]).toEqual({ at: ISO, type: 'issued', by: 'dev|agent-1', detail: { accessKeyId: CREDS.accessKeyId, expiresAt: CREDS.expiration } });
  });
});
