/**
 * The RoleRevoker over IAM inline policies, with the deny state kept in DynamoDB.
 *
 * The DynamoDB item `deny#<roleArn>` is the source of truth (entries with their expiry, a
 * `version`, `chars` = the rendered size); the IAM policy is rendered from it. Adding a few
 * sessions that surely fit is one atomic update (map entries set, `version` incremented, guarded
 * by `chars`), so concurrent revocations do not even conflict; anything else (a fallback, a
 * prune, a bulk page, a merge) is a compare-and-swap on `version`, retried with jitter. Either
 * way no writer overwrites another's entry.
 *
 * IAM's PutRolePolicy is last-writer-wins with no condition, so a put rendered from an older
 * version can land over a newer one. Writing IAM is therefore ordered through the record (see
 * `apply`): a writer claims its put in the record's `inflight` map, which atomically hands it
 * the state to render, waits until every put claimed before it has finished, puts, and only
 * then marks its version applied. A put claimed later renders a later state, so once a
 * writer's put has landed no older render can land over it: a revocation answered is in force.
 * A writer that dies mid-put blocks the others only until its entry's deadline
 * (`putDeadlineMs`); its put is sent, if at all, within the first third of that deadline.
 *
 * The item also sits in the sparse `due` index (partition `deny`, sort key = when its next entry
 * can be pruned), so the sweep finds prunable roles with a query, not a scan.
 */
import { randomUUID } from 'node:crypto';
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

/** Default `putDeadlineMs`. */
const PUT_DEADLINE_MS = 30_000;
const MAX_APPLY_ROUNDS = 20;

interface DenyRecord {
  version: number;
  /** IAM renders this version or a later one, and no older render can land any more. */
  appliedVersion: number;
  /** Puts claimed and not finished: id → when claimed (epoch ms, `clock`). */
  inflight: Record<string, { at: number }>;
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
  /** Waits between attempts. @default node's timer */
  sleep?: (ms: number) => Promise<void>;
  /**
   * How long a claimed IAM put may stay unfinished before the other writers treat its writer
   * as dead, ms. A writer sends its put only within the first third of it (and aborts the call
   * at two thirds), so a put still landing after the deadline needs IAM to hold it for more than
   * a third of it. @default 30 s
   */
  putDeadlineMs?: number;
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

/** IAM answered (an error response): the request was refused, so it did not and will not land. */
function isServiceAnswer(e: unknown): boolean {
  return typeof (e as { $fault?: unknown } | undefined)?.$fault === 'string' || isNamed(e, ...IAM_ERRORS);
}

const IAM_ERRORS = [
  'Throttling',
  'ThrottlingException',
  'LimitExceeded',
  'LimitExceededException',
  'NoSuchEntity',
  'NoSuchEntityException',
  'MalformedPolicyDocument',
  'MalformedPolicyDocumentException',
  'UnmodifiableEntity',
  'UnmodifiableEntityException',
  'AccessDenied',
  'AccessDeniedException',
];

function recordOf(item: Record<string, unknown> | undefined): DenyRecord {
  if (!item) return { version: 0, appliedVersion: 0, inflight: {}, state: emptyDenyState() };
  return {
    version: item.version as number,
    appliedVersion: (item.appliedVersion as number | undefined) ?? 0,
    inflight: (item.inflight as DenyRecord['inflight'] | undefined) ?? {},
    state: {
      sessions: (item.sessions as DenyState['sessions'] | undefined) ?? {},
      sources: (item.sources as DenyState['sources'] | undefined) ?? {},
      ...(item.fallback ? { fallback: item.fallback as DenyState['fallback'] } : {}),
    },
  };
}

export class IamRoleRevoker implements RoleRevoker {
  private readonly maxAttempts: number;
  private readonly maxBackoffMs: number;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly putDeadlineMs: number;

