/** `tvm leases` / `tvm leases show ID`: admin views of leases and their history, never silently truncated. */
import { fetchPages, formatArg, limitArg, noteMore, printRows, timeArg, type Column } from '../format.js';
import { adminCall, endpoint, EXIT, jsonText, parse, printable, refusalOf, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm leases [--principal P] [--grant G] [--issuer I] [--task T] [--status S] [--since D] [--until D]
                  [--limit N | --all] [--format table|json|ndjson|csv] [--endpoint URL]
       tvm leases show ID [--format table|json] [--endpoint URL]

Lists leases, newest first where an index gives the order (by principal), each page newest first
otherwise. --limit defaults to 100 and says on stderr when more exist; --all reads every page.
D is a duration back from now (15m, 2h, 7d) or an ISO time; it bounds issuedAt.
`;

export interface LeaseView {
  leaseId: string;
  status: string;
  principal: string;
  grant: string;
  issuer?: string;
  issuedAt: string;
  expiresAt: string;
  revokedAt?: string;
  revokeReason?: string;
  revokedBy?: string;
  accessKeyId?: string;
  decision: string[];
  context: Record<string, string>;
  sessionPolicy?: string;
  sessionTags?: Record<string, string>;
  events: { at: string; type: string; by?: string; reason?: string; detail?: Record<string, unknown> }[];
}

const COLUMNS: Column<LeaseView>[] = [
  { title: 'LEASE', value: (l) => l.leaseId },
  { title: 'STATUS', value: (l) => l.status },
  { title: 'GRANT', value: (l) => l.grant },
  { title: 'ISSUED', value: (l) => l.issuedAt },
  { title: 'EXPIRES', value: (l) => l.expiresAt },
  { title: 'TASK', value: (l) => l.context?.task ?? '-' },
  { title: 'PRINCIPAL', value: (l) => l.principal },
];

function showLease(io: Io, l: LeaseView): void {
  const p = printable;
  let policy = l.sessionPolicy ?? '';
  try {
    policy = policy && JSON.stringify(JSON.parse(policy), null, 2);
  } catch {
    // shown as stored
  }
  io.out(
    `lease      ${p(l.leaseId)}\nstatus     ${p(l.status)}\nprincipal  ${p(l.principal)}\ngrant      ${p(l.grant)}\n` +
      `issued     ${l.issuedAt}\nexpires    ${l.expiresAt}\n` +
      (l.revokedAt ? `revoked    ${l.revokedAt} by ${p(l.revokedBy ?? '?')} (${p(l.revokeReason ?? '')})\n` : '') +
      `access key ${p(l.accessKeyId ?? '-')}\ndecided by ${p(l.decision.join(', ') || '-')}\ncontext    ${p(JSON.stringify(l.context))}\n` +
      `tags       ${l.sessionTags ? p(Object.entries(l.sessionTags).map(([k, v]) => `${k}=${v}`).join(' ')) : '-'}\n` +
      `session policy${policy ? `\n${p(policy).replace(/^/gm, '  ')}` : ' -'}\nhistory\n` +
      l.events.map((e) => `  ${p(e.at)}  ${p(e.type).padEnd(10)} ${p(e.by ?? '')}${e.reason ? `  (${p(e.reason)})` : ''}${e.detail?.fallback ? '  [fallback]' : ''}\n`).join(''),
  );
}

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      principal: { type: 'string' },
      grant: { type: 'string' },
      issuer: { type: 'string' },
      task: { type: 'string' },
      status: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      limit: { type: 'string' },
      all: { type: 'boolean' },
      format: { type: 'string' },
      endpoint: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) return io.out(HELP), EXIT.ok;
  if (positionals[0] === 'show') {
    const id = positionals[1];
    if (!id || positionals.length > 2) throw new UsageError('usage: tvm leases show ID');
    const format = formatArg(values.format, values.json, ['table', 'json']);
    const base = endpoint(values.endpoint, io.env);
    const answer = await adminCall(`${base}/v1/admin/leases/${encodeURIComponent(id)}`, {}, io.env);
    if (answer.status !== 200) throw refusalOf(answer);
    const l = answer.body as unknown as LeaseView;
    if (format === 'json') io.out(`${jsonText(l, 2)}\n`);
    else showLease(io, l);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`unexpected '${positionals[0]}'`);
  const format = formatArg(values.format, values.json);
  const limit = limitArg(values.limit, values.all);
  const now = Date.now();
  const q = new URLSearchParams();
  for (const k of ['principal', 'grant', 'issuer', 'task', 'status'] as const) if (values[k]) q.set(k, values[k]!);
  for (const k of ['since', 'until'] as const) {
    const t = timeArg(k, values[k], now);
    if (t) q.set(k, t);
  }
  const base = endpoint(values.endpoint, io.env);
  const { items, more } = await fetchPages<LeaseView>(base, '/v1/admin/leases', q, 'leases', limit, io.env);
  printRows(io, format, items, COLUMNS);
  noteMore(io, more, items.length, 'leases');
  return EXIT.ok;
}
