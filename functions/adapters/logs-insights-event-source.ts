/**
 * The audit trail in AWS: the functions' own structured logs, read with CloudWatch Logs Insights
 * (StartQuery, then GetQueryResults until complete). Chosen over an events item per request
 * (a DynamoDB write on every request, denials included, on the vend hot path) and over the lease
 * table's events (no denials, rotations or broker calls there). A query runs over a bounded
 * window (default the last 24 hours) and is given `budgetMs` (default 20 s): past it the query is
 * stopped and the route answers 504 — well inside API Gateway's 29 s; a narrower window or the
 * saved queries in the console answer the rest.
 *
 * Spoken over HTTPS with SigV4 (the JSON protocol, `Logs_20140328.*`): the SDK's Logs client is
 * not among tvm's dependencies.
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { type AuditEvent, type EventPage, type EventQuery, type EventSource, eventCursor, parseEventCursor, toAuditEvent } from '../core/audit-events.js';
import { InvalidRequest, TvmError, UpstreamUnavailable } from '../core/errors.js';

export interface LogsInsightsOptions {
  region: string;
  logGroups: string[];
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Default `https://logs.<region>.amazonaws.com`. */
  endpoint?: string;
  budgetMs?: number;
  pollMs?: number;
  now?: () => number;
  wait?: (ms: number) => Promise<void>;
  fetch?: typeof fetch;
}

const DAY_MS = 86_400_000;
/** The most rows one Logs Insights query answers. */
const MAX_READ = 10_000;

/** A string literal in the Logs Insights query language. */
export function insightsString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The query for `q`: audit lines only, the filters as field comparisons, newest first. */
export function insightsQuery(q: EventQuery, limit: number): string {
  const filters = ['audit = 1'];
  const eq = (field: string, v: string | undefined) => v !== undefined && filters.push(`${field} = ${insightsString(v)}`);
  eq('principal', q.principal);
  eq('grant', q.grant);
  eq('requestId', q.requestId);
  if (q.leaseId !== undefined) filters.push(`(leaseId = ${insightsString(q.leaseId)} or @message like ${insightsString(`"${q.leaseId}"`)})`);
  return `fields @timestamp, @message | filter ${filters.join(' and ')} | sort @timestamp desc | limit ${limit}`;
}

export class LogsInsightsEventSource implements EventSource {
  private readonly signer: SignatureV4;
  private readonly url: URL;
  constructor(private readonly o: LogsInsightsOptions) {
    this.signer = new SignatureV4({ service: 'logs', region: o.region, credentials: o.credentials, sha256: Sha256 });
    this.url = new URL(o.endpoint ?? `https://logs.${o.region}.amazonaws.com/`);
  }

  private async call<T>(action: string, body: unknown): Promise<T> {
    const text = JSON.stringify(body);
    const signed = await this.signer.sign({
      method: 'POST',
      protocol: this.url.protocol,
      hostname: this.url.hostname,
      port: this.url.port ? Number(this.url.port) : undefined,
      path: this.url.pathname,
      headers: { host: this.url.host, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `Logs_20140328.${action}` },
      body: text,
    });
    const headers = { ...(signed.headers as Record<string, string>) };
    delete headers.host;
    let res: Response;
    try {
      res = await (this.o.fetch ?? fetch)(this.url, { method: 'POST', headers, body: text, signal: AbortSignal.timeout(5_000) });
    } catch (e) {
      throw new UpstreamUnavailable('logs_unreachable', { action, error: (e as Error).message });
    }
    const answer = (await res.json().catch(() => ({}))) as T & { __type?: string; message?: string };
    if (!res.ok) throw new UpstreamUnavailable('logs_failed', { action, status: res.status, type: answer.__type, message: answer.message });
    return answer;
  }

