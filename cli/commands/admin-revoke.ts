/** `tvm admin revoke (--lease ID | --principal P | --grant G | --issuer I | --task T | --all) --reason R`: bulk revocation. */
import { PRINCIPAL_FORM } from '../../functions/core/revoke-bulk.js';
import { adminCall, endpoint, EXIT, parse, printable, refusalOf, UsageError, type Io } from '../lib.js';

const HELP = `usage: tvm admin revoke (--lease ID | --principal P | --grant G | --issuer I | --task T | --all) --reason R
                        [--dry-run] [--yes] [--endpoint URL] [--json]

Revokes every live lease the selector names; their credentials stop working. Prints the lease ids
it revoked, and any role it could not revoke on (exit 1; the others are revoked anyway).
  --principal P  issuer|sub, e.g. github|repo:acme/app:ref:refs/heads/main
  --task T       the leases vended with context.task T
  --dry-run      print the lease ids it would revoke; change nothing
  --yes          required with --all
An unknown grant or issuer is a refusal (exit 1), not "revoked 0".
The admin credential comes from $TVM_ADMIN_TOKEN, else the running local stack (SigV4 for a deployed tvm).
`;

interface Answer {
  revoked: number;
  leaseIds: string[];
  fallbacks?: number;
  failed?: { roleArn: string; leaseIds: string[]; reason: string }[];
  dryRun?: boolean;
}

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
      task: { type: 'string' },
      all: { type: 'boolean' },
      reason: { type: 'string' },
      'dry-run': { type: 'boolean' },
      yes: { type: 'boolean', short: 'y' },
      endpoint: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) return io.out(HELP), EXIT.ok;
  if (positionals.length) throw new UsageError(`unexpected '${positionals[0]}'`);
  const selectors = (['lease', 'principal', 'grant', 'issuer', 'task', 'all'] as const).filter((k) => values[k] !== undefined && values[k] !== false);
  if (selectors.length !== 1) throw new UsageError('give exactly one of --lease, --principal, --grant, --issuer, --task, --all');
  if (!values.reason?.trim()) throw new UsageError('--reason is required');
  const [sel] = selectors;
  if (sel === 'principal' && !PRINCIPAL_FORM.test(values.principal!)) throw new UsageError('--principal is issuer|sub (e.g. dev|agent-1)');
  if (sel === 'all' && !values.yes && !values['dry-run']) throw new UsageError('--all revokes every live lease: add --yes (or try --dry-run first)');
  const body: Record<string, unknown> = { reason: values.reason };
  if (sel === 'lease') body.leaseId = values.lease;
  else if (sel === 'all') body.all = true;
  else body[sel] = values[sel];
  if (values['dry-run']) body.dryRun = true;
  const base = endpoint(values.endpoint, io.env);
  const answer = await adminCall(`${base}/v1/admin/revoke`, { method: 'POST', body: JSON.stringify(body) }, io.env);
  if (answer.status !== 200) throw refusalOf(answer);
  const out = answer.body as unknown as Answer;
  if (values.json) io.out(`${JSON.stringify(out)}\n`);
  else if (out.dryRun) io.out(`would revoke ${out.leaseIds.length} lease${out.leaseIds.length === 1 ? '' : 's'}\n${out.leaseIds.map((id) => `  ${id}\n`).join('')}`);
  else {
    io.out(
      `revoked ${out.revoked} lease${out.revoked === 1 ? '' : 's'}${out.fallbacks ? ` (${out.fallbacks} role${out.fallbacks === 1 ? '' : 's'} fell back to denying sessions issued before now)` : ''}\n` +
        out.leaseIds.map((id) => `  ${id}\n`).join(''),
    );
  }
  for (const f of out.failed ?? []) io.err(`could not revoke ${f.leaseIds.length} lease${f.leaseIds.length === 1 ? '' : 's'} on ${printable(f.roleArn)} (${f.reason}): ${f.leaseIds.join(' ')}\n`);
  return out.failed?.length ? EXIT.refused : EXIT.ok;
}
