/**
 * The Logs Insights event source against a loopback endpoint that answers exactly what each test
 * sets, over the real wire (SigV4, the JSON protocol): what moto cannot show — a query that stays
 * Running past the budget, a failed query, equal timestamps across pages, the request itself.
 * Time moves only by the source's own `now`/`wait` options.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LogsInsightsEventSource } from '../../functions/adapters/logs-insights-event-source.js';
import type { TvmError } from '../../functions/core/errors.js';
import { type AnsweringServer, json, refusal, startAnsweringServer } from '../helpers/answering-server.js';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const CREDS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x'.repeat(40) };

let srv: AnsweringServer;
beforeAll(async () => {
  srv = await startAnsweringServer();
});
afterAll(() => srv.close());

/** GetQueryResults answers, in order (the last one repeats); StartQuery answers a query id. */
let results: unknown[];
beforeEach(() => {
  srv.seen.length = 0;
  results = [{ status: 'Complete', results: [] }];
  srv.answer = (req) => {
    const action = String(req.headers['x-amz-target']).split('.')[1];
    if (action === 'StartQuery') return json(200, { queryId: 'q-1' })();
    if (action === 'StopQuery') return json(200, { success: true })();
    return json(200, results.length > 1 ? results.shift() : results[0])();
  };
});

const clock = { t: T0 };
const source = (o: Partial<ConstructorParameters<typeof LogsInsightsEventSource>[0]> = {}) =>
  new LogsInsightsEventSource({
    region: 'eu-west-1', logGroups: ['/aws/lambda/tvm-vend'], credentials: CREDS, endpoint: srv.url,
    now: () => clock.t, wait: async (ms) => void (clock.t += ms), ...o,
  });
const calls = () => srv.seen.map((s) => ({ action: String(s.headers['x-amz-target']), body: JSON.parse(s.body) as Record<string, unknown> }));
const row = (at: number, fields: Record<string, unknown> = {}, prefix = `${new Date(at).toISOString()}\tINFO\t`) => [
  { field: '@timestamp', value: new Date(at).toISOString() },
  { field: '@message', value: `${prefix}${JSON.stringify({ timestamp: new Date(at).toISOString(), audit: true, event: 'vend', status: 200, ...fields })}` },
];

beforeEach(() => {
  clock.t = T0;
});