  constructor(
    private readonly iam: IAMClient,
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly options: IamRoleRevokerOptions,
  ) {
    this.maxAttempts = options.maxAttempts ?? 200;
    this.maxBackoffMs = options.maxBackoffMs ?? 200;
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? ((ms) => sleep(ms));
    this.putDeadlineMs = options.putDeadlineMs ?? PUT_DEADLINE_MS;
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
        // The record's `chars` after an atomic add counts the entries, not the statement around
        // them (its margin is checked instead): answer the policy as it now stands, with the
        // cutoff of a fallback in force (as the general path does).
        const { state } = await this.read(roleArn);
        return { ...(state.fallback ? { fallbackIssuedBefore: state.fallback.issuedBefore } : {}), fallback: false, policyChars: denyPolicyChars(state) };
      } catch (e) {
        // apply maps IAM's errors itself but LimitExceeded; anything else raw is DynamoDB's (the
        // record's reads and claims) and goes up as it is, as from the rest of deny, not as IAM's.
        if (e instanceof TvmError || !isNamed(e, 'LimitExceeded', 'LimitExceededException')) throw e;
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
        if (e instanceof TvmError || !isNamed(e, 'LimitExceeded', 'LimitExceededException')) throw e; // DynamoDB's, as above
        if (round >= 3) throw mapIamError(e, roleArn, 'PutRolePolicy');
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
  private async tryAtomicAdd(roleArn: string, entries: DenyEntry[], budget: number): Promise<{ version: number } | undefined> {
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
      return { version: out.Attributes!.version as number };
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
          Item: { ...this.key(roleArn), roleArn, version: 0, appliedVersion: 0, inflight: {}, sessions: {}, sources: {}, chars: 0 },
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
    return recordOf(out.Item);
  }

  /**
   * Compare-and-swap on the record: `change` answers the new state, or undefined for no change.
   * Answers the record as it stands after the call. It writes the deny state only: the
   * `inflight` claims and the `applied` mark other writers update meanwhile are kept.
   */
  private async update(roleArn: string, change: (state: DenyState) => DenyState | undefined): Promise<DenyRecord> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.read(roleArn);
      const next = change(current.state);
      if (!next) return current;
      const version = current.version + 1;
      const due = nextPruneAt(next);
      const sets = [
        'roleArn = :r',
        'version = :nv',
        'sessions = :sessions',
        'sources = :sources',
        'chars = :chars',
        'updatedAt = :at',
        'inflight = if_not_exists(inflight, :none)',
      ];
      const removes: string[] = [];
      const values: Record<string, unknown> = {
        ':r': roleArn,
        ':v': current.version,
        ':nv': version,
        ':sessions': next.sessions,
        ':sources': next.sources,
        ':chars': denyPolicyChars(next),
        ':at': new Date(this.options.clock.now()).toISOString(),
        ':none': {},
      };
      if (next.fallback) sets.push('fallback = :fallback'), (values[':fallback'] = next.fallback);
      else removes.push('fallback');
      if (due !== undefined) sets.push('dueShard = :deny', 'dueAt = :due'), Object.assign(values, { ':deny': DENY_DUE_SHARD, ':due': due });
      else removes.push('dueShard', 'dueAt');
      try {
        await this.ddb.send(
          new UpdateCommand({
            TableName: this.table,
            Key: this.key(roleArn),
            UpdateExpression: `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`,
            ConditionExpression: 'attribute_not_exists(pk) OR version = :v',
            ExpressionAttributeValues: values,
          }),
        );
        return { ...current, version, state: next };
      } catch (e) {
        if (!isNamed(e, 'ConditionalCheckFailedException')) throw e;
        if (attempt >= this.maxAttempts) throw new Throttled('deny_policy_contention', { roleArn, attempts: attempt });
        // Full jitter, growing with the attempts: contenders spread out instead of colliding again.
        await this.sleep(Math.floor(this.random() * Math.min(this.maxBackoffMs, 5 * 2 ** Math.min(attempt, 10))));
      }
    }
  }

