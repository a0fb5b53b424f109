/** `tvm leases` / `tvm leases show ID`: admin views of leases and their history. */
import { adminCall, endpoint, EXIT, parse, refusalOf, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm leases [--principal P] [--grant G] [--issuer I] [--status S] [--json] [--endpoint URL]
       tvm leases show ID [--json] [--endpoint URL]
`;

interface LeaseView {
  leaseId: string;
  status: string;
  principal: string;
  grant: string;
  issuedAt: string;
  expiresAt: string;
  revokedAt?: string;
  revokeReason?: string;
  accessKeyId?: string;
  decision: string[];
  context: Record<string, string>;
  events: { at: string; type: string; by?: string; reason?: string }[];
}

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      principal: { type: 'string' },
      grant: { type: 'string' },
      issuer: { type: 'string' },
      status: { type: 'string' },
      endpoint: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) return io.out(HELP), EXIT.ok;
  const base = endpoint(values.endpoint, io.env);
  if (positionals[0] === 'show') {
    const id = positionals[1];
    if (!id || positionals.length > 2) throw new UsageError('usage: tvm leases show ID');
    const answer = await adminCall(`${base}/v1/admin/leases/${encodeURIComponent(id)}`, {}, io.env);
    if (answer.status !== 200) throw refusalOf(answer);
    const l = answer.body as unknown as LeaseView;
    if (values.json) return io.out(`${JSON.stringify(l, null, 2)}\n`), EXIT.ok;
    io.out(
      `lease      ${l.leaseId}\nstatus     ${l.status}\nprincipal  ${l.principal}\ngrant      ${l.grant}\n` +
        `issued     ${l.issuedAt}\nexpires    ${l.expiresAt}\n` +
        (l.revokedAt ? `revoked    ${l.revokedAt} (${l.revokeReason ?? ''})\n` : '') +
        `access key ${l.accessKeyId ?? '-'}\ndecided by ${l.decision.join(', ') || '-'}\ncontext    ${JSON.stringify(l.context)}\nhistory\n` +
        l.events.map((e) => `  ${e.at}  ${e.type.padEnd(10)} ${e.by ?? ''}${e.reason ? `  (${e.reason})` : ''}\n`).join(''),
    );
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`unexpected '${positionals[0]}'`);
  const q = new URLSearchParams();
  for (const k of ['principal', 'grant', 'issuer', 'status'] as const) if (values[k]) q.set(k, values[k]!);
  const answer = await adminCall(`${base}/v1/admin/leases${q.size ? `?${q}` : ''}`, {}, io.env);
  if (answer.status !== 200) throw refusalOf(answer);
  const leases = (answer.body.leases ?? []) as LeaseView[];
  if (values.json) return io.out(`${JSON.stringify(leases, null, 2)}\n`), EXIT.ok;
  io.out(`${'LEASE'.padEnd(28)}${'STATUS'.padEnd(9)}${'GRANT'.padEnd(16)}${'EXPIRES'.padEnd(26)}PRINCIPAL\n`);
  for (const l of leases) io.out(`${l.leaseId.padEnd(28)}${l.status.padEnd(9)}${l.grant.padEnd(16)}${l.expiresAt.padEnd(26)}${l.principal}\n`);
  return EXIT.ok;
}
