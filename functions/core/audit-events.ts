/**
 * The audit trail as admins read it: every audit log line tvm writes, normalized to one event
 * shape (SPEC "Leases": `at`, `type`, `requestId`, `principal`, `leaseId`, `grant`, `vendor`,
 * `reason`, `policies`), filtered and paged newest first. Pure: the sources (the local file, Logs
 * Insights) are adapters behind `EventSource`.
 */

/** One audit event. `at` is ISO-8601. Carries the token's SHA-256, never a token or secret. */
export interface AuditEvent {
  at: string;
  /** SPEC's type: `issued`, `denied`, `failed`, `revoked`, `expired`, `rotated`, `broker`, … */
  type: string;
  /** The name tvm logged it under (`vend`, `lease_revoked`, `vendor_rotated`, …). */
  name: string;
  requestId?: string;
  principal?: string;
  leaseId?: string;
  grant?: string;
  vendor?: string;
  reason?: string;
  policies?: string[];
  status?: number;
  by?: string;
  route?: string;
  tokenSha256?: string;
  detail?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface EventQuery {
  /** ISO-8601 bounds on `at`, inclusive. */
  since?: string;
  until?: string;
  principal?: string;
  leaseId?: string;
  grant?: string;
  type?: string;
  requestId?: string;
  /** Page size (default 100, at most 1000). */
  limit?: number;
  next?: string;
}

export interface EventPage {
  events: AuditEvent[];
  next?: string;
}

/** Where the admin events route reads the audit trail from. */
export interface EventSource {
  query(query: EventQuery): Promise<EventPage>;
}

/** Names that carry a SPEC type of their own. */
const TYPES: Record<string, string> = {
  lease_revoked: 'revoked',
  lease_expired: 'expired',
  lease_settled: 'settled',
  vendor_rotated: 'rotated',
  revocation_fallback: 'fallback',
};

/** The SPEC type of a logged audit event: a request's outcome, else the name's. */
export function typeOf(name: string, fields: Record<string, unknown>): string {
  if (name === 'vend') {
    const outcome = typeof fields.outcome === 'string' ? fields.outcome : undefined;
    if (outcome === 'refused') return 'denied';
    if (outcome) return outcome;
    const status = Number(fields.status);
    return status === 200 ? 'issued' : status >= 500 ? 'failed' : 'denied';
  }
  return TYPES[name] ?? name;
}

/**
 * A logged line's attributes (Powertools: `timestamp`, `audit: true`, `event`, the fields) as an
 * event; undefined for a line that is not an audit event.
 */
export function toAuditEvent(line: Record<string, unknown>): AuditEvent | undefined {
  if (line.audit !== true || typeof line.event !== 'string') return undefined;
  const { audit: _a, event: name, timestamp, level: _l, message: _m, service: _s, sampling_rate: _r, xray_trace_id: _x, ...fields } = line;
  const at = typeof timestamp === 'string' && !Number.isNaN(Date.parse(timestamp)) ? new Date(Date.parse(timestamp)).toISOString() : undefined;
  if (!at) return undefined;
  const detail = fields.detail && typeof fields.detail === 'object' ? (fields.detail as Record<string, unknown>) : undefined;
  const policies = Array.isArray(detail?.policies) ? detail.policies : Array.isArray(fields.decision) ? fields.decision : undefined;
  return {
    ...fields,
    at,
    type: typeOf(name as string, fields),
    name: name as string,
    ...(policies ? { policies: policies as string[] } : {}),
  };
}

/** Whether `e` passes every filter of `q` (the type filter matches the SPEC type or the logged name). */
export function matchesEvent(q: EventQuery, e: AuditEvent): boolean {
  return (
    (q.since === undefined || e.at >= q.since) &&
    (q.until === undefined || e.at <= q.until) &&
    (q.principal === undefined || e.principal === q.principal) &&
    (q.leaseId === undefined || e.leaseId === q.leaseId || (Array.isArray(e.leaseIds) && e.leaseIds.includes(q.leaseId))) &&
    (q.grant === undefined || e.grant === q.grant) &&
    (q.type === undefined || e.type === q.type || e.name === q.type) &&
    (q.requestId === undefined || e.requestId === q.requestId)
  );
}

/** Cursor of a newest-first page: the position after the last event answered (`at`, and how many at that `at` were answered). */
export function eventCursor(at: string, n: number): string {
  return Buffer.from(JSON.stringify({ at, n })).toString('base64url');
}

export function parseEventCursor(cursor: string | undefined): { at: string; n: number } | undefined {
  if (cursor === undefined) return undefined;
  try {
    const c = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { at?: unknown; n?: unknown };
    if (typeof c.at === 'string' && !Number.isNaN(Date.parse(c.at)) && Number.isInteger(c.n) && (c.n as number) > 0) return { at: c.at, n: c.n as number };
  } catch {
    // falls through to undefined → the caller answers 400
  }
  return undefined;
}

/**
 * One newest-first page over events already filtered and sorted newest first; with the cursor of
 * the next page exactly when more exist. Events at one `at` keep their order across calls
 * (sources answer them in a stable order), so skipping `n` at the cursor's `at` resumes exactly.
 */
export function pageEvents(sorted: AuditEvent[], limit: number, cursor?: { at: string; n: number }): EventPage {
  let from = 0;
  if (cursor) {
    from = sorted.findIndex((e) => e.at <= cursor.at);
    if (from < 0) from = sorted.length;
    let skipped = 0;
    while (from < sorted.length && sorted[from].at === cursor.at && skipped < cursor.n) (from++, skipped++);
  }
  const end = Math.min(sorted.length, from + limit);
  const events = sorted.slice(from, end);
  if (end >= sorted.length) return { events };
  const lastAt = sorted[end - 1].at;
  let n = 0;
  for (let k = end - 1; k >= 0 && sorted[k].at === lastAt; k--) n++;
  return { events, next: eventCursor(lastAt, n) };
}

/** Newest first; of events at the same `at`, the one written later comes first. */
export function newestFirst(events: AuditEvent[]): AuditEvent[] {
  return events
    .map((e, i) => [e, i] as const)
    .sort(([a, i], [b, j]) => (a.at === b.at ? j - i : a.at < b.at ? 1 : -1))
    .map(([e]) => e);
}
