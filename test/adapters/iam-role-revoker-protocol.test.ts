/**
 * The IamRoleRevoker's apply protocol (functions/adapters/iam-role-revoker.ts) under concurrent
 * writers, explored with fast-check: the real revoker, several instances on one role (as several
 * Lambdas), each with its own DynamoDB and IAM clients and its own sleep, all routed through a
 * scheduler. Every DynamoDB call, every IAM call and every backoff sleep of every writer waits
 * until the scheduler picks it; fast-check picks the order, and may crash a writer (its pending
 * call never runs and never answers). DynamoDB is dynalite (the real conditional-update
 * semantics); IAM is a fake that does what PutRolePolicy does — the last put to land wins, no
 * condition. A call's request is fixed when the writer makes it and takes effect when the
 * scheduler runs it, so a put can be stale by the time it lands, as over a slow network.
 *
 * What a caller relies on: once `deny` has answered, IAM denies those sessions, and no later put
 * undoes it. Time is the scheduler's: it moves only when a writer's sleep is run.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  type IAMClient,
  ListRolePoliciesCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IamRoleRevoker } from '../../functions/adapters/iam-role-revoker.js';
import type { DenyEntry } from '../../functions/core/ports.js';
import { ensureTable, startDynalite, type EmbeddedDynamo } from '../../local/dynamo.js';

const TABLE = 'tvm-revoker-protocol';
const POLICY = 'tvm-revocations';
const RUNS = Number(process.env.TVM_PROTOCOL_RUNS ?? 60);

let dynamo: EmbeddedDynamo;
let real: DynamoDBDocumentClient;

beforeAll(async () => {
  dynamo = await startDynalite({});
  const client = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  await ensureTable(client, TABLE);
  real = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}, 60_000);
afterAll(async () => {
  await dynamo?.close();
});

interface Call {
  writer: number;
  run: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** IAM's inline policies, last writer wins. `lateLanding`: a put is answered before it lands (the control). */
class FakeIam {
  readonly docs = new Map<string, string>();
  constructor(
    private readonly onWrite: () => void,
    private readonly lateLanding?: (land: () => void) => void,
  ) {}

  async handle(cmd: unknown): Promise<unknown> {
    if (cmd instanceof PutRolePolicyCommand) {
      const { RoleName, PolicyName, PolicyDocument } = cmd.input;
      const land = () => (this.docs.set(`${RoleName}/${PolicyName}`, PolicyDocument!), this.onWrite());
      if (this.lateLanding) this.lateLanding(land);
      else land();
      return {};
    }
    if (cmd instanceof DeleteRolePolicyCommand) {
      const key = `${cmd.input.RoleName}/${cmd.input.PolicyName}`;
      if (!this.docs.delete(key)) throw new NoSuchEntityException({ message: 'no such policy', $metadata: {} });
      this.onWrite();
      return {};
    }
    if (cmd instanceof ListRolePoliciesCommand) {
      const prefix = `${cmd.input.RoleName}/`;
      return { PolicyNames: [...this.docs.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)), IsTruncated: false };
    }
    if (cmd instanceof GetRolePolicyCommand) {
      const doc = this.docs.get(`${cmd.input.RoleName}/${cmd.input.PolicyName}`);
      if (doc === undefined) throw new NoSuchEntityException({ message: 'no such policy', $metadata: {} });
      return { PolicyDocument: encodeURIComponent(doc) };
    }
    throw new Error(`fake IAM: unexpected ${(cmd as object).constructor.name}`);
  }
}

type Kind = 'add' | 'cas' | 'prune';
interface Schedule {
  kinds: Kind[];
  choices: number[];
  crash?: { at: number; writer: number };
}

let roleSeq = 0;

/**
 * Runs one schedule: the writers start together; at each step the scheduler runs the pending
 * call `choices[step]` names (mod the pending count; round-robin once the choices run out).
 * Answers what the property looks at.
 */
