/** `tvm vendors`: admin, each vendor's current key id (never the key), last rotation, next due, last error. */
import { adminCall, endpoint, EXIT, parse, refusalOf, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm vendors [--json] [--endpoint URL]

Lists each vendor with its current key id, last rotation, next rotation due, keys waiting out
the overlap, and the last error. A vendor whose management credential has not been set yet is
"not configured": nothing is rotated until it is. Keys themselves are never shown.
`;

interface Status {
  name: string;
  kind: string;
  /** false until an operator sets the vendor's management credential. */
  configured?: boolean;
  currentKeyId?: string;
  lastRotatedAt?: string;
  nextDueAt?: string;
  lastError?: { at: string; step: string; reason: string };
  rotationInProgress: boolean;
  retiring: { keyId: string; revokeAfter: string }[];
  unresolved: { keyName: string }[];
}

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    { endpoint: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    true,
  );
  if (values.help) return io.out(HELP), EXIT.ok;
  if (positionals.length) throw new UsageError('usage: tvm vendors [--json]');
  const base = endpoint(values.endpoint, io.env);
  const answer = await adminCall(`${base}/v1/admin/vendors`, {}, io.env);
  if (answer.status !== 200) throw refusalOf(answer);
  const vendors = (answer.body as { vendors: Status[] }).vendors;
  if (values.json) {
    io.out(`${JSON.stringify(vendors)}\n`);
    return EXIT.ok;
  }
  const rows = [['VENDOR', 'KIND', 'CURRENT KEY', 'LAST ROTATION', 'NEXT DUE', 'RETIRING', 'LAST ERROR']];
  for (const v of vendors) {
    rows.push([
      v.name,
      v.kind,
      v.configured === false ? 'not configured (set the management credential)' : (v.currentKeyId ?? '-'),
      v.lastRotatedAt ?? '-',
      v.nextDueAt ?? '-',
      v.retiring.length ? v.retiring.map((r) => `${r.keyId} (revoke after ${r.revokeAfter})`).join(', ') : '-',
      v.lastError ? `${v.lastError.reason} at ${v.lastError.step}, ${v.lastError.at}` : v.unresolved.length ? `unresolved: ${v.unresolved.map((u) => u.keyName).join(', ')}` : '-',
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  io.out(rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n');
  return EXIT.ok;
}
