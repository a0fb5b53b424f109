/** `tvm explain REQUEST_ID`: why a request was answered as it was, in words, from the audit trail. */
import type { AuditEvent } from '../../functions/core/audit-events.js';
import { explainRequest } from '../../functions/core/explain.js';
import { fetchPages, timeArg } from '../format.js';
import { endpoint, EXIT, parse, printable, Refusal, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm explain REQUEST_ID [--since D] [--endpoint URL]

The request id is in every error answer ("requestId") and in the audit trail. Prints the outcome,
the reason in words (expired token, audience not accepted, no policy permits, policy P forbids,
duration out of bounds, …) with its stable code, and the request's other events.
--since bounds the search (default 7d; in AWS a narrower window answers faster).
`;

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { since: { type: 'string' }, endpoint: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, true);
  if (values.help) return io.out(HELP), EXIT.ok;
  const [id, ...rest] = positionals;
  if (!id || rest.length) throw new UsageError('usage: tvm explain REQUEST_ID');
  const q = new URLSearchParams({ requestId: id, since: timeArg('since', values.since ?? '7d', Date.now())! });
  const { items } = await fetchPages<AuditEvent>(endpoint(values.endpoint, io.env), '/v1/admin/events', q, 'events', 1000, io.env);
  const lines = explainRequest(id, items);
  if (!lines.length) throw new Refusal(`no audit events for request ${printable(id)} (try a wider --since)`);
  io.out(lines.map((l) => `${printable(l)}\n`).join(''));
  return EXIT.ok;
}