describe('LogsInsightsEventSource on the wire', () => {
  it('signs a POST with the JSON protocol target and sends the window and the read size', async () => {
    await source().query({ limit: 10 });
    const s = srv.seen[0];
    expect(s.method).toBe('POST');
    expect(s.headers['content-type']).toBe('application/x-amz-json-1.1');
    expect(s.headers['x-amz-target']).toBe('Logs_20140328.StartQuery');
    expect(s.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/logs\/aws4_request/);
    expect(calls()[0].body).toMatchObject({ logGroupNames: ['/aws/lambda/tvm-vend'], startTime: (T0 - 86_400_000) / 1000, endTime: T0 / 1000, limit: 11 });
    expect(calls()[1]).toEqual({ action: 'Logs_20140328.GetQueryResults', body: { queryId: 'q-1' } });
  });

  it('the read size: limit + skipped + 1, four times that for a type filter, at most 10,000; the window end rounded up to a second', async () => {
    clock.t = T0 + 1_500;
    await source().query({ limit: 5, type: 'denied' });
    expect(calls()[0].body).toMatchObject({ limit: 24, endTime: T0 / 1000 + 2 });
    srv.seen.length = 0;
    await source().query({ limit: 1000, type: 'denied' });
    expect(calls()[0].body.limit).toBe(4004);
    srv.seen.length = 0;
    await source().query({ limit: 5000 });
    expect(calls()[0].body.limit).toBe(1001);
  });

  it('a full answer whose rows the filters drop is asked again with four times the rows (up to 10,000), not ended short', async () => {
    const vends = (n: number, from: number) => Array.from({ length: n }, (_, i) => row(from - i));
    const denied = row(T0 - 5_000, { status: 403, reason: 'policy_deny' });
    results = [{ status: 'Complete', results: vends(24, T0 - 1) }, { status: 'Complete', results: [...vends(30, T0 - 1), denied] }];
    const page = await source().query({ limit: 5, type: 'denied' });
    expect(calls().filter((c) => c.action.endsWith('StartQuery')).map((c) => c.body.limit)).toEqual([24, 96]);
    expect(page).toEqual({ events: [expect.objectContaining({ at: new Date(T0 - 5_000).toISOString(), type: 'denied' })] });
  });

  it('at 10,000 rows a short page still carries a cursor; with no event in it the request fails (503) rather than end the listing', async () => {
    const vends = Array.from({ length: 10_000 }, (_, i) => row(T0 - 1 - i));
    const denied = row(T0 - 3, { status: 403, reason: 'policy_deny' });
    results = [{ status: 'Complete', results: [...vends.slice(0, 2), denied, ...vends.slice(2, 9_999)] }];
    const page = await source().query({ limit: 1000, type: 'denied' });
    expect(calls().filter((c) => c.action.endsWith('StartQuery')).map((c) => c.body.limit)).toEqual([4004, 10_000]);
    expect(page.events.map((e) => e.at)).toEqual([new Date(T0 - 3).toISOString()]);
    expect(page.next).toEqual(expect.any(String));
    srv.seen.length = 0;
    results = [{ status: 'Complete', results: vends }];
    expect(await refusal(source().query({ limit: 1000, type: 'denied' }))).toMatchObject({
      code: 'upstream_unavailable', reason: 'logs_window_too_wide', detail: { read: 10_000, since: new Date(T0 - 86_400_000).toISOString(), until: new Date(T0).toISOString() },
    });
  });

  it('polls while Scheduled or Running, waiting pollMs (400 ms by default) between polls', async () => {
    results = [{ status: 'Scheduled' }, { status: 'Running' }, { status: 'Complete', results: [row(T0 - 10)] }];
    const waits: number[] = [];
    const page = await source({ wait: async (ms) => void waits.push(ms) }).query({});
    expect(page.events.map((e) => e.at)).toEqual([new Date(T0 - 10).toISOString()]);
    expect(waits).toEqual([400, 400]);
    results = [{ status: 'Running' }, { status: 'Complete' }];
    waits.length = 0;
    expect((await source({ pollMs: 7, wait: async (ms) => void waits.push(ms) }).query({})).events).toEqual([]);
    expect(waits).toEqual([7]);
  });

  it('without a wait option it really waits (a short poll) and still completes', async () => {
    results = [{ status: 'Running' }, { status: 'Complete', results: [] }];
    expect((await source({ wait: undefined, pollMs: 1 }).query({})).events).toEqual([]);
  });

  it.each(['Failed', 'Cancelled', 'Timeout', 'Unknown'])('a query that ends %s is logs_query_failed', async (status) => {
    results = [{ status }];
    const e = await refusal(source().query({}));
    expect(e).toMatchObject({ code: 'upstream_unavailable', reason: 'logs_query_failed', detail: { status } });
  });

  it('a query still running at the budget is stopped and answered upstream_timeout (20 s by default)', async () => {
    results = [{ status: 'Running' }];
    const e = await refusal(source().query({}));
    expect(e).toMatchObject({ code: 'upstream_timeout', reason: 'logs_query_timeout', detail: { queryId: 'q-1' } });
    expect(e.message).toBe('The request took too long; narrow the time window.');
    expect(calls().at(-1)).toEqual({ action: 'Logs_20140328.StopQuery', body: { queryId: 'q-1' } });
    expect(clock.t - T0).toBe(20_000);
    clock.t = T0;
    await refusal(source({ budgetMs: 1_000 }).query({}));
    expect(clock.t - T0).toBe(1_200);
  });

  it('an error answer is logs_failed with the action, status, type and message', async () => {
    srv.answer = json(400, { __type: 'InvalidParameterException', message: 'bad group' });
    expect(await refusal(source().query({}))).toMatchObject({
      reason: 'logs_failed', detail: { action: 'StartQuery', status: 400, type: 'InvalidParameterException', message: 'bad group' },
    });
  });

  it('an unreachable endpoint is logs_unreachable naming the action', async () => {
    srv.answer = () => 'drop';
    expect(await refusal(source().query({}))).toMatchObject({ reason: 'logs_unreachable', detail: { action: 'StartQuery', error: 'fetch failed' } });
  });

  it('a cursor that does not parse is a 400 naming the field', async () => {
    const e = await refusal(source().query({ next: 'garbage' }));
    expect(e).toMatchObject({ code: 'invalid_request', reason: 'bad_cursor', message: 'Invalid field: next.' });
  });

  it('rows without a message, or not JSON, are left out; an event exactly at the window’s end is kept', async () => {
    results = [{ status: 'Complete', results: [row(T0), [{ field: '@timestamp', value: 'x' }], [{ field: '@message', value: 'START RequestId: 1' }], [{ field: '@message', value: '' }], row(T0 - 5)] }];
    expect((await source().query({})).events.map((e) => e.at)).toEqual([T0, T0 - 5].map((t) => new Date(t).toISOString()));
  });

  it('the window and filters are checked on each event: since (the query starts at a whole second), the type by kind or by name', async () => {
    results = [{ status: 'Complete', results: [row(T0 - 100, { event: 'lease_revoked', leaseId: 'r' }), row(T0 - 200, { leaseId: 'v' }), row(T0 - 1_000 + 300, { leaseId: 'early' })] }];
    const since = new Date(T0 - 500).toISOString();
    expect((await source().query({ since })).events.map((e) => e.leaseId)).toEqual(['r', 'v']);
    expect((await source().query({ type: 'lease_revoked' })).events.map((e) => e.leaseId)).toEqual(['r']);
    expect((await source().query({ type: 'revoked' })).events.map((e) => e.leaseId)).toEqual(['r']);
  });

  it('a page that ends exactly at the last event has no cursor', async () => {
    results = [{ status: 'Complete', results: [row(T0 - 1), row(T0 - 2)] }];
    expect((await source().query({ limit: 2 })).next).toBeUndefined();
  });

  it('pages across equal timestamps without loss or repeat', async () => {
    // newest first; three events share one millisecond; the endpoint answers newer ones too (endTime is rounded up)
    const all = [row(T0 - 1, { leaseId: 'a' }), row(T0 - 2, { leaseId: 'b' }), row(T0 - 2, { leaseId: 'c' }), row(T0 - 2, { leaseId: 'd' }), row(T0 - 3, { leaseId: 'e' })];
    srv.answer = (req) => {
      const action = String(req.headers['x-amz-target']).split('.')[1];
      return action === 'StartQuery' ? json(200, { queryId: 'q' })() : json(200, { status: 'Complete', results: all })();
    };
    const seenIds: unknown[] = [];
    let next: string | undefined;
    const sizes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const page = await source().query({ limit: 2, next });
      sizes.push(page.events.length);
      seenIds.push(...page.events.map((e) => e.leaseId));
      next = page.next;
      if (!next) break;
    }
    expect(seenIds).toEqual(['a', 'b', 'c', 'd', 'e']);
    // each later page reads the skipped events again, plus one
    expect(calls().filter((c) => c.action.endsWith('StartQuery')).map((c) => c.body.limit)).toEqual([3, 4, 6]);
    expect(sizes).toEqual([2, 2, 1]);
  });
});
