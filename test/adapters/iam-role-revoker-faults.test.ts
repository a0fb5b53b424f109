/**
 * The IAM role revoker's failure paths, budgets and bounds, against the real protocols of the local
 * stack: dynalite for the deny records (real conditional updates), the STS/IAM emulator for the
 * role policies. Faults neither can be made to produce on demand (an IAM error, a DynamoDB error,
 * another writer committing in between) are injected around the real clients' `send`: the call is
 * refused, or another writer's real update runs first. The clock and the sleeps are the test's.
 *
 * Probe for the conflict-free atomic path: with a contender committing before every
 * compare-and-swap and `maxAttempts: 1`, the compare-and-swap path fails (deny_policy_contention)
 * and the atomic path does not (that is what it is for: concurrent revocations do not conflict).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetRolePolicyCommand, IAMClient, ListRolePoliciesCommand, PutRolePolicyCommand, DeleteRolePolicyCommand } from '@aws-sdk/client-iam';
import { DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IamRoleRevoker, type IamRoleRevokerOptions } from '../../functions/adapters/iam-role-revoker.js';
import { INLINE_POLICY_BUDGET, policyChars, PRUNE_MARGIN_SECONDS, SESSIONS_STATEMENT_CHARS, sessionEntryChars } from '../../functions/core/deny-policy.js';
import { Throttled, TvmError, UpstreamUnavailable } from '../../functions/core/errors.js';
import type { DenyEntry } from '../../functions/core/ports.js';
import { ensureTable, startDynalite, type EmbeddedDynamo } from '../../local/dynamo.js';
import { startStsIamEmulator, type StsIamEmulator } from '../../local/sts-iam-emulator.js';

const ACCOUNT = '111122223333';
const TVM = { accessKeyId: 'AKIATVMREVOKERFAULT1', secretAccessKey: 'tvmRevokerFaultSecret0000000000000000000' };
const POLICY = 'tvm-revocations';
const TABLE = 'tvm-revoker-faults';
const ROLES = 120;
const roleArn = (i: number) => `arn:aws:iam::${ACCOUNT}:role/tvm/f${i}`;
const ALLOW = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

let em: StsIamEmulator;
let dynamo: EmbeddedDynamo;
let real: DynamoDBDocumentClient;
let nextRole = 0;
/** A role no other test has touched (the emulator holds ROLES of them). */
const fresh = () => {
  if (nextRole >= ROLES) throw new Error(`every one of the emulator's ${ROLES} roles is used: raise ROLES`);
  return roleArn(nextRole++);
};
const nameOf = (arn: string) => arn.slice(arn.lastIndexOf('/') + 1);

/** The revoker's clock: moves only when a test moves it. */
let nowMs = Date.UTC(2026, 0, 1);
const clock = { now: () => nowMs };
const nowEpoch = () => Math.floor(nowMs / 1000);

let seq = 0;
const session = (expiresIn = 900, sourceIdentity?: string): Extract<DenyEntry, { kind: 'session' }> => ({
  kind: 'session',
  sessionName: `tvm-Lfault${String(seq++).padStart(6, '0')}`,
  expiresAt: nowEpoch() + expiresIn,
  issued: true,
  ...(sourceIdentity ? { sourceIdentity } : {}),
});
const source = (sourceIdentity = 'dev.carol'): DenyEntry => ({ kind: 'source', sourceIdentity, issuedBefore: nowEpoch(), expiresAt: nowEpoch() + 900 });

const iamc = () => new IAMClient({ endpoint: em.url, region: 'us-east-1', credentials: TVM, maxAttempts: 1 });

type Cmd = { constructor: { name: string }; input: Record<string, unknown> };
type Hook = (cmd: Cmd, next: () => Promise<unknown>) => Promise<unknown>;
/** The client with every `send` passing through `hook` (which may refuse it, or act first). */
function hooked<T extends object>(client: T, hook: Hook): T {
  const send = (client as unknown as { send: (c: unknown, o?: unknown) => Promise<unknown> }).send.bind(client);
  return new Proxy(client, {
    get: (t, p, r) => (p === 'send' ? (cmd: Cmd, opts?: unknown) => hook(cmd, () => send(cmd, opts)) : Reflect.get(t, p, r)),
  });
}

/** What a DynamoDB call of the revoker is, by what it asks. */
function kindOf(cmd: Cmd): string {
  const i = cmd.input;
  if (cmd instanceof GetCommand) return 'read';
  if (cmd instanceof PutCommand) return 'create';
  if (!(cmd instanceof UpdateCommand)) return 'other';
  if (i.ReturnValues === 'UPDATED_NEW') return 'atomic';
  if (i.ReturnValues === 'ALL_NEW') return 'claim';
  if (i.ConditionExpression === 'attribute_not_exists(pk) OR version = :v') return 'cas';
  if (String(i.UpdateExpression).startsWith('SET appliedVersion')) return 'settle';
  if (String(i.UpdateExpression).startsWith('REMOVE inflight')) return 'release';
  return 'other';
}

const fault = (name: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(`injected ${name}`), { name, ...extra });
const key = (arn: string) => ({ pk: `deny#${arn}` });
const item = async (arn: string) => (await real.send(new GetCommand({ TableName: TABLE, Key: key(arn), ConsistentRead: true }))).Item;
/** Another writer's commit: the record's version moves on. */
const bump = (arn: string) => real.send(new UpdateCommand({ TableName: TABLE, Key: key(arn), UpdateExpression: 'ADD version :one', ExpressionAttributeValues: { ':one': 1 } }));
const setClaim = (arn: string, id: string, at: number) =>
  real.send(new UpdateCommand({ TableName: TABLE, Key: key(arn), UpdateExpression: 'SET inflight.#id = :e', ExpressionAttributeNames: { '#id': id }, ExpressionAttributeValues: { ':e': { at } } }));
