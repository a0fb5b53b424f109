/**
 * The audit trail as admins read it (SPEC: `tvm audit`, `GET /v1/admin/events`, newest first):
 * logged lines become events of SPEC's types, filters select, and pages resume exactly where the
 * last one stopped, even among events logged in the same millisecond.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AuditEvent,
  eventCursor,
  matchesEvent,
  newestFirst,
  pageEvents,
  parseEventCursor,
  toAuditEvent,
  typeOf,
} from '../../functions/core/audit-events.js';

const at = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s)).toISOString();
const ev = (over: Partial<AuditEvent> = {}): AuditEvent => ({ at: at(0), type: 'issued', name: 'vend', ...over });

describe('typeOf: the SPEC type of a logged event', () => {
  it.each([
    [{ outcome: 'refused', status: 200 }, 'denied'],
    [{ outcome: 'issued', status: 500 }, 'issued'],
    [{ outcome: 'failed' }, 'failed'],
    [{ outcome: 7, status: 200 }, 'issued'],
    [{ status: 200 }, 'issued'],
    [{ status: '200' }, 'issued'],
    [{ status: 500 }, 'failed'],
    [{ status: 503 }, 'failed'],
    [{ status: 499 }, 'denied'],
    [{ status: 403 }, 'denied'],
    [{ status: 201 }, 'denied'],
    [{}, 'denied'],
  ])('a vend with %j is %s', (fields, type) => {
    expect(typeOf('vend', fields)).toBe(type);
  });

  it.each([
    ['lease_revoked', 'revoked'],
    ['lease_expired', 'expired'],
    ['lease_settled', 'settled'],
    ['vendor_rotated', 'rotated'],
    ['revocation_fallback', 'fallback'],
    ['broker', 'broker'],
    ['sweep', 'sweep'],
  ])('%s is %s, whatever its fields', (name, type) => {
    expect(typeOf(name, { outcome: 'refused', status: 500 })).toBe(type);
  });
});

describe('toAuditEvent', () => {
  const line = (over: Record<string, unknown> = {}) => ({
    audit: true,
    event: 'vend',
    timestamp: '2030-01-01T01:00:00+01:00',
    level: 'INFO',
    message: 'audit',
    service: 'tvm',
    sampling_rate: 0,
    xray_trace_id: '1-abc',
    status: 403,
    reason: 'policy_deny',
    principal: 'dev|a',
    ...over,
  });

  it("keeps the fields, drops the logger's own, normalizes the time and types it", () => {
    expect(toAuditEvent(line({ detail: { policies: ['p1'] }, decision: ['ignored'] }))).toEqual({
      at: '2030-01-01T00:00:00.000Z',
      type: 'denied',
      name: 'vend',
      status: 403,
      reason: 'policy_deny',
      principal: 'dev|a',
      detail: { policies: ['p1'] },
      decision: ['ignored'],
      policies: ['p1'],
    });
  });

  it('takes the policies from the decision when the detail names none, and has none when neither does', () => {
    expect(toAuditEvent(line({ decision: ['permit-ci'], detail: { policies: 'p' } }))!.policies).toEqual(['permit-ci']);
    expect(toAuditEvent(line({ decision: ['permit-ci'] }))!.policies).toEqual(['permit-ci']);
    const none = toAuditEvent(line({ detail: 'text', decision: 'p' }))!;
    expect(none).not.toHaveProperty('policies');
    expect(none.detail).toBe('text');
  });

  it.each([
    ['not an audit line', { audit: 'true' }],
    ['an audit line without an event name', { event: 7 }],
    ['no timestamp', { timestamp: undefined }],
    ['a numeric timestamp', { timestamp: 1893456000000 }],
    // Date.parse(2030) reads the number as the year 2030: only a string timestamp is one.
    ['a numeric timestamp Date.parse would read as a year', { timestamp: 2030 }],
    ['an unreadable timestamp', { timestamp: 'yesterday' }],
  ])('%s is no event', (_label, over) => {
    expect(toAuditEvent(line(over))).toBeUndefined();
  });
});

describe('matchesEvent', () => {
  const e = ev({ at: at(5), principal: 'dev|a', leaseId: 'L1', grant: 'g', type: 'revoked', name: 'lease_revoked', requestId: 'r1' });

  it.each([
    [{}, true],
    [{ since: at(5), until: at(5) }, true],
    [{ since: at(6) }, false],
    [{ until: at(4) }, false],
    [{ principal: 'dev|a' }, true],
    [{ principal: 'dev|b' }, false],
    [{ leaseId: 'L1' }, true],
    [{ leaseId: 'L2' }, false],
    [{ grant: 'g' }, true],
    [{ grant: 'h' }, false],
    [{ type: 'revoked' }, true],
    [{ type: 'lease_revoked' }, true],
    [{ type: 'issued' }, false],
    [{ requestId: 'r1' }, true],
    [{ requestId: 'r2' }, false],
  ])('%j → %s', (q, want) => {
    expect(matchesEvent(q, e)).toBe(want);
  });

  it("finds a bulk revocation by any of its lease ids", () => {
    const bulk = ev({ name: 'bulk_revoke', type: 'bulk_revoke', leaseIds: ['L7', 'L8'] });
    expect(matchesEvent({ leaseId: 'L8' }, bulk)).toBe(true);
    expect(matchesEvent({ leaseId: 'L9' }, bulk)).toBe(false);
    expect(matchesEvent({ leaseId: 'L8' }, ev({ leaseIds: 'L8' }))).toBe(false);
  });
});

describe('cursors', () => {
  it('round-trips, and refuses anything this listing did not make', () => {
    expect(parseEventCursor(eventCursor(at(3), 2))).toEqual({ at: at(3), n: 2 });
    expect(parseEventCursor(undefined)).toBeUndefined();
    for (const bad of [
      'not base64 json',
      Buffer.from('{"at":"2030-01-01T00:00:00Z"').toString('base64url'),
      Buffer.from(JSON.stringify({ at: 'soon', n: 1 })).toString('base64url'),
      Buffer.from(JSON.stringify({ at: 5, n: 1 })).toString('base64url'),
      Buffer.from(JSON.stringify({ at: at(1), n: 0 })).toString('base64url'),
      Buffer.from(JSON.stringify({ at: at(1), n: 1.5 })).toString('base64url'),
      Buffer.from(JSON.stringify({ at: at(1) })).toString('base64url'),
      Buffer.from('null').toString('base64url'),
    ]) {
      expect([bad, parseEventCursor(bad)]).toEqual([bad, undefined]);
    }
  });
});

describe('newestFirst and pageEvents', () => {
  it('orders newest first, and among events of one instant the one written later first', () => {
    const written = [ev({ at: at(1), leaseId: 'a' }), ev({ at: at(3), leaseId: 'b' }), ev({ at: at(1), leaseId: 'c' }), ev({ at: at(2), leaseId: 'd' }), ev({ at: at(3), leaseId: 'e' })];
    expect(newestFirst(written).map((e) => e.leaseId)).toEqual(['e', 'b', 'd', 'c', 'a']);
  });

  it('answers a next cursor exactly when more events remain, and the next page starts after the last answered', () => {
    const sorted = newestFirst([1, 2, 2, 2, 3, 4].map((s, i) => ev({ at: at(s), leaseId: `L${i}` })));
    const first = pageEvents(sorted, 3);
    expect(first.events.map((e) => e.leaseId)).toEqual(['L5', 'L4', 'L3']);
    expect(parseEventCursor(first.next)).toEqual({ at: at(2), n: 1 });
    const second = pageEvents(sorted, 2, parseEventCursor(first.next));
    expect(second.events.map((e) => e.leaseId)).toEqual(['L2', 'L1']);
    expect(parseEventCursor(second.next)).toEqual({ at: at(2), n: 3 });
    const last = pageEvents(sorted, 2, parseEventCursor(second.next));
    expect(last).toEqual({ events: [sorted[5]] });
    expect(pageEvents(sorted, 6)).toEqual({ events: sorted });
  });

  it('a cursor older than every event answers an empty page; one newer than every event starts at the top', () => {
    const sorted = newestFirst([ev({ at: at(5) }), ev({ at: at(6) })]);
    expect(pageEvents(sorted, 10, { at: at(1), n: 1 })).toEqual({ events: [] });
    expect(pageEvents(sorted, 10, { at: at(9), n: 1 }).events).toEqual(sorted);
  });

  it('paging through any trail, any page size, answers every event once, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 30 }), fc.integer({ min: 1, max: 7 }), (seconds, limit) => {
        const sorted = newestFirst(seconds.map((s, i) => ev({ at: at(s), leaseId: `L${i}` })));
        const seen: AuditEvent[] = [];
        let cursor: { at: string; n: number } | undefined;
        for (let pages = 0; pages <= sorted.length + 1; pages++) {
          const page = pageEvents(sorted, limit, cursor);
          expect(page.events.length).toBeLessThanOrEqual(limit);
          seen.push(...page.events);
          if (!page.next) break;
          expect(page.events).toHaveLength(limit);
          cursor = parseEventCursor(page.next);
        }
        expect(seen).toEqual(sorted);
      }),
    );
  });
});
