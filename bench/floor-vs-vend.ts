/**
 * 1 + 2: the floor (one STS AssumeRole + one DynamoDB PutItem, made directly with tvm's own SDK
 * clients against the local endpoints) against the vend handler in-process, interleaved.
 */
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { randomIds } from '../functions/adapters/random-ids.js';
import { dueShardOf } from '../functions/adapters/dynamodb-lease-store.js';
import { sessionNameFor, sourceIdentityFor } from '../functions/core/lease.js';
import { renderSessionPolicy, renderSessionTags } from '../functions/core/render-session-policy.js';
import type { LocalStack } from '../local/stack.js';
import { createVendHandler } from '../functions/vend/handler.js';
import { httpEvent } from '../test/helpers/events.js';
import { now, progress, summarize, type Summary } from './stats.js';

export const GRANT = 'reports-read';
const CLAIMS = { team: 'analytics' };

export interface FloorVsVend {
  iterations: number;
  warmup: number;
  floor: Summary;
  vend: Summary;
  /** The two halves of the floor, measured inside the floor iterations. */
  floorSts: Summary;
  floorPut: Summary;
  /**
   * The floor plus the one more write tvm's design needs (pending → active, an UpdateItem like
   * the lease store's `activate`): what a vend would cost if tvm's own code took no time.
   */
  designFloor: Summary;
  floorUpdate: Summary;
  ratioP50: number;
  ratioDesignP50: number;
  vendErrors: number;
}

export async function floorVsVend(stack: LocalStack, opts: { iterations: number; warmup: number }): Promise<FloorVsVend> {
  const rt = stack.runtime;
  const grant = rt.config.grants.find((g) => g.name === GRANT)!;
  const issuerName = rt.config.local?.devIssuer ?? 'dev';
  const sub = 'bench-vend';
  const principal = `${issuerName}|${sub}`;
  const handler = createVendHandler(rt);

  // A pool of tokens minted up front: signing is the workload's cost, not tvm's.
  const tokens: string[] = [];
  for (let i = 0; i < 64; i++) tokens.push(await stack.issuer.mint({ sub, claims: CLAIMS, ttlSeconds: 3600 }));

  const floorSts: number[] = [];
  const floorPut: number[] = [];
  const floorUpdate: number[] = [];
  const designFloor: number[] = [];
  /** The unavoidable work of a vend, same role, same policy size and tags, same item shape. */
  async function floorOnce(record: boolean): Promise<number> {
    const leaseId = randomIds.leaseId();
    const values = { claims: CLAIMS, context: {}, principal, leaseId };
    const policy = renderSessionPolicy(grant, values);
    const tags = { ...renderSessionTags(grant, values), 'tvm:lease': leaseId, 'tvm:grant': grant.name, 'tvm:issuer': issuerName };
    const nowMs = Date.now();
    const issuedAt = new Date(nowMs).toISOString();
    const item = {
      pk: leaseId,
      leaseId,
      status: 'pending',
      principal: `${issuerName}|bench-floor`,
      issuer: issuerName,
      sub: 'bench-floor',
      grant: grant.name,
      roleArn: grant.roleArn,
      sessionName: sessionNameFor(leaseId),
      sourceIdentity: sourceIdentityFor(issuerName, sub),
      context: {},
      decision: ['dev-agents-read-reports'],
      tokenSha256: 'f'.repeat(64),
      durationSeconds: grant.durationSeconds.default,
      issuedAt,
      expiresAt: new Date(nowMs + 900_000).toISOString(),
      ttl: Math.floor(nowMs / 1000) + 900 + 90 * 86400,
      events: [{ at: issuedAt, type: 'requested', by: principal }],
      dueShard: dueShardOf(leaseId),
      // Same indexes as a vend's pending lease, but never due while the bench runs.
      dueAt: Math.floor(nowMs / 1000) + 86400 * 30,
    };
    const t0 = now();
    await rt.ddb.send(new PutCommand({ TableName: rt.table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
    const t1 = now();
    const out = await rt.sts.send(
      new AssumeRoleCommand({
        RoleArn: grant.roleArn,
        RoleSessionName: sessionNameFor(leaseId),
        SourceIdentity: sourceIdentityFor(issuerName, sub),
        DurationSeconds: grant.durationSeconds.default,
        Policy: policy,
        Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
      }),
    );
    const t2 = now();
    if (!out.Credentials?.AccessKeyId) throw new Error('floor: STS answered no credentials');
    // Not part of the floor: the activation write, timed apart for the design floor.
    const t3 = now();
    await rt.ddb.send(
      new UpdateCommand({
        TableName: rt.table,
        Key: { pk: leaseId },
        ConditionExpression: '#s = :pending',
        UpdateExpression: 'SET #s = :active, accessKeyId = :k, expiresAt = :e, events = list_append(events, :ev)',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: {
          ':pending': 'pending',
          ':active': 'active',
          ':k': out.Credentials.AccessKeyId,
          ':e': new Date(out.Credentials.Expiration!).toISOString(),
          ':ev': [{ at: new Date().toISOString(), type: 'issued', by: principal, detail: { accessKeyId: out.Credentials.AccessKeyId } }],
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const t4 = now();
    if (record) {
      floorPut.push(t1 - t0);
      floorSts.push(t2 - t1);
      floorUpdate.push(t4 - t3);
      designFloor.push(t2 - t0 + (t4 - t3));
    }
    return t2 - t0;
  }

  let vendErrors = 0;
  let tokenIndex = 0;
  async function vendOnce(): Promise<number> {
    const event = httpEvent('POST /v1/vend', { headers: { authorization: `Bearer ${tokens[tokenIndex++ % tokens.length]}` }, body: { grant: GRANT } });
    const t0 = now();
    const res = await handler(event);
    const t = now() - t0;
    if (res.statusCode !== 200) {
      vendErrors++;
      if (vendErrors <= 3) progress(`vend answered ${res.statusCode}: ${res.body}`);
    }
    return t;
  }

  progress(`floor vs vend: warm-up ${opts.warmup} each`);
  for (let i = 0; i < opts.warmup; i++) {
    await floorOnce(false);
    await vendOnce();
  }
  vendErrors = 0;
  const floor: number[] = [];
  const vend: number[] = [];
  progress(`floor vs vend: ${opts.iterations} each, interleaved (AB BA AB …)`);
  for (let i = 0; i < opts.iterations; i++) {
    // Alternate which goes first so neither always follows the other's GC or socket reuse.
    if (i % 2 === 0) {
      floor.push(await floorOnce(true));
      vend.push(await vendOnce());
    } else {
      vend.push(await vendOnce());
      floor.push(await floorOnce(true));
    }
  }
  const f = summarize(floor);
  const v = summarize(vend);
  return {
    iterations: opts.iterations,
    warmup: opts.warmup,
    floor: f,
    vend: v,
    floorSts: summarize(floorSts),
    floorPut: summarize(floorPut),
    floorUpdate: summarize(floorUpdate),
    designFloor: summarize(designFloor),
    ratioP50: v.p50 / f.p50,
    ratioDesignP50: v.p50 / summarize(designFloor).p50,
    vendErrors,
  };
}
