/** `tvm vend`: exchange the workload's token for credentials, printed as JSON, env or credential_process. */
import { call, endpoint, EXIT, parse, refusalOf, shellQuote, UsageError, workloadToken, type Io } from '../lib.js';

const HELP = `usage: tvm vend --grant G [--endpoint URL] [--token-file F] [--duration S] [--task T] [--tool T]
                [--sensitivity S] [--environment E] [--format json|env|credential-process]
  The token comes from --token-file, else $TVM_TOKEN, else the file named by $TVM_TOKEN_FILE.
`;

export const VEND_OPTIONS = {
  grant: { type: 'string' },
  endpoint: { type: 'string' },
  'token-file': { type: 'string' },
  duration: { type: 'string' },
  task: { type: 'string' },
  tool: { type: 'string' },
  sensitivity: { type: 'string' },
  environment: { type: 'string' },
  format: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `--duration` and the Cedar context flags, as the vend body carries them (also for `tvm exec`/`tvm agent`). */
export function vendInputs(values: Partial<Record<'duration' | 'task' | 'tool' | 'sensitivity' | 'environment', string>>) {
  const durationSeconds = values.duration === undefined ? undefined : Number(values.duration);
  if (durationSeconds !== undefined && !Number.isInteger(durationSeconds)) throw new UsageError('--duration takes whole seconds');
  const context: Record<string, string> = {};
  for (const k of ['task', 'tool', 'sensitivity', 'environment'] as const) if (values[k] !== undefined) context[k] = values[k]!;
  return { durationSeconds, context };
}

interface Vended {
  leaseId: string;
  expiresAt: string;
  credentials: { AccessKeyId: string; SecretAccessKey: string; SessionToken: string; Expiration: string };
}

export async function vend(args: string[], io: Io, forcedFormat?: string): Promise<number> {
  const { values } = parse(args, VEND_OPTIONS);
  if (values.help) return io.out(HELP), EXIT.ok;
  if (!values.grant) throw new UsageError('--grant is required');
  const format = forcedFormat ?? values.format ?? 'json';
  if (!['json', 'env', 'credential-process'].includes(format)) throw new UsageError('--format is json, env or credential-process');
  const { durationSeconds, context } = vendInputs(values);
  const base = endpoint(values.endpoint, io.env);
  const token = workloadToken(values['token-file'], io.env);
  const answer = await call(`${base}/v1/vend`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ grant: values.grant, durationSeconds, context: Object.keys(context).length ? context : undefined }),
  });
  if (answer.status !== 200) throw refusalOf(answer);
  const v = answer.body as unknown as Vended;
  const c = v.credentials;
  if (format === 'json') io.out(`${JSON.stringify(answer.body, null, 2)}\n`);
  else if (format === 'env') {
    // Users `source` this: every value is one quoted shell word, whatever the answer held.
    const vars = { AWS_ACCESS_KEY_ID: c.AccessKeyId, AWS_SECRET_ACCESS_KEY: c.SecretAccessKey, AWS_SESSION_TOKEN: c.SessionToken, AWS_CREDENTIAL_EXPIRATION: c.Expiration, TVM_LEASE_ID: v.leaseId };
    io.out(Object.entries(vars).map(([k, val]) => `export ${k}=${shellQuote(String(val))}\n`).join(''));
  } else {
    io.out(`${JSON.stringify({ Version: 1, AccessKeyId: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Expiration: c.Expiration })}\n`);
  }
  return EXIT.ok;
}

export const run = (args: string[], io: Io) => vend(args, io);
