/**
 * The RoleRevoker over IAM inline policies, with the deny state kept in DynamoDB.
 *
 * The DynamoDB item `deny#<roleArn>` is the source of truth (entries with their expiry, a
 * `version`, `chars` = the rendered size); the IAM policy is rendered from it. Adding a few
 * sessions that surely fit is one atomic update (map entries set, `version` incremented, guarded
 * by `chars`), so concurrent revocations do not even conflict; anything else (a fallback, a
 * prune, a bulk page, a merge) is a compare-and-swap on `version`, retried with jitter. Either
 * way no writer overwrites another's entry. Writing IAM is then a
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
  DenyPolicyFull,
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
  sessionEntryChars,
  SESSIONS_STATEMENT_CHARS,
  PRUNE_MARGIN_SECONDS,
  ROLE_SCOPE,
} from '../core/deny-policy.js';
import { Throttled, TvmError, UpstreamUnavailable } from '../core/errors.js';
import type { Clock, DenyEntry, DenyOutcome, DenyScope, PruneOutcome, RoleRevoker } from '../core/ports.js';

/** The `due` index partition that holds deny records (lease shards are `due#0`…`due#15`). */
export const DENY_DUE_SHARD = 'deny';
const DUE_INDEX = 'due';
const BUDGET_CACHE_MS = 60_000;

interface DenyRecord {
  version: number;
  appliedVersion: number;
  /** The `putSeq` the writer of the `applied` mark read before its put. */
  appliedSeqBase: number;
  /** Puts that have landed (counted after each). */
  putSeq: number;
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
  /**
   * The IAM client for a role in another account (its revoker role's), or undefined for the
   * constructor's own client. @default every role with the own client
   */
  iamFor?: (roleArn: string) => IAMClient | undefined;
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

