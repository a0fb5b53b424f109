/**
 * Faults around the vend handler on the local stack's real endpoints: DynamoDB down (the pending
 * write and AssumeRole run concurrently), STS failing, both, the `active` update failing. After each: no credentials without an active lease.
 */
import { GetRolePolicyCommand } from '@aws-sdk/client-iam';
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LeaseStore } from '../../functions/core/ports.js';
import { sweepLeases } from '../../functions/core/sweep-leases.js';
import { createRuntime } from '../../functions/shared/runtime.js';
import { createVendHandler } from '../../functions/vend/handler.js';
import { httpEvent } from '../helpers/events.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack?.close());

const vendEvent = async () => httpEvent('POST /v1/vend', { headers: { authorization: `Bearer ${await stack.mintToken()}` }, body: { grant: 'reports-read' } });

async function leasesOf(status: string) {
  return stack.runtime.leases.list({ status: status as never, limit: 1000 });
}

describe('vend under faults', () => {
  const stsMock = () => mockClient(stack.runtime.sts);

  /** Every lease in the store, whatever its status. */
  async function leaseCount(): Promise<number> {
    let n = 0;
    for (const status of ['pending', 'active', 'failed', 'revoked', 'expired']) n += (await leasesOf(status)).length;
    return n;
  }

  // The pending write and AssumeRole run concurrently (two round trips, not three): with DynamoDB
  // down, AssumeRole may be called, but its credentials are dropped and nothing leaves.
  it('DynamoDB down → 503, the STS credentials are dropped, no lease is written', async () => {
    const settings = stack.runtime.settings;
    const down = createRuntime({ ...settings, dynamodbEndpoint: 'http://127.0.0.1:9', logger: stack.runtime.logger });
    const leases = await leaseCount();
    const answer = await createVendHandler(down)(await vendEvent());
    expect(answer.statusCode).toBe(503);
    expect(JSON.parse(answer.body).error).toBe('upstream_unavailable');
    expect(answer.body).not.toMatch(/AccessKeyId|SecretAccessKey|SessionToken|ASIA/);
    expect(await leaseCount()).toBe(leases);
    down.ddb.destroy();
  });

  it('DynamoDB and STS both down → 503, nothing leaves, no lease is written', async () => {
    const settings = stack.runtime.settings;
    const down = createRuntime({ ...settings, dynamodbEndpoint: 'http://127.0.0.1:9', stsEndpoint: 'http://127.0.0.1:9', logger: stack.runtime.logger });
    const leases = await leaseCount();
    const sessions = stack.stack.sessionCount();
    const answer = await createVendHandler(down)(await vendEvent());
    expect(answer.statusCode).toBe(503);
    expect(JSON.parse(answer.body).error).toBe('upstream_unavailable');
    expect(answer.body).not.toMatch(/AccessKeyId|SecretAccessKey|SessionToken/);
    expect(await leaseCount()).toBe(leases);
    expect(stack.stack.sessionCount()).toBe(sessions);
    down.ddb.destroy();
    down.sts.destroy();
  });

  // Refusals that need neither the store nor STS must still reach neither (an oversize session
  // policy: test/core/vend-credentials.test.ts, with a grant built for it).
  it.each([
    ['a bad token', async () => httpEvent('POST /v1/vend', { headers: { authorization: 'Bearer not.a.jwt' }, body: { grant: 'reports-read' } }), 401],
    ['no policy permits', async () => httpEvent('POST /v1/vend', { headers: { authorization: `Bearer ${await stack.mintToken({})}` }, body: { grant: 'reports-read' } }), 403],
    ['a bad template value', async () => httpEvent('POST /v1/vend', { headers: { authorization: `Bearer ${await stack.mintToken({ team: 'a*b' })}` }, body: { grant: 'reports-read' } }), 400],
  ])('%s → refused before the store and STS: no AssumeRole, no lease', async (_name, event, status) => {
    const leases = await leaseCount();
    const sessions = stack.stack.sessionCount();
    const answer = await createVendHandler(stack.runtime)(await event());
    expect(answer.statusCode).toBe(status);
    expect(stack.stack.sessionCount()).toBe(sessions);
    expect(await leaseCount()).toBe(leases);
  });

  it.each([
    ['Throttling', 429, 'throttled'],
    ['AccessDenied', 403, 'access_denied'],
    ['ServiceUnavailable', 503, 'upstream_unavailable'],
  ])('STS %s → %i and the lease is failed', async (name, status, code) => {
    const mock = stsMock();
    mock.on(AssumeRoleCommand).rejects(Object.assign(new Error(name), { name, $metadata: {} }));
    try {
      const failedBefore = (await leasesOf('failed')).length;
      const answer = await createVendHandler(stack.runtime)(await vendEvent());
      expect(answer.statusCode).toBe(status);
      expect(JSON.parse(answer.body).error).toBe(code);
      expect(answer.body).not.toContain('AccessKeyId');
      expect((await leasesOf('failed')).length).toBe(failedBefore + 1);
    } finally {
      mock.restore();
    }
  });

  it('STS answering without Credentials → 503, lease failed', async () => {
    const mock = stsMock();
    mock.on(AssumeRoleCommand).resolves({ $metadata: {} });
    try {
      const answer = await createVendHandler(stack.runtime)(await vendEvent());
      expect(answer.statusCode).toBe(503);
    } finally {
      mock.restore();
    }
  });

  it('the active update failing after STS → 503, no credentials, the lease stays pending for the sweep', async () => {
    const real = stack.runtime.leases;
    const failing: LeaseStore = Object.assign(Object.create(Object.getPrototypeOf(real)), real, {
      activate: () => Promise.reject(new Error('ProvisionedThroughputExceededException')),
    });
    const pendingBefore = (await leasesOf('pending')).length;
    const sessions = stack.stack.sessionCount();
    const answer = await createVendHandler({ ...stack.runtime, leases: failing })(await vendEvent());
    expect(answer.statusCode).toBe(503);
    expect(answer.body).not.toMatch(/AccessKeyId|SecretAccessKey|SessionToken/);
    expect(stack.stack.sessionCount()).toBe(sessions + 1);
    const pending = await leasesOf('pending');
    expect(pending.length).toBe(pendingBefore + 1);
  });

  it('after a sweep past the pending bound, no lease is left pending and each settled session is denied on its role', async () => {
    const later = { now: () => Date.now() + (stack.runtime.config.leases.pendingTimeoutSeconds + 60) * 1000 };
    const rt = stack.runtime;
    const report = await sweepLeases({ leases: rt.leases, revoker: rt.revoker, clock: later, audit: rt.audit, metrics: rt.metrics });
    expect(report.settled).toBeGreaterThanOrEqual(1);
    expect(await leasesOf('pending')).toEqual([]);
    const settled = (await rt.leases.list({ status: 'failed', limit: 1000 })).filter((l) => l.events.some((e) => e.type === 'settled'));
    expect(settled.length).toBeGreaterThanOrEqual(1);
    const policy = await rt.iam.send(new GetRolePolicyCommand({ RoleName: 'reports-read', PolicyName: rt.denyPolicyName }));
    const document = decodeURIComponent(policy.PolicyDocument ?? '');
    for (const l of settled) expect(document).toContain(l.sessionName);
  });

  it('every credential handed out in this file has an active lease', async () => {
    const ok = await createVendHandler(stack.runtime)(await vendEvent());
    expect(ok.statusCode).toBe(200);
    const { leaseId, credentials } = JSON.parse(ok.body);
    const lease = await stack.runtime.leases.get(leaseId);
    expect(lease?.status).toBe('active');
    expect(lease?.accessKeyId).toBe(credentials.AccessKeyId);
  });
});
