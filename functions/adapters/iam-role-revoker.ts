/**
 * The RoleRevoker over IAM inline policies, with the deny state kept in DynamoDB.
 *
 * The DynamoDB item `deny#<roleArn>` is the source of truth (entries with their expiry, a
 * `version`); the IAM policy is rendered from it. Every change is a compare-and-swap on `version`
 * (retried with jitter), so concurrent revocations never lose an entry. Writing IAM is then a
 * render → put → re-read loop: a writer whose put may have overwritten a newer version sees the
 * version moved and puts again, so the last put to land always renders the latest version.
 * No lock is held, so a crash leaves nothing stuck: the next writer (or the sweep) re-renders.
 *
 * The item also sits in the sparse `due` index (partition `deny`, sort key = when its next entry
 * can be pruned), so the sweep finds prunable roles with a query, not a scan.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  type IAMClient,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import {
  addDenyEntries,
  DenyPolicyNoRoom,
  type DenyState,
  denyPolicyChars,
  emptyDenyState,
  INLINE_POLICY_BUDGET,
  isEmptyDenyState,
  nextPruneAt,
  policyChars,
  pruneDenyState,
  renderDenyPolicy,
  serializeDenyPolicy,
} from '../core/deny-policy.js';
import { Throttled, TvmError, UpstreamUnavailable } from '../core/errors.js';
import type { Clock, DenyEntry, DenyOutcome, PruneOutcome, RoleRevoker } from '../core/ports.js';

/** The `due` index partition that holds deny records (lease shards are `due#0`…`due#15`). */
export const DENY_DUE_SHARD = 'deny';
const DUE_INDEX = 'due';
const BUDGET_CACHE_MS = 60_000;

interface DenyRecord {
  version: number;
  appliedVersion: number;
  state: DenyState;
}

export interface IamRoleRevokerOptions {
  policyName: string;
  clock: Clock;
  /** Compare-and-swap attempts before giving up (each conflict means another writer won). */
  maxAttempts?: number;
  /** Upper bound of one jittered backoff, ms. */
  maxBackoffMs?: number;
  random?: () => number;
}

function isNamed(e: unknown, ...names: string[]): boolean {
  return names.includes((e as { name?: string })?.name ?? '');
}

export function roleNameOf(roleArn: string): string {
  return roleArn.slice(roleArn.lastIndexOf('/') + 1);
}

function mapIamError(e: unknown, roleArn: string, op: string): Error {
  const name = (e as { name?: string })?.name ?? 'Error';
  const detail = { roleArn, op, iamError: name, message: (e as Error)?.message };
  if (isNamed(e, 'Throttling', 'ThrottlingException', 'TooManyRequestsException')) return new Throttled('iam_throttled', detail);
  return new UpstreamUnavailable('iam_failed', detail);
}

export class IamRoleRevoker implements RoleRevoker {
  private readonly maxAttempts: number;
  private readonly maxBackoffMs: number;
  private readonly random: () => number;

  constructor(
    private readonly iam: IAMClient,
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly options: IamRoleRevokerOptions,
  ) {
    this.maxAttempts = options.maxAttempts ?? 200;
    this.maxBackoffMs = options.maxBackoffMs ?? 200;
    this.random = options.random ?? Math.random;
  }

  private nowEpoch(): number {
    return Math.floor(this.options.clock.now() / 1000);
  }

  async deny(roleArn: string, entries: DenyEntry[]): Promise<DenyOutcome> {
    let budget = await this.cachedBudget(roleArn);
    for (let round = 0; ; round++) {
      let fallback = false;
      const record = await this.update(roleArn, (state) => {
        let r;
        try {
          r = addDenyEntries(state, entries, this.nowEpoch(), budget);
        } catch (e) {
          if (e instanceof DenyPolicyNoRoom) throw new UpstreamUnavailable('deny_policy_no_room', { roleArn, budget: e.budget, needed: e.needed });
          throw e;
        }
        fallback = r.fallback;
        return r.unchanged ? undefined : r.state;
      });
      try {
        await this.apply(roleArn, record.version);
      } catch (e) {
        // Another inline policy grew between our size check and the put: re-measure and let the
        // fallback make room (a revocation never fails for lack of room).
        if (e instanceof TvmError) throw e;
        if (!isNamed(e, 'LimitExceeded', 'LimitExceededException') || round >= 3) throw mapIamError(e, roleArn, 'PutRolePolicy');
        budget = Math.min(budget - 1, await this.budgetFor(roleArn));
        this.budgets.set(roleArn, { budget, at: this.options.clock.now() });
        continue;
      }
      const state = record.state;
      return {
        fallback,
        ...(state.fallback ? { fallbackIssuedBefore: state.fallback.issuedBefore } : {}),
        policyChars: denyPolicyChars(state),
      };
    }
  }