  /**
   * Makes IAM render version `version` of the record or a later one, for good: when it returns,
   * no older render can land over it any more.
   *
   * PutRolePolicy has no condition, so the puts are ordered through the record instead. A writer
   * claims a put (`SET inflight.<id>`); the same update answers the record, whose state is what
   * it will render — so a later claim renders a later (or the same) version, holding every change
   * committed before it. The writer waits until every put claimed before it has finished (or its
   * writer is presumed dead, past `putDeadlineMs`), puts, unregisters and marks its version
   * applied: any put that can still land after that was claimed later, so renders at least its
   * version. A writer whose change an earlier claim's render already holds returns on that
   * claim's mark, without a put of its own; one that sees a claim made after its own, before its
   * turn has come, leaves the put to that one (whose render holds its change) and waits for its
   * mark, claiming again if that put never comes: a burst of revocations on a role costs a put or
   * two, not one each.
   */
  private async apply(roleArn: string, version: number): Promise<void> {
    for (let round = 0; round < MAX_APPLY_ROUNDS; round++) {
      const current = await this.read(roleArn);
      if (current.version < version) throw new UpstreamUnavailable('deny_record_regressed', { roleArn, version, found: current.version });
      if (current.appliedVersion >= version) return;
      const id = randomUUID();
      const at = this.options.clock.now();
      const mine = await this.claim(roleArn, id, at);
      const before = new Set(Object.keys(mine.inflight).filter((k) => k !== id));
      let mayLand = false;
      let turn: Awaited<ReturnType<IamRoleRevoker['awaitTurn']>>;
      try {
        turn = await this.awaitTurn(roleArn, version, id, at, new Set(before), before, round);
        if (turn.outcome === 'put') {
          try {
            mayLand = true;
            await this.write(roleArn, mine.state, at + (2 * this.putDeadlineMs) / 3 - this.options.clock.now());
          } catch (e) {
            // An answer from IAM means the put did not and will not land; without one (a timeout,
            // a reset) it might still: then the claim stays until its deadline.
            mayLand = !isServiceAnswer(e);
            if (isNamed(e, 'LimitExceeded', 'LimitExceededException')) throw e;
            throw mapIamError(e, roleArn, renderDenyPolicy(mine.state) ? 'PutRolePolicy' : 'DeleteRolePolicy');
          }
          mayLand = false; // it has landed
          return await this.settle(roleArn, id, mine.version, turn.dead);
        }
        await this.release(roleArn, id, turn.dead);
      } catch (e) {
        // Whatever failed (DynamoDB too), a claim whose put cannot land any more is not left to
        // block the role's other writers until its deadline.
        if (!mayLand) await this.release(roleArn, id, []).catch(() => undefined);
        throw e;
      }
      if (turn.outcome === 'applied') return;
      if (turn.outcome === 'deferred' && (await this.awaitLaterPut(roleArn, version, id, before, round))) return;
      // Too late to put safely, or the later put never came: claim again, with a fresh state.
    }
    throw new Throttled('deny_policy_contention', { roleArn, version });
  }