async function run(s: Schedule, opts: { lateLanding?: boolean } = {}) {
  const run = roleSeq++;
  const roleName = `r${run}`;
  const roleArn = `arn:aws:iam::111122223333:role/tvm/${roleName}`;
  const pending: Call[] = [];
  const crashed = new Set<number>();
  const answered = new Map<number, string[]>(); // writer → the sessions it answered for
  const outcome: ('pending' | 'returned' | 'threw')[] = s.kinds.map(() => 'pending');
  const errors: unknown[] = [];
  const violations: string[] = [];
  let now = 1_800_000_000_000;

  const docOf = () => iam.docs.get(`${roleName}/${POLICY}`) ?? '';
  const check = (when: string) => {
    const doc = docOf();
    for (const [w, sessions] of answered) for (const n of sessions) if (!doc.includes(n)) violations.push(`${when}: writer ${w}'s ${n} is not denied`);
  };
  const iam = new FakeIam(
    () => check('after a write landed'),
    opts.lateLanding
      ? (land) => {
          // acknowledged now, applied whenever the scheduler runs it
          pending.push({ writer: -1, run: async () => land(), resolve: () => {}, reject: () => {} });
        }
      : undefined,
  );
  const enqueue = (writer: number, fn: () => Promise<unknown>) =>
    new Promise<unknown>((resolve, reject) => pending.push({ writer, run: fn, resolve, reject }));

  const expiresAt = Math.floor(now / 1000) + 900;
  const sessionsOf = (w: number, n: number) => Array.from({ length: n }, (_, j) => `tvm-L${run}w${w}s${j}`.padEnd(31, 'a'));
  const writers = s.kinds.map((kind, w) => {
    const revoker = new IamRoleRevoker(
      { send: (cmd: unknown) => enqueue(w, () => iam.handle(cmd)) } as unknown as IAMClient,
      { send: (cmd: never) => enqueue(w, () => real.send(cmd)) } as unknown as DynamoDBDocumentClient,
      TABLE,
      {
        policyName: POLICY,
        clock: { now: () => now },
        random: () => 0.5,
        maxBackoffMs: 100,
        putDeadlineMs: 3_000,
        sleep: (ms) => enqueue(w, async () => void (now += ms)) as Promise<void>,
      },
    );
    // add: one session (the atomic path); cas: nine (more than the atomic path takes: compare-and-swap)
    const sessions = kind === 'prune' ? [] : sessionsOf(w, kind === 'add' ? 1 : 9);
    const entries: DenyEntry[] = sessions.map((sessionName) => ({ kind: 'session', sessionName, expiresAt, issued: true }));
    const call = kind === 'prune' ? revoker.prune(roleArn, Math.floor(now / 1000)) : revoker.deny(roleArn, entries);
    return call.then(
      () => {
        outcome[w] = 'returned';
        answered.set(w, sessions);
        check(`when writer ${w} returned`);
      },
      (e) => {
        outcome[w] = 'threw';
        errors.push(e);
      },
    );
  });

  const drain = async () => {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  };
  let step = 0;
  for (let idle = 0; ; ) {
    await drain();
    const live = pending.filter((c) => !crashed.has(c.writer));
    if (!live.length) {
      if (s.kinds.every((_, w) => outcome[w] !== 'pending' || crashed.has(w))) break;
      // A writer sleeping on a real timer (a revoker without an injectable sleep).
      if (++idle > 2_000) throw new Error('stuck: writers neither call nor return');
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    idle = 0;
    if (s.crash && step === s.crash.at && !crashed.size) {
      const victim = live.filter((c) => c.writer >= 0);
      if (victim.length) crashed.add(victim[s.crash.writer % victim.length].writer);
      step++;
      continue;
    }
    const pick = live[(step < s.choices.length ? s.choices[step] : step) % live.length];
    pending.splice(pending.indexOf(pick), 1);
    step++;
    if (step > 20_000) throw new Error('no progress');
    try {
      pick.resolve(await pick.run());
    } catch (e) {
      pick.reject(e);
    }
  }
  await Promise.race([Promise.all(writers.filter((_, w) => !crashed.has(w))), drain()]);
  const stored = await real.send(new GetCommand({ TableName: TABLE, Key: { pk: `deny#${roleArn}` }, ConsistentRead: true }));
  return { outcome, crashed, errors, violations, doc: docOf(), recorded: Object.keys((stored.Item?.sessions as object | undefined) ?? {}) };
}

const kinds = fc.array(fc.constantFrom<Kind>('add', 'add', 'cas', 'prune'), { minLength: 2, maxLength: 3 });
// Any order, or runs of the same pick: one writer goes far while another's call (a put, say) stays in flight.
const choices = fc.oneof(
  fc.array(fc.nat(3), { maxLength: 120 }),
  fc.array(fc.tuple(fc.nat(3), fc.integer({ min: 1, max: 12 })), { maxLength: 40 }).map((runs) => runs.flatMap(([pick, n]) => Array<number>(n).fill(pick))),
);
const schedules = fc.record({ kinds, choices }) as fc.Arbitrary<Schedule>;
const withCrash = fc.record({ kinds, choices, crash: fc.record({ at: fc.nat(40), writer: fc.nat(2) }) }) as fc.Arbitrary<Schedule>;

describe('revoker apply protocol (the real revoker, interleaved by fast-check)', () => {
  it('when a writer returns, IAM denies its sessions, and no later put undoes that', async () => {
    await fc.assert(
      fc.asyncProperty(schedules, async (s) => {
        const r = await run(s);
        expect(r.violations).toEqual([]);
        expect(r.errors).toEqual([]);
        expect(r.outcome.every((o) => o === 'returned')).toBe(true);
        // Once every writer returned, IAM renders everything recorded.
        for (const n of r.recorded) expect(r.doc).toContain(n);
      }),
      { numRuns: RUNS },
    );
  }, 600_000);

  it('a writer that crashes at any point loses no other writer its revocation, nor blocks it for good', async () => {
    await fc.assert(
      fc.asyncProperty(withCrash, async (s) => {
        const r = await run(s);
        expect(r.violations).toEqual([]);
        expect(r.errors).toEqual([]);
        for (const [w, o] of r.outcome.entries()) if (!r.crashed.has(w)) expect(o).toBe('returned');
      }),
      { numRuns: RUNS },
    );
  }, 600_000);

  it('the harness can fail: with an IAM that answers a put before it lands, some schedule loses a revocation', async () => {
    const out = await fc.check(
      fc.asyncProperty(schedules, async (s) => (await run(s, { lateLanding: true })).violations.length === 0),
      { numRuns: RUNS },
    );
    expect(out.failed).toBe(true);
  }, 600_000);
});
