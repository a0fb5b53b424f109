/** `tvm audit`: the audit trail, newest first, never silently truncated. */
import type { AuditEvent } from '../../functions/core/audit-events.js';
import { fetchPages, formatArg, limitArg, noteMore, printRows, timeArg, type Column } from '../format.js';
import { endpoint, EXIT, parse, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm audit [--since D] [--until D] [--principal P] [--lease ID] [--grant G] [--type T]
                 [--request-id ID] [--limit N | --all] [--format table|json|ndjson] [--endpoint URL]

Every issuance, denial (with its reason), revocation, expiry, rotation and broker call, newest
first. --limit defaults to 100 and says on stderr when more exist. D is a duration back from now
(15m, 2h, 7d) or an ISO time. Types: issued, denied, failed, revoked, expired, rotated, broker,
fallback, … (or a logged name such as bulk_revoke). 'tvm explain REQUEST_ID' says why in words.
`;

const COLUMNS: Column<AuditEvent>[] = [
  { title: 'AT', value: (e) => e.at },
  { title: 'TYPE', value: (e) => e.type },
  { title: 'REQUEST', value: (e) => e.requestId ?? '-' },
  { title: 'PRINCIPAL', value: (e) => e.principal ?? (typeof e.by === 'string' ? e.by : '-') },
  { title: 'LEASE', value: (e) => e.leaseId ?? '-' },
  { title: 'GRANT', value: (e) => e.grant ?? e.vendor ?? '-' },
  { title: 'REASON', value: (e) => e.reason ?? '' },
];

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {
    since: { type: 'string' },
    until: { type: 'string' },
    principal: { type: 'string' },
    lease: { type: 'string' },
    grant: { type: 'string' },
    type: { type: 'string' },
    'request-id': { type: 'string' },
    limit: { type: 'string' },
    all: { type: 'boolean' },
    format: { type: 'string' },
    endpoint: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, true);
  if (values.help) return io.out(HELP), EXIT.ok;
  if (positionals.length) throw new UsageError(`unexpected '${positionals[0]}'`);
  const format = formatArg(values.format, false, ['table', 'json', 'ndjson']);
  const limit = limitArg(values.limit, values.all);
  const now = Date.now();
  const q = new URLSearchParams();
  for (const [flag, param] of [['principal', 'principal'], ['lease', 'lease'], ['grant', 'grant'], ['type', 'type'], ['request-id', 'requestId']] as const) {
    if (values[flag]) q.set(param, values[flag]!);
  }
  for (const k of ['since', 'until'] as const) {
    const t = timeArg(k, values[k], now);
    if (t) q.set(k, t);
  }
  const base = endpoint(values.endpoint, io.env);
  const { items, more } = await fetchPages<AuditEvent>(base, '/v1/admin/events', q, 'events', limit, io.env);
  printRows(io, format, items, COLUMNS);
  noteMore(io, more, items.length, 'events');
  return EXIT.ok;
}
