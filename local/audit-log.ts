/**
 * The local stack's audit trail: every audit line the handlers log, normalized, kept in memory
 * for the admin events route and appended to `<data>/audit.ndjson` (one event a line), which a
 * restart on the same data reads back.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { type AuditEvent, type EventPage, type EventQuery, type EventSource, matchesEvent, newestFirst, pageEvents, parseEventCursor, toAuditEvent } from '../functions/core/audit-events.js';
import { InvalidRequest } from '../functions/core/errors.js';

/** Events kept in memory (the file keeps them all). */
const KEEP = 200_000;

export interface LocalAuditLog extends EventSource {
  /** Takes one log line (JSON text); keeps it when it is an audit event. */
  add(line: string): void;
  /** The file, when the stack has a data folder. */
  file?: string;
}

export function createLocalAuditLog(file?: string): LocalAuditLog {
  const events: AuditEvent[] = [];
  if (file && existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        events.push(JSON.parse(line) as AuditEvent);
      } catch {
        // a torn last line from a crash: skipped
      }
    }
    events.splice(0, Math.max(0, events.length - KEEP));
  }
  return {
    file,
    add(line) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        return;
      }
      const e = parsed && typeof parsed === 'object' ? toAuditEvent(parsed as Record<string, unknown>) : undefined;
      if (!e) return;
      events.push(e);
      if (events.length > KEEP) events.shift();
      if (file) appendFileSync(file, `${JSON.stringify(e)}\n`, { mode: 0o600 });
    },
    async query(q: EventQuery): Promise<EventPage> {
      const cursor = parseEventCursor(q.next);
      if (q.next !== undefined && !cursor) throw new InvalidRequest('bad_cursor', undefined, 'Invalid field: next.');
      return pageEvents(newestFirst(events.filter((e) => matchesEvent(q, e))), Math.max(1, Math.min(q.limit ?? 100, 1000)), cursor);
    },
  };
}
