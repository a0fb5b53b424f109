/** `tvm rotate VENDOR [--reason R] [--revoke-previous]`: admin, rotate a vendor key now. */
import { adminCall, endpoint, EXIT, parse, refusalOf, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm rotate VENDOR [--reason R] [--revoke-previous] [--json] [--endpoint URL]

Rotates VENDOR's key now: a new key is created at the vendor, tested, and made current; the
previous key keeps working until the rotation overlap has passed, then it is revoked.
--revoke-previous (an incident: the key leaked) revokes the previous key at once.
Prints the new key id (never the key). A rotation that cannot finish within the request's time
(slow vendor calls) says what the next scheduled run will finish.
`;

interface Outcome {
  vendor: string;
  outcome: string;
  keyId?: string;
  previousKeyId?: string;
  revoked: string[];
  /** false: the route's deadline came first; the next scheduled run does `remaining`. */
  complete?: boolean;
  remaining?: string[];
}

const REMAINING: Record<string, string> = {
  rotate: 'the rotation itself',
  finish_rotation: 'testing the new key and making it current',
  revoke_retired: 'revoking the previous keys',
};

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      reason: { type: 'string' },
      'revoke-previous': { type: 'boolean' },
      endpoint: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) return io.out(HELP), EXIT.ok;
  if (positionals.length !== 1) throw new UsageError('usage: tvm rotate VENDOR [--reason R] [--revoke-previous]');
  const [vendor] = positionals;
  const base = endpoint(values.endpoint, io.env);
  const body: Record<string, unknown> = {};
  if (values.reason) body.reason = values.reason;
  if (values['revoke-previous']) body.revokePrevious = true;
  const answer = await adminCall(`${base}/v1/admin/vendors/${encodeURIComponent(vendor)}/rotate`, { method: 'POST', body: JSON.stringify(body) }, io.env);
  if (answer.status !== 200) throw refusalOf(answer);
  const o = answer.body as unknown as Outcome;
  if (values.json) {
    io.out(`${JSON.stringify(o)}\n`);
    return EXIT.ok;
  }
  if (o.complete === false) {
    const lines = [`${o.vendor}: not finished within the request's time; the next scheduled run (within 5 minutes) does: ${(o.remaining ?? []).map((r) => REMAINING[r] ?? r).join(', ')}`];
    if (o.keyId) lines.push(`current key ${o.keyId}`);
    for (const id of o.revoked) lines.push(`revoked ${id}`);
    io.out(`${lines.join('\n')}\n`);
    return EXIT.ok;
  }
  const lines = [`${o.vendor}: ${o.outcome === 'resumed' ? 'finished an interrupted rotation' : 'rotated'}; current key ${o.keyId ?? '?'}`];
  if (o.previousKeyId) lines.push(o.revoked.includes(o.previousKeyId) ? `previous key ${o.previousKeyId} revoked` : `previous key ${o.previousKeyId} is revoked after the overlap`);
  for (const id of o.revoked.filter((id) => id !== o.previousKeyId)) lines.push(`revoked ${id}`);
  io.out(`${lines.join('\n')}\n`);
  return EXIT.ok;
}