const dropClaim = (arn: string, id: string) =>
  real.send(new UpdateCommand({ TableName: TABLE, Key: key(arn), UpdateExpression: 'REMOVE inflight.#id', ExpressionAttributeNames: { '#id': id } }));

async function denyDoc(arn: string): Promise<string | undefined> {
  const names = (await iamc().send(new ListRolePoliciesCommand({ RoleName: nameOf(arn) }))).PolicyNames ?? [];
  if (!names.includes(POLICY)) return undefined;
  return decodeURIComponent((await iamc().send(new GetRolePolicyCommand({ RoleName: nameOf(arn), PolicyName: POLICY }))).PolicyDocument!);
}

/** Another inline policy on the role, sized so that `budget` characters are left for tvm's. */
async function crowd(arn: string, budget: number) {
  const doc = (k: number) => JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'F', Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${'x'.repeat(k)}` }] });
  const k = INLINE_POLICY_BUDGET - budget - policyChars(doc(0));
  expect(INLINE_POLICY_BUDGET - policyChars(doc(k))).toBe(budget);
  await iamc().send(new PutRolePolicyCommand({ RoleName: nameOf(arn), PolicyName: 'other', PolicyDocument: doc(k) }));
}

interface Rig {
  rv: IamRoleRevoker;
  calls: { iam: string[]; ddb: string[] };
  sleeps: number[];
}

/**
 * A revoker over the real clients. `iam`/`ddb` may refuse a call (throw) or act before it; `contend`
 * commits another writer's change before every compare-and-swap.
 */
function rig(
  o: {
    iam?: (cmd: Cmd, n: number) => void | Promise<void>;
    ddb?: (kind: string, cmd: Cmd, n: number) => void | Promise<void>;
    contend?: boolean;
    onSleep?: (ms: number, n: number) => void | Promise<void>;
  } & Partial<IamRoleRevokerOptions> = {},
): Rig {
  const calls = { iam: [] as string[], ddb: [] as string[] };
  const sleeps: number[] = [];
  const count = (list: string[], k: string) => list.filter((x) => x === k).length;
  const iam = hooked(iamc(), async (cmd, next) => {
    const k = cmd.constructor.name.replace(/Command$/, '');
    calls.iam.push(k);
    await o.iam?.(cmd, count(calls.iam, k));
    return next();
  });
  const ddb = hooked(real, async (cmd, next) => {
    const k = kindOf(cmd);
    calls.ddb.push(k);
    const arn = String((cmd.input.Key as { pk?: string } | undefined)?.pk ?? '').slice('deny#'.length);
    if (o.contend && k === 'cas') await bump(arn);
    await o.ddb?.(k, cmd, count(calls.ddb, k));
    return next();
  });
  const { iam: _i, ddb: _d, contend, onSleep, ...options } = o;
  const rv = new IamRoleRevoker(iam, ddb, TABLE, {
    policyName: POLICY,
    clock,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
      await onSleep?.(ms, sleeps.length);
    },
    ...(contend ? { maxAttempts: 1 } : {}),
    ...options,
  });
  return { rv, calls, sleeps };
}
const n = (list: string[], k: string) => list.filter((x) => x === k).length;

beforeAll(async () => {
  em = await startStsIamEmulator({ roles: Object.fromEntries(Array.from({ length: ROLES }, (_, i) => [roleArn(i), ALLOW])), callerCredentials: TVM });
  dynamo = await startDynalite({});
  const client = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  await ensureTable(client, TABLE);
  real = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}, 60_000);
afterAll(async () => {
  await em?.close();
  await dynamo?.close();
});

describe('IAM errors', () => {
  it.each(['Throttling', 'ThrottlingException', 'TooManyRequestsException'])('%s on the put is Throttled (iam_throttled), with what failed, and the put is not retried', async (name) => {
    const arn = fresh();
    const { rv, calls } = rig({ iam: (c) => { if (c instanceof PutRolePolicyCommand) throw fault(name); } });
    const err = await rv.deny(arn, [session()]).catch((e) => e);
    expect(err).toBeInstanceOf(Throttled);
    expect(err).toMatchObject({ code: 'throttled', reason: 'iam_throttled', detail: { roleArn: arn, op: 'PutRolePolicy', iamError: name, message: `injected ${name}` } });
    expect(n(calls.iam, 'PutRolePolicy')).toBe(1);
  });

  it('any other IAM error is UpstreamUnavailable (iam_failed), on either path', async () => {
    for (const entries of [[session()], [source()]]) {
      const arn = fresh();
      const { rv, calls } = rig({ iam: (c) => { if (c instanceof PutRolePolicyCommand) throw fault('AccessDenied'); } });
      const err = await rv.deny(arn, entries).catch((e) => e);
      expect(err).toBeInstanceOf(UpstreamUnavailable);
      expect(err).toMatchObject({ reason: 'iam_failed', detail: { roleArn: arn, op: 'PutRolePolicy', iamError: 'AccessDenied', message: 'injected AccessDenied' } });
      expect(n(calls.iam, 'PutRolePolicy')).toBe(1);
    }
  });

  it('Throttling on the compare-and-swap path stays Throttled (not re-wrapped)', async () => {
    const arn = fresh();
    const { rv, calls } = rig({ iam: (c) => { if (c instanceof PutRolePolicyCommand) throw fault('Throttling'); } });
    const err = await rv.deny(arn, [source()]).catch((e) => e);
    expect(err).toBeInstanceOf(Throttled);
    expect(err).toMatchObject({ reason: 'iam_throttled', detail: { iamError: 'Throttling' } });
    expect(n(calls.iam, 'PutRolePolicy')).toBe(1);
  });

  it('a thrown value without a name or message is still mapped (iamError "Error")', async () => {
    const arn = fresh();
    const { rv } = rig({ iam: (c) => { if (c instanceof PutRolePolicyCommand) throw undefined; } });
    const err = await rv.deny(arn, [session()]).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamUnavailable);
    expect(err.detail).toEqual({ roleArn: arn, op: 'PutRolePolicy', iamError: 'Error', message: undefined });
  });

  it('a failed delete of the emptied policy is mapped with op DeleteRolePolicy', async () => {
    const arn = fresh();
    const s = session(10);
    await rig().rv.deny(arn, [s]);
    nowMs += (10 + PRUNE_MARGIN_SECONDS + 1) * 1000;
    const { rv } = rig({ iam: (c) => { if (c instanceof DeleteRolePolicyCommand) throw fault('AccessDenied'); } });
    const err = await rv.prune(arn, nowEpoch()).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamUnavailable);
    expect(err).toMatchObject({ reason: 'iam_failed', detail: { op: 'DeleteRolePolicy', iamError: 'AccessDenied' } });
  });

  it('a budget that cannot be measured is iam_failed (ListRolePolicies)', async () => {
    const arn = fresh();
    const { rv } = rig({ iam: (c) => { if (c instanceof ListRolePoliciesCommand) throw fault('AccessDenied'); } });
    await expect(rv.deny(arn, [session()])).rejects.toMatchObject({ reason: 'iam_failed', detail: { op: 'ListRolePolicies' } });
  });

  // An answer from IAM means the put did not land: the claim is released at once. Without one the
  // put may still land, so the claim stays (until its deadline) to hold back older renders.
  it.each([
    ['an error IAM answered ($fault)', 'released', fault('SomethingNew', { $fault: 'client' })],
    ['a named IAM error without $fault', 'released', fault('AccessDenied')],
    // every error IAM names is an answer, by name alone too (an error without $fault)
    ...['Throttling', 'ThrottlingException', 'NoSuchEntity', 'NoSuchEntityException', 'MalformedPolicyDocument', 'MalformedPolicyDocumentException', 'UnmodifiableEntity', 'UnmodifiableEntityException', 'AccessDeniedException'].map(
      (name) => [`IAM's ${name} without $fault`, 'released', fault(name)] as [string, string, Error],
    ),
    ['a timeout (no answer)', 'kept', fault('TimeoutError')],
  ])('after %s the claim is %s', async (_what, fate, err) => {
    const released = fate === 'released';
    const arn = fresh();
    const { rv } = rig({ iam: (c) => { if (c instanceof PutRolePolicyCommand) throw err; } });
    await expect(rv.deny(arn, [session()])).rejects.toBeInstanceOf(TvmError);
    const inflight = (await item(arn))!.inflight as Record<string, unknown>;
    if (released) expect(inflight).toEqual({});
    else expect(Object.keys(inflight)).toHaveLength(1);
  });
});

