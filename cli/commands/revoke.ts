/** `tvm revoke LEASE_ID`: revoke one of your own leases (Bearer token of the lease's principal). */
import { call, endpoint, EXIT, parse, refusalOf, UsageError, workloadToken, type Io } from '../lib.js';

const HELP = `usage: tvm revoke LEASE_ID [--reason R] [--endpoint URL] [--token-file F] [--json]

Revokes one of your own leases: its credentials stop working. The token comes from
--token-file, else $TVM_TOKEN, else $TVM_TOKEN_FILE. Revoking twice answers the same.
`;

export async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      reason: { type: 'string' },
      endpoint: { type: 'string' },
      'token-file': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) return io.out(HELP), EXIT.ok;
  if (positionals.length !== 1) throw new UsageError('usage: tvm revoke LEASE_ID');
  const [leaseId] = positionals;
  const base = endpoint(values.endpoint, io.env);
  const token = workloadToken(values['token-file'], io.env);
  const answer = await call(`${base}/v1/leases/${encodeURIComponent(leaseId)}/revoke`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, ...(values.reason ? { 'content-type': 'application/json' } : {}) },
    body: values.reason ? JSON.stringify({ reason: values.reason }) : undefined,
  });
  if (answer.status !== 200) throw refusalOf(answer);
  const { status, revokedAt } = answer.body as { status: string; revokedAt?: string };
  io.out(values.json ? `${JSON.stringify(answer.body)}\n` : `${leaseId} ${status}${revokedAt ? ` at ${revokedAt}` : ''}\n`);
  return EXIT.ok;
}