  async query(q: EventQuery): Promise<EventPage> {
    const now = (this.o.now ?? Date.now)();
    const cursor = parseEventCursor(q.next);
    if (q.next !== undefined && !cursor) throw new InvalidRequest('bad_cursor', undefined, 'Invalid field: next.');
    const limit = Math.max(1, Math.min(q.limit ?? 100, 1000));
    const untilMs = Math.min(Date.parse(cursor?.at ?? q.until ?? new Date(now).toISOString()), now);
    const sinceMs = q.since ? Date.parse(q.since) : untilMs - DAY_MS;
    const skip = cursor?.n ?? 0;
    const deadline = now + (this.o.budgetMs ?? 20_000);
    // type and leaseIds are matched after normalization (the SPEC type is derived, not logged).
    let read = Math.min(MAX_READ, (limit + skip + 1) * (q.type ? 4 : 1));
    for (;;) {
      const rows = await this.run(q, read, sinceMs, untilMs, deadline);
      // An answer with as many rows as asked may go on past them, and the rows this adapter drops
      // (after the window's end, which the query knows only to the second; another type; not an
      // audit line) can leave a page short that is not the end: ask again for more rows rather than
      // end the listing there. At the most rows a query may answer, a short page still carries a
      // cursor; with no event to put in it, the request fails (narrow the window) instead.
      const more = rows.length >= read;
      const page = this.page(rows, q, limit, untilMs, cursor, more && read >= MAX_READ);
      if (page.next || !more) return page;
      if (read >= MAX_READ) throw new UpstreamUnavailable('logs_window_too_wide', { read, since: new Date(sinceMs).toISOString(), until: new Date(untilMs).toISOString() });
      read = Math.min(MAX_READ, read * 4);
    }
  }

  /** One query: StartQuery, then GetQueryResults until it completes, fails or passes the deadline. */
  private async run(q: EventQuery, read: number, sinceMs: number, untilMs: number, deadline: number): Promise<{ field: string; value: string }[][]> {
    const { queryId } = await this.call<{ queryId: string }>('StartQuery', {
      logGroupNames: this.o.logGroups,
      startTime: Math.floor(sinceMs / 1000),
      endTime: Math.ceil(untilMs / 1000),
      queryString: insightsQuery(q, read),
      limit: read,
    });
    const wait = this.o.wait ?? ((ms) => new Promise<void>((r) => setTimeout(r, ms)));
    for (;;) {
      const out = await this.call<{ status: string; results?: { field: string; value: string }[][] }>('GetQueryResults', { queryId });
      if (out.status === 'Complete') return out.results ?? [];
      if (out.status !== 'Running' && out.status !== 'Scheduled') throw new UpstreamUnavailable('logs_query_failed', { status: out.status });
      if ((this.o.now ?? Date.now)() >= deadline) {
        await this.call('StopQuery', { queryId }).catch(() => undefined);
        throw new TvmError('upstream_timeout', 'The request took too long; narrow the time window.', 'logs_query_timeout', { queryId });
      }
      await wait(this.o.pollMs ?? 400);
    }
  }

  /** The page of `rows` after the cursor; `truncated`: the rows may go on past these (a cursor even on a short page). */
  private page(rows: { field: string; value: string }[][], q: EventQuery, limit: number, untilMs: number, cursor: { at: string; n: number } | undefined, truncated: boolean): EventPage {
    // The query's endTime is in whole seconds (rounded up): the window's end is checked here.
    const until = new Date(untilMs).toISOString();
    const events: AuditEvent[] = [];
    for (const row of rows) {
      const message = row.find((f) => f.field === '@message')?.value;
      if (!message) continue;
      try {
        const e = toAuditEvent(JSON.parse(message.slice(message.indexOf('{'))) as Record<string, unknown>);
        if (e && (q.type === undefined || e.type === q.type || e.name === q.type) && (q.since === undefined || e.at >= q.since) && e.at <= until) events.push(e);
      } catch {
        // not a JSON line
      }
    }
    let from = 0;
    if (cursor) while (from < events.length && events[from].at >= cursor.at && from < cursor.n + events.filter((e) => e.at > cursor.at).length) from++;
    const pageEvents = events.slice(from, from + limit);
    if ((from + limit >= events.length && !truncated) || !pageEvents.length) return { events: pageEvents };
    const lastAt = pageEvents[pageEvents.length - 1].at;
    const n = events.slice(0, from + limit).filter((e) => e.at === lastAt).length;
    return { events: pageEvents, next: eventCursor(lastAt, n) };
  }
}