describe('LimitExceeded: re-measure and retry', () => {
  it.each(['LimitExceeded', 'LimitExceededException'])('%s on the atomic path re-measures and retries once', async (name) => {
    const arn = fresh();
    const { rv, calls } = rig({ iam: (c, k) => { if (c instanceof PutRolePolicyCommand && k === 1) throw fault(name); } });
    const s = session();
    expect(await rv.deny(arn, [s])).toMatchObject({ fallback: false });
    expect(n(calls.iam, 'PutRolePolicy')).toBe(2);
    expect(n(calls.iam, 'ListRolePolicies')).toBe(2);
    expect(await denyDoc(arn)).toContain(s.sessionName);
    // The re-measured budget is cached: the next deny measures nothing.
    await rv.deny(arn, [session()]);
    expect(n(calls.iam, 'ListRolePolicies')).toBe(2);
  });

  it.each(['LimitExceeded', 'LimitExceededException'])('%s on the compare-and-swap path: four rounds, re-measuring after each but the last, then iam_failed', async (name) => {
    const arn = fresh();
    const { rv, calls } = rig({ iam: (c, k) => { if (c instanceof PutRolePolicyCommand && k <= 4) throw fault(name); } });
    const err = await rv.deny(arn, [source()]).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamUnavailable);
    expect(err).toMatchObject({ reason: 'iam_failed', detail: { roleArn: arn, op: 'PutRolePolicy', iamError: name } });
    expect(n(calls.iam, 'PutRolePolicy')).toBe(4);
    expect(n(calls.iam, 'ListRolePolicies')).toBe(4);
    // The last re-measure is cached.
    const before = n(calls.iam, 'ListRolePolicies');
    await rv.deny(arn, [session()]);
    expect(n(calls.iam, 'ListRolePolicies')).toBe(before);
  });

  // After a LimitExceeded the budget shrinks by at least one character even when the re-measure
  // finds no growth, so the next size check is stricter. Sizes are taken from a dry run.
  it.each(['atomic', 'compare-and-swap'])('on the %s path a LimitExceeded shrinks the budget by one', async (path) => {
    const first = path === 'atomic' ? [session()] : Array.from({ length: 9 }, () => session());
    const second = session();
    const dry = fresh();
    await rig().rv.deny(dry, first);
    const chars = (await item(dry))!.chars as number;
    const budget = chars + sessionEntryChars(second.sessionName) + SESSIONS_STATEMENT_CHARS;

    // Control: with that budget the second deny fits the atomic path exactly.
    const control = fresh();
    await crowd(control, budget);
    await rig().rv.deny(control, first.map((e) => ({ ...e })));
    const c = rig({ contend: true });
    await c.rv.deny(control, [second]);

    const arn = fresh();
    await crowd(arn, budget);
    let contend = false;
    const { rv } = rig({
      maxAttempts: 1,
      iam: (cmd, k) => { if (cmd instanceof PutRolePolicyCommand && k === 1) throw fault('LimitExceededException'); },
      ddb: async (kind, cmd) => { if (contend && kind === 'cas') await bump(String((cmd.input.Key as { pk: string }).pk).slice(5)); },
    });
    await rv.deny(arn, first.map((e) => ({ ...e })));
    contend = true;
    await expect(rv.deny(arn, [{ ...second }])).rejects.toMatchObject({ reason: 'deny_policy_contention' });
  });
});

