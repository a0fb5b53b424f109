/**
 * The Logs Insights event source against moto's CloudWatch Logs (StartQuery, GetQueryResults),
 * spoken over the real JSON protocol with SigV4. moto 5.2 runs a query's `fields`, `sort` and
 * `limit` and the time window, but not its `filter` clauses (moto/logs/logs_query has no filter),
 * so what the filters must keep out is asserted on the query text; the window, the paging, the
 * parsing of log lines and the error answers are asserted on what moto answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insightsQuery, LogsInsightsEventSource } from '../../functions/adapters/logs-insights-event-source.js';
import { hasMoto, MOTO_CREDENTIALS, startMoto, type Moto } from '../helpers/moto.js';

const GROUP = '/aws/lambda/tvm-vend';
const T0 = Date.parse('2026-12-01T10:00:00.000Z');

describe.skipIf(!hasMoto('Logs Insights conformance'))('LogsInsightsEventSource against moto', () => {
  let moto: Moto;

  /** A raw CloudWatch Logs JSON call (setup only; moto does not check the signature). */
  async function logs(action: string, body: unknown) {
    const res = await fetch(moto.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': `Logs_20140328.${action}`,
        authorization: 'AWS4-HMAC-SHA256 Credential=AKIAMOTOTESTKEY00001/20261201/us-east-1/logs/aws4_request, SignedHeaders=host, Signature=x',
      },
      body: JSON.stringify(body),
    });
    expect(res.ok).toBe(true);
  }

  const line = (at: number, event: string, fields: Record<string, unknown>) => ({
    timestamp: at,
    message: `${new Date(at).toISOString()}\tINFO\t${JSON.stringify({ timestamp: new Date(at).toISOString(), level: 'INFO', audit: true, event, ...fields })}`,
  });

  const source = (o: Partial<ConstructorParameters<typeof LogsInsightsEventSource>[0]> = {}) =>
    new LogsInsightsEventSource({ region: 'us-east-1', logGroups: [GROUP], credentials: MOTO_CREDENTIALS, endpoint: moto.endpoint, now: () => T0 + 3_600_000, ...o });

  beforeAll(async () => {
    moto = await startMoto();
    await logs('CreateLogGroup', { logGroupName: GROUP });
    await logs('CreateLogStream', { logGroupName: GROUP, logStreamName: 's' });
    await logs('PutLogEvents', {
      logGroupName: GROUP,
      logStreamName: 's',
      logEvents: [
        line(T0 - 2 * 86_400_000, 'vend', { status: 200, leaseId: 'Lold', principal: 'dev|old' }),
        { timestamp: T0 - 500, message: 'START RequestId: 1 Version: $LATEST' },
        line(T0, 'vend', { status: 200, leaseId: 'L1', principal: 'dev|alice', grant: 'reports-read' }),
        line(T0 + 1_000, 'vend', { status: 403, reason: 'policy_deny', principal: 'dev|bob', detail: { policies: ['p1'] } }),
        line(T0 + 2_000, 'lease_revoked', { leaseId: 'L1', principal: 'dev|alice' }),
        line(T0 + 3_000, 'vend', { status: 200, leaseId: 'L2', principal: 'dev|alice' }),
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await moto?.close();
  });

  it('answers the audit lines of the last 24 hours, newest first, parsed; other lines and older ones left out', async () => {
    const page = await source().query({});
    expect(page.events.map((e) => [e.at, e.name, e.type])).toEqual([
      [new Date(T0 + 3_000).toISOString(), 'vend', 'issued'],
      [new Date(T0 + 2_000).toISOString(), 'lease_revoked', 'revoked'],
      [new Date(T0 + 1_000).toISOString(), 'vend', 'denied'],
      [new Date(T0).toISOString(), 'vend', 'issued'],
    ]);
    expect(page.events[2]).toMatchObject({ reason: 'policy_deny', principal: 'dev|bob', policies: ['p1'] });
    expect(page.next).toBeUndefined();
  });

  it('pages with a cursor: no event twice, none skipped', async () => {
    const first = await source().query({ limit: 3 });
    expect(first.events).toHaveLength(3);
    expect(first.next).toBeDefined();
    const second = await source().query({ limit: 3, next: first.next });
    expect([...first.events, ...second.events].map((e) => e.at)).toEqual([3_000, 2_000, 1_000, 0].map((d) => new Date(T0 + d).toISOString()));
    expect(second.next).toBeUndefined();
  });

  it('bounds the window by since/until, and filters the type after parsing', async () => {
    const page = await source().query({ since: new Date(T0 + 1_000).toISOString(), until: new Date(T0 + 2_500).toISOString() });
    // until 10:00:02.5 leaves out the event at 10:00:03 (the query's endTime is whole seconds)
    expect(page.events.map((e) => e.name)).toEqual(['lease_revoked', 'vend']);
    const revoked = await source().query({ type: 'revoked' });
    expect(revoked.events.map((e) => e.leaseId)).toEqual(['L1']);
    const days = await source({ now: () => T0 + 3_600_000 }).query({ since: new Date(T0 - 3 * 86_400_000).toISOString() });
    expect(days.events.map((e) => e.leaseId)).toContain('Lold');
  });

  describe('a listing is never cut short by rows the adapter drops after the query', () => {
    const DENSE = '/aws/lambda/tvm-dense';
    const T1 = T0 + 60_000; // 10:01:00.000
    const dense = () => source({ logGroups: [DENSE] });
    async function drain(q: Parameters<LogsInsightsEventSource['query']>[0]): Promise<string[]> {
      const seen: string[] = [];
      let next: string | undefined;
      let pages = 0;
      do {
        const page = await dense().query({ ...q, next });
        seen.push(...page.events.map((e) => e.leaseId ?? '?'));
        next = page.next;
      } while (next && ++pages < 100);
      return seen;
    }
    beforeAll(async () => {
      await logs('CreateLogGroup', { logGroupName: DENSE });
      await logs('CreateLogStream', { logGroupName: DENSE, logStreamName: 's' });
      // 30 vends inside one second (10:01:00.000–.290), newest last; before them, in the second
      // before, six revocations.
      const events = [
        ...Array.from({ length: 6 }, (_, i) => line(T1 - 1_000 + i * 10, 'lease_revoked', { leaseId: `R${i}`, principal: 'dev|alice' })),
        ...Array.from({ length: 30 }, (_, i) => line(T1 + i * 10, 'vend', { status: 200, leaseId: `V${i}`, principal: 'dev|alice' })),
      ];
      await logs('PutLogEvents', { logGroupName: DENSE, logStreamName: 's', logEvents: events });
    }, 60_000);

    it('30 events in one second, 5 a page: each once, newest first (the next query\'s whole-second end brings back the ones already answered)', async () => {
      const want = [...Array.from({ length: 30 }, (_, i) => `V${29 - i}`), ...Array.from({ length: 6 }, (_, i) => `R${5 - i}`)];
      expect(await drain({ limit: 5, since: new Date(T1 - 5_000).toISOString() })).toEqual(want);
    });

    it('a type filter that drops most rows still reaches the older matches', async () => {
      expect(await drain({ limit: 2, type: 'revoked', since: new Date(T1 - 5_000).toISOString() })).toEqual(['R5', 'R4', 'R3', 'R2', 'R1', 'R0']);
    });
  });

  it('puts every filter in the query, as a quoted literal', () => {
    const q = insightsQuery({ principal: 'dev|a"b', grant: 'g', requestId: 'r\\1', leaseId: 'L9' }, 7);
    expect(q).toBe(
      'fields @timestamp, @message | filter audit = 1 and principal = "dev|a\\"b" and grant = "g" and requestId = "r\\\\1" and (leaseId = "L9" or @message like "\\"L9\\"") | sort @timestamp desc | limit 7',
    );
  });

  it('refuses a bad cursor (400), and an unknown log group is upstream_unavailable (503)', async () => {
    await expect(source().query({ next: 'not-a-cursor' })).rejects.toMatchObject({ code: 'invalid_request' });
    await expect(source({ logGroups: ['/aws/lambda/none'] }).query({})).rejects.toMatchObject({ code: 'upstream_unavailable', reason: 'logs_failed' });
    await expect(source({ endpoint: 'http://127.0.0.1:9' }).query({})).rejects.toMatchObject({ code: 'upstream_unavailable', reason: 'logs_unreachable' });
  });
});
