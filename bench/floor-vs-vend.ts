/**
 * 1 + 2: the floor (one STS AssumeRole + one DynamoDB PutItem, made directly with tvm's own SDK
 * clients against the local endpoints) against the vend handler in-process, interleaved.
 *
 * With `latency`, both run again with a delay in front of every STS and DynamoDB request (an SDK
 * middleware on the very clients the floor and the vend use): AWS's round trips are not the local
 * emulator's 1 ms, and a design's cost shows only when they are not.
 */
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
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

/** A delay in front of every request to a service: uniform in [mean − jitter, mean + jitter] ms. */
export interface Latency {
  stsMs: number;
  stsJitterMs: number;
  ddbMs: number;
  ddbJitterMs: number;
}

export const AWS_LIKE: Latency = { stsMs: 20, stsJitterMs: 5, ddbMs: 4, ddbJitterMs: 1 };

const LATENCY_MIDDLEWARE = 'benchInjectedLatency';

type WithStack = { middlewareStack: { add: (...a: any[]) => void; remove: (name: string) => boolean } };

/** Adds the delay to a client (every attempt, before it is sent); answers a function that removes it. */
export function injectLatency(client: WithStack, meanMs: number, jitterMs: number): () => void {
  client.middlewareStack.add(
    (next: (a: unknown) => Promise<unknown>) => async (args: unknown) => {
      await new Promise((r) => setTimeout(r, Math.max(0, meanMs + (Math.random() * 2 - 1) * jitterMs)));
      return next(args);
    },
    { step: 'finalizeRequest', name: LATENCY_MIDDLEWARE },
  );
  return () => void client.middlewareStack.remove(LATENCY_MIDDLEWARE);
}

export interface FloorVsVend {
  iterations: number;
  warmup: number;
  floor: Summary;
  vend: Summary;
  /** The two halves of the floor, measured inside the floor iterations. */
  floorSts: Summary;
  floorPut: Summary;
  /**
   * What tvm's design needs if its own code took no time: the pending PutItem and AssumeRole
   * concurrently (the slower of the two, from the floor's own halves), then the activation
   * (the lease store's `activate`).
   */
  designFloor: Summary;
  floorUpdate: Summary;
  ratioP50: number;
  ratioDesignP50: number;
  latency?: Latency;
}

export async function floorVsVend(stack: LocalStack, opts: { iterations: number; warmup: number; latency?: Latency }): Promise<FloorVsVend> {
  const rt = stack.runtime;
  const removers = opts.latency
    ? [injectLatency(rt.sts, opts.latency.stsMs, opts.latency.stsJitterMs), injectLatency(rt.ddb, opts.latency.ddbMs, opts.latency.ddbJitterMs)]
    : [];
  try {
    return await measure(stack, opts);
  } finally {
    for (const remove of removers) remove();
  }
}

async function measure(stack: LocalStack, opts: { iterations: number; warmup: number; latency?: Latency }): Promise<FloorVsVend> {
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
    // Not part of the floor: the activation write (the lease store's own `activate`, not a copy of
    // it), timed apart for the design floor.
    const t3 = now();
    await rt.leases.activate(leaseId, out.Credentials.AccessKeyId, new Date(out.Credentials.Expiration!).toISOString(), {
      at: new Date().toISOString(),
      type: 'issued',
      by: principal,
      detail: { accessKeyId: out.Credentials.AccessKeyId },
    });
    const t4 = now();
    if (record) {
      floorPut.push(t1 - t0);
      floorSts.push(t2 - t1);
      floorUpdate.push(t4 - t3);
      // tvm's design: PutItem ∥ AssumeRole, then the activation — the slower of the two, plus one write.
      designFloor.push(Math.max(t1 - t0, t2 - t1) + (t4 - t3));
    }
    return t2 - t0;
  }

  let tokenIndex = 0;
  async function vendOnce(): Promise<number> {
    const event = httpEvent('POST /v1/vend', { headers: { authorization: `Bearer ${tokens[tokenIndex++ % tokens.length]}` }, body: { grant: GRANT } });
    const t0 = now();
    const res = await handler(event);
    const t = now() - t0;
    // A fast error would lower the vend's percentiles: an answer that is not 200 fails the run.
    if (res.statusCode !== 200) throw new Error(`floor vs vend: a vend answered ${res.statusCode} (${res.body}); the run is void`);
    return t;
  }

  const label = opts.latency
    ? `floor vs vend, simulated AWS latency (AssumeRole ${opts.latency.stsMs} ± ${opts.latency.stsJitterMs} ms, DynamoDB ${opts.latency.ddbMs} ± ${opts.latency.ddbJitterMs} ms)`
    : 'floor vs vend, local endpoints';
  progress(`${label}: warm-up ${opts.warmup} each`);
  for (let i = 0; i < opts.warmup; i++) {
    await floorOnce(false);
    await vendOnce();
  }
  const floor: number[] = [];
  const vend: number[] = [];
  progress(`${label}: ${opts.iterations} each, interleaved (AB BA AB …)`);
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
    latency: opts.latency,
  };
}