describe('budgets', () => {
  it('the measured budget is reused for a minute, and re-measured after it or when the clock goes back', async () => {
    const arn = fresh();
    const { rv, calls } = rig();
    const lists = () => n(calls.iam, 'ListRolePolicies');
    await rv.deny(arn, [session()]);
    expect(lists()).toBe(1);
    await rv.deny(arn, [session()]);
    expect(lists()).toBe(1);
    nowMs += 59_999;
    await rv.deny(arn, [session()]);
    expect(lists()).toBe(1);
    nowMs += 1;
    await rv.deny(arn, [session()]);
    expect(lists()).toBe(2);
    nowMs -= 1;
    await rv.deny(arn, [session()]);
    expect(lists()).toBe(3);
  });

  it("tvm's own policy does not count; the others do, URL-decoded, across pages", async () => {
    const arn = fresh();
    await crowd(arn, 9000);
    const { rv, calls } = rig({ contend: true });
    // 9,000 left: one session fits the atomic path (no compare-and-swap, so the contender is harmless).
    await rv.deny(arn, [session()]);
    expect(n(calls.iam, 'GetRolePolicy')).toBe(1);
    nowMs += 60_000;
    await rv.deny(arn, [session()]);
    // The second measure skips tvm's own policy (now there): one GetRolePolicy again.
    expect(n(calls.iam, 'GetRolePolicy')).toBe(2);
  });

  it('no room even for the fallback: deny_policy_no_room, with the budget and what is needed', async () => {
    const arn = fresh();
    await crowd(arn, 50);
    const err = await rig().rv.deny(arn, [session()]).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamUnavailable);
    expect(err).toMatchObject({ reason: 'deny_policy_no_room', detail: { roleArn: arn, budget: 50 } });
    expect(err.detail.needed).toBeGreaterThan(50);
    expect(Object.keys(err.detail).sort()).toEqual(['budget', 'needed', 'roleArn']);
  });

  it("a principal's revocation that cannot fit even folded: deny_policy_full, with the scope", async () => {
    const arn = fresh();
    await crowd(arn, 50);
    const scope = { kind: 'principal' as const, sourceIdentity: 'dev.mallory' };
    const err = await rig().rv.deny(arn, [session(900, 'dev.mallory')], scope).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamUnavailable);
    expect(err).toMatchObject({ reason: 'deny_policy_full', detail: { roleArn: arn, budget: 50, scope } });
    expect(err.detail.needed).toBeGreaterThan(50);
  });

  it('the atomic path takes an entry that fits with the statement margin, and not one character less', async () => {
    for (const spare of [0, -1]) {
      const arn = fresh();
      const s = session();
      await crowd(arn, sessionEntryChars(s.sessionName) + SESSIONS_STATEMENT_CHARS + spare);
      const { rv } = rig({ contend: true });
      if (spare === 0) {
        const out = await rv.deny(arn, [s]);
        expect(await denyDoc(arn)).toContain(s.sessionName);
        expect(out).toEqual({ fallback: false, policyChars: policyChars((await denyDoc(arn))!) });
      } else await expect(rv.deny(arn, [s])).rejects.toMatchObject({ reason: 'deny_policy_contention' });
    }
  });
});