  /** Claims a put; answers the record as of the claim (the state to render, the claims ahead). */
  private async claim(roleArn: string, id: string, at: number): Promise<DenyRecord> {
    const ways = [
      { UpdateExpression: 'SET inflight.#id = :e', ConditionExpression: 'attribute_exists(inflight)', ExpressionAttributeNames: { '#id': id }, ExpressionAttributeValues: { ':e': { at } } },
      // A record written before claims existed: start its map (unless another writer just did).
      { UpdateExpression: 'SET inflight = :m', ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(inflight)', ExpressionAttributeValues: { ':m': { [id]: { at } } } },
    ];
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        const out = await this.ddb.send(new UpdateCommand({ TableName: this.table, Key: this.key(roleArn), ...ways[attempt % 2], ReturnValues: 'ALL_NEW' }));
        return recordOf(out.Attributes);
      } catch (e) {
        if (!isNamed(e, 'ConditionalCheckFailedException')) throw e;
      }
    }
    throw new UpstreamUnavailable('deny_record_missing', { roleArn });
  }

  /**
   * Waits for this writer's turn to put: none of the puts claimed `ahead` of it still there and
   * alive. Answers instead `applied` when a mark covers `version` first, `deferred` when a claim
   * made after its own (not in `before`) is alive, `late` when this writer's own send window (a
   * third of the deadline from its claim `at`) has passed; and the dead claims it saw, to clear
   * them.
   */
  private async awaitTurn(
    roleArn: string,
    version: number,
    id: string,
    at: number,
    ahead: Set<string>,
    before: Set<string>,
    round: number,
  ): Promise<{ outcome: 'put' | 'applied' | 'deferred' | 'late'; dead: string[] }> {
    const dead: string[] = [];
    for (let poll = 0; ; poll++) {
      // (The poll bound matters only to a clock that does not move: a test's.)
      if (this.options.clock.now() - at > this.putDeadlineMs / 3 || poll >= 200) return { outcome: 'late', dead };
      if (!ahead.size) return { outcome: 'put', dead };
      await this.pollPause(round + poll);
      const record = await this.read(roleArn);
      if (record.appliedVersion >= version) return { outcome: 'applied', dead };
      const now = this.options.clock.now();
      const alive = (k: string) => now - record.inflight[k].at <= this.putDeadlineMs;
      if (Object.keys(record.inflight).some((k) => k !== id && !before.has(k) && alive(k))) return { outcome: 'deferred', dead };
      for (const k of ahead) {
        if (k in record.inflight && !alive(k)) dead.push(k);
        if (!(k in record.inflight) || !alive(k)) ahead.delete(k);
      }
    }
  }

  /**
   * After leaving the put to a later claim: waits for a mark covering `version`; answers false
   * once no claim made after this writer's (`id`, with `before` ahead of it) is alive without one.
   */
  private async awaitLaterPut(roleArn: string, version: number, id: string, before: Set<string>, round: number): Promise<boolean> {
    for (let poll = 0; poll < 1000; poll++) {
      await this.pollPause(round + poll);
      const record = await this.read(roleArn);
      if (record.appliedVersion >= version) return true;
      const now = this.options.clock.now();
      if (!Object.entries(record.inflight).some(([k, e]) => k !== id && !before.has(k) && now - e.at <= this.putDeadlineMs)) return false;
    }
    return false;
  }

  /** Waiting is for a put or two, and many writers may wait: the polls thin out (full jitter). */
  private pollPause(attempt: number): Promise<void> {
    return this.sleep(Math.floor(this.random() * Math.min(5 * this.maxBackoffMs, 20 * 2 ** Math.min(attempt, 6))));
  }

  /** Releases a finished put and marks its version applied (a later mark is kept). */
  private async settle(roleArn: string, id: string, version: number, dead: string[]): Promise<void> {
    const names = Object.fromEntries([id, ...dead].map((k, i) => [`#i${i}`, k]));
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: this.key(roleArn),
          UpdateExpression: `SET appliedVersion = :v REMOVE ${Object.keys(names).map((n) => `inflight.${n}`).join(', ')}`,
          ConditionExpression: 'attribute_exists(pk) AND (attribute_not_exists(appliedVersion) OR appliedVersion < :v)',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: { ':v': version },
        }),
      );
    } catch (e) {
      if (!isNamed(e, 'ConditionalCheckFailedException')) throw e;
      await this.release(roleArn, id, dead);
    }
  }

  private async release(roleArn: string, id: string, dead: string[]): Promise<void> {
    const names = Object.fromEntries([id, ...dead].map((k, i) => [`#i${i}`, k]));
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: this.key(roleArn),
        UpdateExpression: `REMOVE ${Object.keys(names).map((n) => `inflight.${n}`).join(', ')}`,
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeNames: names,
      }),
    );
  }

  private iamOf(roleArn: string): IAMClient {
    return this.options.iamFor?.(roleArn) ?? this.iam;
  }

  /** Puts (or, for an empty state, deletes) the policy; the call is aborted after `withinMs`. */
  private async write(roleArn: string, state: DenyState, withinMs: number): Promise<void> {
    const RoleName = roleNameOf(roleArn);
    const doc = renderDenyPolicy(state);
    const options = { abortSignal: AbortSignal.timeout(Math.max(1, Math.floor(withinMs))) };
    try {
      if (doc) {
        await this.iamOf(roleArn).send(new PutRolePolicyCommand({ RoleName, PolicyName: this.options.policyName, PolicyDocument: serializeDenyPolicy(doc) }), options);
      } else {
        await this.iamOf(roleArn).send(new DeleteRolePolicyCommand({ RoleName, PolicyName: this.options.policyName }), options);
      }
    } catch (e) {
      if (!doc && isNamed(e, 'NoSuchEntity', 'NoSuchEntityException')) return;
      throw e;
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