  async prune(roleArn: string, nowEpoch: number): Promise<PruneOutcome> {
    let entriesRemoved = 0;
    let fallbackDropped = false;
    const record = await this.update(roleArn, (state) => {
      const r = pruneDenyState(state, nowEpoch);
      entriesRemoved = r.entriesRemoved;
      fallbackDropped = r.fallbackDropped;
      return r.entriesRemoved || r.fallbackDropped ? r.state : undefined;
    });
    await this.apply(roleArn, record.version);
    return { entriesRemoved, fallbackDropped, empty: isEmptyDenyState(record.state) };
  }

  async listPrunable(dueBy: number, cursor?: string, limit = 100): Promise<{ roleArns: string[]; cursor?: string }> {
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: DUE_INDEX,
        KeyConditionExpression: 'dueShard = :s AND dueAt <= :by',
        ExpressionAttributeValues: { ':s': DENY_DUE_SHARD, ':by': dueBy },
        Limit: limit,
        ExclusiveStartKey: cursor ? JSON.parse(cursor) : undefined,
      }),
    );
    return {
      roleArns: (out.Items ?? []).map((i) => i.roleArn as string),
      cursor: out.LastEvaluatedKey ? JSON.stringify(out.LastEvaluatedKey) : undefined,
    };
  }

  /** The deny state tvm holds for a role (tests, `tvm leases show`). */
  async stateOf(roleArn: string): Promise<DenyState> {
    return (await this.read(roleArn)).state;
  }

  private key(roleArn: string) {
    return { pk: `deny#${roleArn}` };
  }

  private async read(roleArn: string): Promise<DenyRecord> {
    const out = await this.ddb.send(new GetCommand({ TableName: this.table, Key: this.key(roleArn), ConsistentRead: true }));
    const item = out.Item;
    if (!item) return { version: 0, appliedVersion: 0, state: emptyDenyState() };
    const state = item.state as DenyState;
    return {
      version: item.version as number,
      appliedVersion: (item.appliedVersion as number | undefined) ?? 0,
      state: { sessions: state.sessions ?? {}, sources: state.sources ?? {}, ...(state.fallback ? { fallback: state.fallback } : {}) },
    };
  }

  /**
   * Compare-and-swap on the record: `change` answers the new state, or undefined for no change.
   * Answers the record as it stands after the call.
   */
  private async update(roleArn: string, change: (state: DenyState) => DenyState | undefined): Promise<DenyRecord> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.read(roleArn);
      const next = change(current.state);
      if (!next) return current;
      const version = current.version + 1;
      const due = nextPruneAt(next);
      try {
        await this.ddb.send(
          new PutCommand({
            TableName: this.table,
            Item: {
              ...this.key(roleArn),
              roleArn,
              version,
              appliedVersion: current.appliedVersion,
              state: next,
              updatedAt: new Date(this.options.clock.now()).toISOString(),
              ...(due !== undefined ? { dueShard: DENY_DUE_SHARD, dueAt: due } : {}),
            },
            ConditionExpression: current.version === 0 ? 'attribute_not_exists(pk)' : 'version = :v',
            ExpressionAttributeValues: current.version === 0 ? undefined : { ':v': current.version },
          }),
        );
        return { version, appliedVersion: current.appliedVersion, state: next };
      } catch (e) {
        if (!isNamed(e, 'ConditionalCheckFailedException')) throw e;
        if (attempt >= this.maxAttempts) throw new Throttled('deny_policy_contention', { roleArn, attempts: attempt });
        // Full jitter, growing with the attempts: contenders spread out instead of colliding again.
        await sleep(Math.floor(this.random() * Math.min(this.maxBackoffMs, 5 * 2 ** Math.min(attempt, 10))));
      }
    }
  }

  /**
   * Makes IAM show at least version `version` of the record. A writer that has not put yet may
   * rely on another writer having applied a version ≥ its own; one that has put must re-check,
   * because its put may have landed over a newer one.
   */
  private async apply(roleArn: string, version: number): Promise<void> {
    let put = false;
    for (let round = 0; round < 50; round++) {
      const record = await this.read(roleArn);
      if (record.version < version) throw new UpstreamUnavailable('deny_record_regressed', { roleArn, version, found: record.version });
      if (!put && record.appliedVersion >= version) return;
      if (put && record.version === version) return this.markApplied(roleArn, version);
      version = record.version;
      await this.write(roleArn, record.state);
      put = true;
      // Checked on the next round: if the version moved, our put may be stale and goes again.
    }
    throw new Throttled('deny_policy_contention', { roleArn, version });
  }

  private async write(roleArn: string, state: DenyState): Promise<void> {
    const RoleName = roleNameOf(roleArn);
    const doc = renderDenyPolicy(state);
    try {
      if (doc) {
        await this.iam.send(new PutRolePolicyCommand({ RoleName, PolicyName: this.options.policyName, PolicyDocument: serializeDenyPolicy(doc) }));
      } else {
        await this.iam.send(new DeleteRolePolicyCommand({ RoleName, PolicyName: this.options.policyName }));
      }
    } catch (e) {
      if (!doc && isNamed(e, 'NoSuchEntity', 'NoSuchEntityException')) return;
      if (isNamed(e, 'LimitExceeded', 'LimitExceededException')) throw e;
      throw mapIamError(e, roleArn, doc ? 'PutRolePolicy' : 'DeleteRolePolicy');
    }
  }

  private async markApplied(roleArn: string, version: number): Promise<void> {
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(roleArn),
          UpdateExpression: 'SET appliedVersion = :v',
          ConditionExpression: 'attribute_exists(pk) AND (attribute_not_exists(appliedVersion) OR appliedVersion < :v)',
          ExpressionAttributeValues: { ':v': version },
        }),
      );
    } catch (e) {
      if (!isNamed(e, 'ConditionalCheckFailedException')) throw e;
    }
  }

  private readonly budgets = new Map<string, { budget: number; at: number }>();

  /**
   * The budget, re-measured at most every `BUDGET_CACHE_MS`: other inline policies change rarely,
   * and when one grew meanwhile IAM's LimitExceeded makes `deny` re-measure at once.
   */
  private async cachedBudget(roleArn: string): Promise<number> {
    const hit = this.budgets.get(roleArn);
    const now = this.options.clock.now();
    if (hit && now - hit.at >= 0 && now - hit.at < BUDGET_CACHE_MS) return hit.budget;
    const budget = await this.budgetFor(roleArn);
    this.budgets.set(roleArn, { budget, at: now });
    return budget;
  }

  /** Characters left for tvm's policy: IAM's 10,240 minus the role's other inline policies. */
  private async budgetFor(roleArn: string): Promise<number> {
    const RoleName = roleNameOf(roleArn);
    let used = 0;
    try {
      let Marker: string | undefined;
      do {
        const page = await this.iam.send(new ListRolePoliciesCommand({ RoleName, Marker }));
        for (const PolicyName of page.PolicyNames ?? []) {
          if (PolicyName === this.options.policyName) continue;
          const got = await this.iam.send(new GetRolePolicyCommand({ RoleName, PolicyName }));
          // IAM answers the document URL-encoded.
          used += policyChars(decodeURIComponent(got.PolicyDocument ?? ''));
        }
        Marker = page.IsTruncated ? page.Marker : undefined;
      } while (Marker);
    } catch (e) {
      throw mapIamError(e, roleArn, 'ListRolePolicies');
    }
    return INLINE_POLICY_BUDGET - used;
  }
}