  async deny(roleArn: string, entries: DenyEntry[], scope: DenyScope = ROLE_SCOPE): Promise<DenyOutcome> {
    let budget = await this.cachedBudget(roleArn);
    let fast = await this.tryAtomicAdd(roleArn, entries, budget);
    if (fast === undefined && (await this.createIfMissing(roleArn))) fast = await this.tryAtomicAdd(roleArn, entries, budget);
    if (fast !== undefined) {
      try {
        await this.apply(roleArn, fast.version);
        return { fallback: false, policyChars: fast.chars };
      } catch (e) {
        if (e instanceof TvmError || !isNamed(e, 'LimitExceeded', 'LimitExceededException')) throw e instanceof TvmError ? e : mapIamError(e, roleArn, 'PutRolePolicy');
        budget = Math.min(budget - 1, await this.budgetFor(roleArn));
        this.budgets.set(roleArn, { budget, at: this.options.clock.now() });
      }
    }
    for (let round = 0; ; round++) {
      let engaged: Pick<DenyOutcome, 'fallback' | 'fallbackKind' | 'fallbackIssuedBefore'> = { fallback: false };
      const record = await this.update(roleArn, (state) => {
        let r;
        try {
          r = addDenyEntries(state, entries, this.nowEpoch(), budget, scope);
        } catch (e) {
          if (e instanceof DenyPolicyNoRoom) throw new UpstreamUnavailable('deny_policy_no_room', { roleArn, budget: e.budget, needed: e.needed });
          if (e instanceof DenyPolicyFull) throw new UpstreamUnavailable('deny_policy_full', { roleArn, budget: e.budget, needed: e.needed, scope });
          throw e;
        }
        engaged = r.fallback ? { fallback: true, fallbackKind: r.fallbackKind, fallbackIssuedBefore: r.fallbackIssuedBefore } : { fallback: false };
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
        ...(state.fallback ? { fallbackIssuedBefore: state.fallback.issuedBefore } : {}),
        ...engaged,
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

  /**
   * The conflict-free path: a few session entries that fit even if a new statement is needed,
   * set in one update. Answers undefined when the general path must decide (missing record,
   * too little room, an entry already there, sources).
   */
  private async tryAtomicAdd(roleArn: string, entries: DenyEntry[], budget: number): Promise<{ version: number; chars: number } | undefined> {
    const nowEpoch = this.nowEpoch();
    const live = entries.filter((e) => e.expiresAt + PRUNE_MARGIN_SECONDS > nowEpoch);
    if (!live.length || live.length > 8 || live.some((e) => e.kind !== 'session')) return undefined;
    const sessions = live as Extract<DenyEntry, { kind: 'session' }>[];
    const cost = sessions.reduce((n, e) => n + sessionEntryChars(e.sessionName), 0);
    const names: Record<string, string> = { '#sessions': 'sessions' };
    const values: Record<string, unknown> = { ':one': 1, ':cost': cost, ':limit': budget - cost - SESSIONS_STATEMENT_CHARS, ':deny': DENY_DUE_SHARD };
    const sets: string[] = ['dueShard = :deny', 'dueAt = if_not_exists(dueAt, :due)'];
    const conds: string[] = ['attribute_exists(pk)', 'chars <= :limit'];
    values[':due'] = Math.min(...sessions.map((e) => e.expiresAt)) + PRUNE_MARGIN_SECONDS;
    sessions.forEach((e, i) => {
      names[`#n${i}`] = e.sessionName;
      values[`:e${i}`] = { expiresAt: e.expiresAt, issued: e.issued, ...(e.sourceIdentity ? { source: e.sourceIdentity } : {}) };
      sets.push(`#sessions.#n${i} = :e${i}`);
      conds.push(`attribute_not_exists(#sessions.#n${i})`);
    });
    try {
      const out = await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(roleArn),
          UpdateExpression: `SET ${sets.join(', ')} ADD version :one, chars :cost`,
          ConditionExpression: conds.join(' AND '),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      return { version: out.Attributes!.version as number, chars: out.Attributes!.chars as number };
    } catch (e) {
      if (isNamed(e, 'ConditionalCheckFailedException')) return undefined;
      throw e;
    }
  }

  /** Creates an empty record when there is none (so the atomic path has maps to write into). */
  private async createIfMissing(roleArn: string): Promise<boolean> {
    if ((await this.read(roleArn)).version !== 0) return false;
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...this.key(roleArn), roleArn, version: 0, appliedVersion: 0, sessions: {}, sources: {}, chars: 0 },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (e) {
      if (!isNamed(e, 'ConditionalCheckFailedException')) throw e;
    }
    return true;
  }

  private key(roleArn: string) {
    return { pk: `deny#${roleArn}` };
  }

  private async read(roleArn: string): Promise<DenyRecord> {
    const out = await this.ddb.send(new GetCommand({ TableName: this.table, Key: this.key(roleArn), ConsistentRead: true }));
    const item = out.Item;
    if (!item) return { version: 0, appliedVersion: 0, appliedSeqBase: 0, putSeq: 0, state: emptyDenyState() };
    return {
      version: item.version as number,
      appliedVersion: (item.appliedVersion as number | undefined) ?? 0,
      appliedSeqBase: (item.appliedSeqBase as number | undefined) ?? 0,
      putSeq: (item.putSeq as number | undefined) ?? 0,
      state: {
        sessions: (item.sessions as DenyState['sessions'] | undefined) ?? {},
        sources: (item.sources as DenyState['sources'] | undefined) ?? {},
        ...(item.fallback ? { fallback: item.fallback as DenyState['fallback'] } : {}),
      },
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
              // Copied as read: a concurrent mark or put count lost here only makes writers re-put.
              appliedVersion: current.appliedVersion,
              appliedSeqBase: current.appliedSeqBase,
              putSeq: current.putSeq,
              sessions: next.sessions,
              sources: next.sources,
              ...(next.fallback ? { fallback: next.fallback } : {}),
              chars: denyPolicyChars(next),
              updatedAt: new Date(this.options.clock.now()).toISOString(),
              ...(due !== undefined ? { dueShard: DENY_DUE_SHARD, dueAt: due } : {}),
            },
            ConditionExpression: 'attribute_not_exists(pk) OR version = :v',
            ExpressionAttributeValues: { ':v': current.version },
          }),
        );
        return { ...current, version, state: next };
      } catch (e) {
        if (!isNamed(e, 'ConditionalCheckFailedException')) throw e;
        if (attempt >= this.maxAttempts) throw new Throttled('deny_policy_contention', { roleArn, attempts: attempt });
        // Full jitter, growing with the attempts: contenders spread out instead of colliding again.
        await sleep(Math.floor(this.random() * Math.min(this.maxBackoffMs, 5 * 2 ** Math.min(attempt, 10))));
      }
    }
  }

  /**
   * Makes IAM show at least version `version` of the record, without ever leaving an older
   * render in place:
   * - a writer relies on an `applied` mark (version ≥ its own, set by a writer that re-read the
   *   record after its put and found it unchanged) — but after a put of its own, only on a mark
   *   whose writer read `putSeq` after that put had landed (`appliedSeqBase` ≥ the writer's
   *   `putSeq`), because only such a put is sure to land after its own, possibly stale, one;
   * - otherwise it renders the current record and puts it again.
   * In a burst of revocations the writers wait a jittered moment before putting again, so a few
   * puts cover many revocations.
   */
  private async apply(roleArn: string, version: number): Promise<void> {
    let mySeq = 0;
    for (let round = 0; round < 60; round++) {
      let record = await this.read(roleArn);
      if (record.version < version) throw new UpstreamUnavailable('deny_record_regressed', { roleArn, version, found: record.version });
      if (record.appliedVersion >= version && record.appliedSeqBase >= mySeq) return;
      if (mySeq > 0) {
        await sleep(Math.floor(this.random() * Math.min(this.maxBackoffMs, 10 * 2 ** Math.min(round, 5))));
        record = await this.read(roleArn);
        if (record.appliedVersion >= version && record.appliedSeqBase >= mySeq) return;
      }
      version = record.version;
      await this.write(roleArn, record.state);
      mySeq = await this.countPut(roleArn);
      const after = await this.read(roleArn);
      if (after.version === version) return this.markApplied(roleArn, version, record.putSeq);
      // The record moved while we put: our put may have landed over a newer one. Loop.
    }
    throw new Throttled('deny_policy_contention', { roleArn, version });
  }

  /** Registers a landed put; answers its sequence number. */
  private async countPut(roleArn: string): Promise<number> {
    const out = await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: this.key(roleArn),
        UpdateExpression: 'ADD putSeq :one',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    return out.Attributes!.putSeq as number;
  }

  private iamOf(roleArn: string): IAMClient {
    return this.options.iamFor?.(roleArn) ?? this.iam;
  }

  private async write(roleArn: string, state: DenyState): Promise<void> {
    const RoleName = roleNameOf(roleArn);
    const doc = renderDenyPolicy(state);
    try {
      if (doc) {
        await this.iamOf(roleArn).send(new PutRolePolicyCommand({ RoleName, PolicyName: this.options.policyName, PolicyDocument: serializeDenyPolicy(doc) }));
      } else {
        await this.iamOf(roleArn).send(new DeleteRolePolicyCommand({ RoleName, PolicyName: this.options.policyName }));
      }
    } catch (e) {
      if (!doc && isNamed(e, 'NoSuchEntity', 'NoSuchEntityException')) return;
      if (isNamed(e, 'LimitExceeded', 'LimitExceededException')) throw e;
      throw mapIamError(e, roleArn, doc ? 'PutRolePolicy' : 'DeleteRolePolicy');
    }
  }

  private async markApplied(roleArn: string, version: number, seqBase: number): Promise<void> {
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(roleArn),
          UpdateExpression: 'SET appliedVersion = :v, appliedSeqBase = :sb',
          ConditionExpression:
            'attribute_exists(pk) AND (attribute_not_exists(appliedVersion) OR appliedVersion < :v OR (appliedVersion = :v AND appliedSeqBase < :sb))',
          ExpressionAttributeValues: { ':v': version, ':sb': seqBase },
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
        const page = await this.iamOf(roleArn).send(new ListRolePoliciesCommand({ RoleName, Marker }));
        for (const PolicyName of page.PolicyNames ?? []) {
          if (PolicyName === this.options.policyName) continue;
          const got = await this.iamOf(roleArn).send(new GetRolePolicyCommand({ RoleName, PolicyName }));
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