describe('the atomic path (conflict-free) and when it is not taken', () => {
  const cases: [string, () => DenyEntry[], boolean][] = [
    ['one session', () => [session()], true],
    ['eight sessions', () => Array.from({ length: 8 }, () => session()), true],
    ['nine sessions', () => Array.from({ length: 9 }, () => session()), false],
    ['a source', () => [source()], false],
    ['a session and a source', () => [session(), source()], false],
    ['a session that expires in a second', () => [session(1)], true],
    ['eight live sessions and one just past its prune margin', () => [...Array.from({ length: 8 }, () => session()), session(-PRUNE_MARGIN_SECONDS)], true],
  ];
  it.each(cases)('%s on a role without a record: atomic = %s', async (_what, entries, atomic) => {
    const arn = fresh();
    const list = entries();
    const { rv } = rig({ contend: true });
    if (atomic) {
      await rv.deny(arn, list);
      const live = list.filter((e) => e.expiresAt + PRUNE_MARGIN_SECONDS > nowEpoch()) as Extract<DenyEntry, { kind: 'session' }>[];
      expect(Object.keys((await rv.stateOf(arn)).sessions).sort()).toEqual(live.map((e) => e.sessionName).sort());
    } else {
      const err = await rv.deny(arn, list).catch((e) => e);
      expect(err).toBeInstanceOf(Throttled);
      expect(err).toMatchObject({ reason: 'deny_policy_contention', detail: { roleArn: arn, attempts: 1 } });
    }
  });

  it('an empty list changes nothing and writes no policy', async () => {
    const arn = fresh();
    expect(await rig().rv.deny(arn, [])).toEqual({ fallback: false, policyChars: 0 });
    expect(await denyDoc(arn)).toBeUndefined();
  });

  it('stores each entry as given (expiry, issued, source) and answers the policy size', async () => {
    const arn = fresh();
    const a = session(900, 'dev.alice');
    const b = { ...session(600), issued: false };
    const out = await rig({ contend: true }).rv.deny(arn, [a, b]);
    const state = await rig().rv.stateOf(arn);
    expect(state.sessions).toEqual({
      [a.sessionName]: { expiresAt: a.expiresAt, issued: true, source: 'dev.alice' },
      [b.sessionName]: { expiresAt: b.expiresAt, issued: false },
    });
    // The size of the policy IAM now holds (DenyOutcome.policyChars).
    expect(out).toEqual({ fallback: false, policyChars: policyChars((await denyDoc(arn))!) });
  });

  it('is due for the sweep at its earliest expiry plus the margin', async () => {
    const arn = fresh();
    const [a, b] = [session(300), session(900)];
    await rig().rv.deny(arn, [b, a]);
    const due = a.expiresAt + PRUNE_MARGIN_SECONDS;
    const rv = rig().rv;
    expect((await rv.listPrunable(due, undefined, 1000)).roleArns).toContain(arn);
    expect((await rv.listPrunable(due - 1, undefined, 1000)).roleArns).not.toContain(arn);
  });

  it('the compare-and-swap path makes the record due too', async () => {
    const arn = fresh();
    const s = source();
    await rig().rv.deny(arn, [s]);
    const due = s.expiresAt + PRUNE_MARGIN_SECONDS;
    const rv = rig().rv;
    expect((await rv.listPrunable(due, undefined, 1000)).roleArns).toContain(arn);
    expect((await rv.listPrunable(due - 1, undefined, 1000)).roleArns).not.toContain(arn);
  });

  it('a DynamoDB error on the atomic update is not taken for a refusal', async () => {
    const arn = fresh();
    const { rv, calls } = rig({ ddb: (k) => { if (k === 'atomic') throw fault('InternalServerError', { $fault: 'server' }); } });
    await expect(rv.deny(arn, [session()])).rejects.toMatchObject({ name: 'InternalServerError' });
    expect(n(calls.iam, 'PutRolePolicy')).toBe(0);
  });

  it('a DynamoDB error creating the record is not taken for "another writer created it"', async () => {
    const arn = fresh();
    const { rv, calls } = rig({ ddb: (k) => { if (k === 'create') throw fault('InternalServerError', { $fault: 'server' }); } });
    await expect(rv.deny(arn, [session()])).rejects.toMatchObject({ name: 'InternalServerError' });
    expect(n(calls.iam, 'PutRolePolicy')).toBe(0);
    expect(await item(arn)).toBeUndefined();
  });
});

describe('compare-and-swap: bounded retries with growing, capped full jitter', () => {
  it('gives up after maxAttempts with deny_policy_contention; backoff 5·2^attempt ms capped at 200, times random()', async () => {
    const arn = fresh();
    const { rv, calls, sleeps } = rig({ contend: true, maxAttempts: 8 });
    const err = await rv.deny(arn, [source()]).catch((e) => e);
    expect(err).toBeInstanceOf(Throttled);
    expect(err).toMatchObject({ reason: 'deny_policy_contention', detail: { roleArn: arn, attempts: 8 } });
    expect(n(calls.ddb, 'cas')).toBe(8);
    expect(sleeps).toEqual([5, 10, 20, 40, 80, 100, 100]);
  });

  it('maxBackoffMs caps the backoff; the attempt exponent stops at 10', async () => {
    const arn = fresh();
    const { rv, sleeps } = rig({ contend: true, maxAttempts: 13, maxBackoffMs: 6000, random: () => 0.25 });
    await expect(rv.deny(arn, [source()])).rejects.toMatchObject({ reason: 'deny_policy_contention' });
    expect(sleeps).toEqual([2, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 1280, 1280]);
  });

  it('succeeds when the contention ends within the attempts', async () => {
    const arn = fresh();
    let left = 3;
    const { rv, calls } = rig({ maxAttempts: 4, ddb: async (k, cmd) => { if (k === 'cas' && left-- > 0) await bump(arn); void cmd; } });
    const s = source();
    await rv.deny(arn, [s]);
    expect(n(calls.ddb, 'cas')).toBe(4);
    expect(await denyDoc(arn)).toContain('dev.carol');
  });

  it('a DynamoDB error on the compare-and-swap is not retried', async () => {
    const arn = fresh();
    const { rv, calls } = rig({ ddb: (k) => { if (k === 'cas') throw fault('InternalServerError', { $fault: 'server' }); } });
    await expect(rv.deny(arn, [source()])).rejects.toMatchObject({ name: 'InternalServerError' });
    expect(n(calls.ddb, 'cas')).toBe(1);
  });
});

