/** `tvm admin revoke (--lease ID | --principal P | --grant G | --issuer I | --all) --reason R`: bulk revocation. */
import { adminCall, endpoint, EXIT, parse, refusalOf, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm admin revoke (--lease ID | --principal P | --grant G | --issuer I | --all) --reason R [--endpoint URL] [--json]

Revokes every live lease the selector names; their credentials stop working. Prints how many.
The admin credential comes from $TVM_ADMIN_TOKEN, else the running local stack.
`;

export async function run(args: string[], io: Io): Promise<number> {
  // Accept both `admin revoke …` dispatched as ['revoke', …] and as […].
  const rest = args[0] === 'revoke' ? args.slice(1) : args;
  const { values, positionals } = parse(
    rest,
    {
      lease: { type: 'string' },
      principal: { type: 'string' },
      grant: { type: 'string' },
      issuer: { type: 'string' },
      all: { type: 'boolean' },
      reason: { type: 'string' },
      endpoint: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) return io.out(HELP), EXIT.ok;
  if (positionals.length) throw new UsageError(`unexpected '${positionals[0]}'`);
  const selectors = (['lease', 'principal', 'grant', 'issuer', 'all'] as const).filter((k) => values[k] !== undefined && values[k] !== false);
  if (selectors.length !== 1) throw new UsageError('give exactly one of --lease, --principal, --grant, --issuer, --all');
  if (!values.reason?.trim()) throw new UsageError('--reason is required');
  const body: Record<string, unknown> = { reason: values.reason };
  const [sel] = selectors;
  if (sel === 'lease') body.leaseId = values.lease;
  else if (sel === 'all') body.all = true;
  else body[sel] = values[sel];
  const base = endpoint(values.endpoint, io.env);
  const answer = await adminCall(`${base}/v1/admin/revoke`, { method: 'POST', body: JSON.stringify(body) }, io.env);
  if (answer.status !== 200) throw refusalOf(answer);
  const { revoked } = answer.body as { revoked: number };
  io.out(values.json ? `${JSON.stringify(answer.body)}\n` : `revoked ${revoked} lease${revoked === 1 ? '' : 's'}\n`);
  return EXIT.ok;
}