describe('apply: claims, turns and rounds', () => {
  it('a record deleted under the writer: deny_record_regressed', async () => {
    const arn = fresh();
    const { rv } = rig({ ddb: async (k) => { if (k === 'read' && (await item(arn))?.version === 1) await real.send(new PutCommand({ TableName: TABLE, Item: { ...key(arn), version: 0 } })); } });
    const err = await rv.deny(arn, [session()]).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamUnavailable);
    expect(err).toMatchObject({ reason: 'deny_record_regressed', detail: { roleArn: arn, version: 1, found: 0 } });
  });

  it('a record that vanishes before the claim: six claim attempts, then deny_record_missing', async () => {
    const arn = fresh();
    let gone = false;
    const { rv, calls } = rig({
      ddb: async (k) => {
        if (k === 'claim' && !gone) {
          gone = true;
          await real.send(new (await import('@aws-sdk/lib-dynamodb')).DeleteCommand({ TableName: TABLE, Key: key(arn) }));
        }
      },
    });
    const err = await rv.deny(arn, [session()]).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamUnavailable);
    expect(err).toMatchObject({ reason: 'deny_record_missing', detail: { roleArn: arn } });
    expect(n(calls.ddb, 'claim')).toBe(6);
    expect(n(calls.iam, 'PutRolePolicy')).toBe(0);
  });

  it('a record written before claims existed (no inflight map) gets one on the claim', async () => {
    const arn = fresh();
    await real.send(new PutCommand({ TableName: TABLE, Item: { ...key(arn), roleArn: arn, version: 1, sessions: {}, sources: {}, chars: 0 } }));
    const s = session();
    await rig().rv.deny(arn, [s]);
    expect(await denyDoc(arn)).toContain(s.sessionName);
    expect((await item(arn))!.inflight).toEqual({});
  });

  it('a DynamoDB error on the claim is not retried, nothing is put, and it goes up as DynamoDB\'s (not labelled an IAM failure), on either path', async () => {
    for (const entries of [[session()], [source()]]) {
      const arn = fresh();
      const { rv, calls } = rig({ ddb: (k, _c, i) => { if (k === 'claim' && i === 1) throw fault('ProvisionedThroughputExceededException', { $fault: 'client' }); } });
      const err = await rv.deny(arn, entries).catch((e) => e);
      expect(err).not.toBeInstanceOf(UpstreamUnavailable);
      expect(err).not.toBeInstanceOf(Throttled);
      expect(err).toMatchObject({ name: 'ProvisionedThroughputExceededException', message: 'injected ProvisionedThroughputExceededException' });
      expect(n(calls.ddb, 'claim')).toBe(1);
      expect(n(calls.iam, 'PutRolePolicy')).toBe(0);
    }
  });

  it('waits for a put claimed before its own to finish before putting', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'other-writer', nowMs);
    const events: string[] = [];
    const { rv } = rig({
      iam: (c) => { if (c instanceof PutRolePolicyCommand) events.push('put'); },
      onSleep: async (_ms, k) => {
        events.push('sleep');
        if (k === 2) await dropClaim(arn, 'other-writer'), events.push('other finished');
      },
    });
    await rv.deny(arn, [session()]);
    expect(events).toEqual(['sleep', 'sleep', 'other finished', 'put']);
  });

  it('a DynamoDB error while waiting releases its own claim (its put was never sent)', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'other-writer', nowMs);
    let waiting = false;
    const { rv } = rig({ onSleep: () => void (waiting = true), ddb: (k) => { if (waiting && k === 'read') throw fault('InternalServerError', { $fault: 'server' }); } });
    await expect(rv.deny(arn, [session()])).rejects.toBeDefined();
    expect(Object.keys((await item(arn))!.inflight as object)).toEqual(['other-writer']);
  });

  it('a DynamoDB error marking the put applied releases the claim (the put has landed)', async () => {
    const arn = fresh();
    const { rv } = rig({ ddb: (k) => { if (k === 'settle') throw fault('InternalServerError', { $fault: 'server' }); } });
    await expect(rv.deny(arn, [session()])).rejects.toBeDefined();
    expect((await item(arn))!.inflight).toEqual({});
  });

  it('a claim ahead that never finishes: too late each round, no put, and deny_policy_contention after 20 rounds', async () => {
    const arn = fresh();
    await real.send(new PutCommand({ TableName: TABLE, Item: { ...key(arn), roleArn: arn, version: 0, appliedVersion: 0, inflight: {}, sessions: {}, sources: {}, chars: 0 } }));
    await setClaim(arn, 'stuck', nowMs);
    const { rv, calls } = rig({
      // Each pause takes the writer past its send window; the stuck writer renews its claim.
      onSleep: async () => {
        nowMs += 11_000;
        await setClaim(arn, 'stuck', nowMs);
      },
    });
    const err = await rv.deny(arn, [session()]).catch((e) => e);
    expect(err).toBeInstanceOf(Throttled);
    expect(err).toMatchObject({ reason: 'deny_policy_contention', detail: { roleArn: arn, version: 1 } });
    expect(n(calls.ddb, 'claim')).toBe(20);
    expect(n(calls.iam, 'PutRolePolicy')).toBe(0);
    expect(Object.keys((await item(arn))!.inflight as object)).toEqual(['stuck']);
  });

  it('too late once, it claims again and puts when the claim ahead is dead', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'dead-writer', nowMs);
    const { rv, calls } = rig({ onSleep: () => void (nowMs += 11_000) });
    const s = session();
    await rv.deny(arn, [s]);
    expect(await denyDoc(arn)).toContain(s.sessionName);
    expect(n(calls.iam, 'PutRolePolicy')).toBe(1);
    // The dead claim is cleared with the mark.
    expect((await item(arn))!.inflight).toEqual({});
  });

  it('a later claim seen while waiting: it leaves the put to that one (releasing its own claim), and claims again when that one gives up', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'ahead', nowMs);
    let seen: string[] = [];
    const { rv, calls } = rig({
      onSleep: async (_ms, k) => {
        nowMs += 1000;
        if (k === 1) await setClaim(arn, 'later', nowMs);
        if (k === 2) {
          seen = Object.keys((await item(arn))!.inflight as object).sort();
          await dropClaim(arn, 'later');
          await dropClaim(arn, 'ahead');
        }
      },
    });
    const s = session();
    await rv.deny(arn, [s]);
    expect(seen).toEqual(['ahead', 'later']);
    expect(n(calls.ddb, 'claim')).toBe(2);
    expect(n(calls.iam, 'PutRolePolicy')).toBe(1);
    expect(await denyDoc(arn)).toContain(s.sessionName);
  });

  it('a later claim that puts and marks: it returns on that mark without a put of its own', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'ahead', nowMs);
    const { rv, calls } = rig({
      onSleep: async (_ms, k) => {
        nowMs += 1000;
        if (k === 1) await setClaim(arn, 'later', nowMs);
        if (k === 2) {
          const v = (await item(arn))!.version as number;
          await real.send(new UpdateCommand({ TableName: TABLE, Key: key(arn), UpdateExpression: 'SET appliedVersion = :v REMOVE inflight.later, inflight.ahead', ExpressionAttributeValues: { ':v': v } }));
        }
      },
    });
    await rv.deny(arn, [session()]);
    expect(n(calls.iam, 'PutRolePolicy')).toBe(0);
    expect(n(calls.ddb, 'claim')).toBe(1);
  });
});

describe('apply: what it waits for, and for how long (poll pauses: full jitter, 20·2^min(round + poll, 6) ms capped at 5·maxBackoffMs)', () => {
  const claimsOf = async (arn: string) => (await item(arn))!.inflight as Record<string, { at: number }>;

  it('a put that may still land keeps its claim, stamped with when it was claimed — also on a record without a claims map', async () => {
    for (const old of [false, true]) {
      const arn = fresh();
      if (old) await real.send(new PutCommand({ TableName: TABLE, Item: { ...key(arn), roleArn: arn, version: 1, sessions: {}, sources: {}, chars: 0 } }));
      const at = nowMs;
      const { rv } = rig({ iam: (c) => { if (c instanceof PutRolePolicyCommand) throw fault('TimeoutError'); } });
      await expect(rv.deny(arn, [session()])).rejects.toBeInstanceOf(UpstreamUnavailable);
      expect(Object.values(await claimsOf(arn))).toEqual([{ at }]);
    }
  });

  it('waits for the claim ahead, polling with growing pauses', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'other-writer', nowMs);
    const { rv, sleeps } = rig({ onSleep: async (_ms, k) => { if (k === 3) await dropClaim(arn, 'other-writer'); } });
    await rv.deny(arn, [session()]);
    expect(sleeps).toEqual([10, 20, 40]);
  });

  it.each([
    [11_000, 4],
    [10_000, 3],
  ])('pauses of %i ms behind a dead writer: late after a third of the deadline, the dead claim cleared when past it; %i claims', async (step, claims) => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'dead-writer', nowMs);
    const { rv, calls } = rig({ onSleep: () => void (nowMs += step) });
    const s = session();
    await rv.deny(arn, [s]);
    expect(n(calls.ddb, 'claim')).toBe(claims);
    expect(n(calls.iam, 'PutRolePolicy')).toBe(1);
    expect(await claimsOf(arn)).toEqual({});
    expect(await denyDoc(arn)).toContain(s.sessionName);
  });

  it('a claim already dead is cleared with its own mark', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'dead-writer', nowMs - 30_001);
    const { rv, calls } = rig();
    await rv.deny(arn, [session()]);
    expect(n(calls.ddb, 'claim')).toBe(1);
    expect(n(calls.ddb, 'release')).toBe(0);
    expect(await claimsOf(arn)).toEqual({});
  });

  it('the stuck writer: one pause a round, 10, 20, 40, … 500 ms', async () => {
    const arn = fresh();
    await real.send(new PutCommand({ TableName: TABLE, Item: { ...key(arn), roleArn: arn, version: 0, appliedVersion: 0, inflight: {}, sessions: {}, sources: {}, chars: 0 } }));
    await setClaim(arn, 'stuck', nowMs);
    const { rv, sleeps } = rig({
      onSleep: async () => {
        nowMs += 11_000;
        await setClaim(arn, 'stuck', nowMs);
      },
    });
    await expect(rv.deny(arn, [session()])).rejects.toMatchObject({ reason: 'deny_policy_contention' });
    expect(sleeps).toEqual([10, 20, 40, 80, 160, 320, ...Array(14).fill(500)]);
  });

  it('a mark covering its version while it waits: it returns at once, without a put', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'ahead', nowMs);
    const { rv, calls, sleeps } = rig({
      onSleep: async () => {
        nowMs += 1000;
        const v = (await item(arn))!.version as number;
        await real.send(new UpdateCommand({ TableName: TABLE, Key: key(arn), UpdateExpression: 'SET appliedVersion = :v', ExpressionAttributeValues: { ':v': v } }));
      },
    });
    await rv.deny(arn, [session()]);
    expect(n(calls.iam, 'PutRolePolicy')).toBe(0);
    expect(sleeps).toHaveLength(1);
  });

  it('deferring to a later claim: it waits while that one is alive, and once it gives up, waits its turn again', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'ahead', nowMs);
    const { rv, calls, sleeps } = rig({
      onSleep: async (_ms, k) => {
        nowMs += 1000;
        if (k === 1) await setClaim(arn, 'later', nowMs);
        if (k === 3) await dropClaim(arn, 'later');
        if (k === 4) await dropClaim(arn, 'ahead');
      },
    });
    const s = session();
    await rv.deny(arn, [s]);
    expect(sleeps).toEqual([10, 10, 20, 20]);
    expect(n(calls.ddb, 'claim')).toBe(2);
    expect(n(calls.iam, 'PutRolePolicy')).toBe(1);
    expect(await denyDoc(arn)).toContain(s.sessionName);
  });

  it('deferring: the later put marks while yet another claim is alive — it returns on the mark', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'ahead', nowMs);
    const { rv, calls, sleeps } = rig({
      onSleep: async (_ms, k) => {
        nowMs += 1000;
        if (k === 1) await setClaim(arn, 'later', nowMs);
        if (k === 2) {
          await setClaim(arn, 'later2', nowMs);
          const v = (await item(arn))!.version as number;
          await real.send(new UpdateCommand({ TableName: TABLE, Key: key(arn), UpdateExpression: 'SET appliedVersion = :v REMOVE inflight.later', ExpressionAttributeValues: { ':v': v } }));
        }
      },
    });
    await rv.deny(arn, [session()]);
    expect(n(calls.iam, 'PutRolePolicy')).toBe(0);
    expect(sleeps).toHaveLength(2);
  });

  it('a later mark landing during its own put: the claim is released, the mark kept', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    const { rv } = rig({
      iam: async (c) => {
        if (c instanceof PutRolePolicyCommand)
          await real.send(new UpdateCommand({ TableName: TABLE, Key: key(arn), UpdateExpression: 'SET appliedVersion = :v', ExpressionAttributeValues: { ':v': 99 } }));
      },
    });
    await rv.deny(arn, [session()]);
    const after = await item(arn);
    expect(after!.inflight).toEqual({});
    expect(after!.appliedVersion).toBe(99);
  });
});

describe('prune, fallbacks, the policy missing in IAM, paging', () => {
  it('a prune with nothing to prune writes nothing', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    const version = (await item(arn))!.version;
    const { rv, calls } = rig();
    expect(await rv.prune(arn, nowEpoch())).toEqual({ entriesRemoved: 0, fallbackDropped: false, empty: false });
    expect(n(calls.iam, 'PutRolePolicy')).toBe(0);
    expect((await item(arn))!.version).toBe(version);
  });

  it('a deny on a role whose fallback is engaged answers its cutoff', async () => {
    const arn = fresh();
    await crowd(arn, 1000);
    const rv = rig().rv;
    let engaged;
    for (let i = 0; i < 40 && !engaged; i++) {
      const out = await rv.deny(arn, Array.from({ length: 9 }, () => session()));
      if (out.fallback) engaged = out;
    }
    expect(engaged).toBeDefined();
    const out = await rv.deny(arn, [source('dev.erin')]);
    expect(out.fallback).toBe(false);
    expect(out.fallbackIssuedBefore).toBe((await rv.stateOf(arn)).fallback!.issuedBefore);
  });

  it.each(['NoSuchEntity', 'NoSuchEntityException'])('emptying a policy IAM no longer has (%s) is done', async (name) => {
    const arn = fresh();
    await rig().rv.deny(arn, [session(10)]);
    nowMs += (10 + PRUNE_MARGIN_SECONDS + 1) * 1000;
    const { rv } = rig({ iam: (c) => { if (c instanceof DeleteRolePolicyCommand) throw fault(name); } });
    expect(await rv.prune(arn, nowEpoch())).toMatchObject({ entriesRemoved: 1, empty: true });
  });

  it('a put answered NoSuchEntity (the role is gone) is a failure', async () => {
    const arn = fresh();
    const { rv } = rig({ iam: (c) => { if (c instanceof PutRolePolicyCommand) throw fault('NoSuchEntityException'); } });
    await expect(rv.deny(arn, [session()])).rejects.toMatchObject({ reason: 'iam_failed', detail: { iamError: 'NoSuchEntityException' } });
  });

  it("the role's inline policies are read across every page of the listing", async () => {
    const arn = fresh();
    const doc = (k: number) => JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${'y'.repeat(k)}` }] });
    await iamc().send(new PutRolePolicyCommand({ RoleName: nameOf(arn), PolicyName: 'page1', PolicyDocument: doc(5000) }));
    await iamc().send(new PutRolePolicyCommand({ RoleName: nameOf(arn), PolicyName: 'page2', PolicyDocument: doc(5000) }));
    // IAM pages the listing (MaxItems); the emulator answers one page, so the pages are cut here.
    const iam = hooked(iamc(), async (cmd, next) => {
      if (cmd instanceof ListRolePoliciesCommand) {
        const all = ((await next()) as { PolicyNames: string[] }).PolicyNames.sort();
        return cmd.input.Marker === 'm1' ? { PolicyNames: all.slice(1), IsTruncated: false } : { PolicyNames: all.slice(0, 1), IsTruncated: true, Marker: 'm1' };
      }
      return next();
    });
    const rv = new IamRoleRevoker(iam, real, TABLE, { policyName: POLICY, clock });
    // Both pages counted: 10,240 − 2 × ~5,070 leaves no room even for the fallback.
    await expect(rv.deny(arn, [session()])).rejects.toMatchObject({ reason: 'deny_policy_no_room', detail: { budget: INLINE_POLICY_BUDGET - 2 * policyChars(doc(5000)) } });
  });
});

describe('the atomic path on a role with a record, and what it answers', () => {
  it('a session added to an existing record still takes the atomic path', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    const s = session();
    await rig({ contend: true }).rv.deny(arn, [s]);
    expect(Object.keys((await rig().rv.stateOf(arn)).sessions)).toContain(s.sessionName);
  });

  it('with a role fallback in force, an atomic add answers its cutoff too (DenyOutcome.fallbackIssuedBefore)', async () => {
    const arn = fresh();
    await crowd(arn, 1000);
    const rv = rig().rv;
    let engaged = false;
    for (let i = 0; i < 40 && !engaged; i++) engaged = (await rv.deny(arn, Array.from({ length: 9 }, () => session()))).fallback;
    expect(engaged).toBe(true);
    nowMs += 2000;
    const out = await rig({ contend: true }).rv.deny(arn, [session()]);
    expect(out.fallback).toBe(false);
    expect(out.fallbackIssuedBefore).toBe((await rv.stateOf(arn)).fallback!.issuedBefore);
  });

  it('deferring to a later claim whose writer dies: it waits until that claim is past its deadline, then puts', async () => {
    const arn = fresh();
    await rig().rv.deny(arn, [session()]);
    await setClaim(arn, 'ahead', nowMs);
    const { rv, calls, sleeps } = rig({
      onSleep: async (_ms, k) => {
        nowMs += 10_000;
        if (k === 1) await setClaim(arn, 'later', nowMs);
        if (k === 2) await dropClaim(arn, 'ahead');
      },
    });
    const s = session();
    await rv.deny(arn, [s]);
    expect(sleeps).toHaveLength(6);
    expect(n(calls.iam, 'PutRolePolicy')).toBe(1);
    expect(await denyDoc(arn)).toContain(s.sessionName);
    expect((await item(arn))!.inflight).toEqual({});
  });
});
