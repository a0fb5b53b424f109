/**
 * `tvm exec --grant G … -- CMD [ARGS…]`: runs CMD with AWS credentials it never has to manage. CMD's
 * SDKs find a loopback container-credentials server through the standard variables; one lease is
 * reused until it is due for renewal, and every lease still live is revoked when CMD exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { endpoint, EXIT, parse, UsageError, workloadToken, type Io } from '../lib.js';
import { LeaseCache, newAuthToken, startCredentialsServer, tvmLeaseSource } from '../credentials-server.js';
import { VEND_OPTIONS, vendInputs } from './vend.js';

const HELP = `usage: tvm exec --grant G [--endpoint URL] [--token-file F] [--duration S] [--task T] [--tool T]
                [--sensitivity S] [--environment E] -- CMD [ARGS…]

Runs CMD with AWS credentials from tvm served on a loopback container-credentials endpoint
(AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN), which every AWS SDK and
the AWS CLI read. CMD gets none of your AWS credentials and never the OIDC token. One lease serves
every call until less than a third of its life (or 5 minutes) remains; when CMD exits, every lease
still live is revoked. Exits with CMD's code (128 + the signal's number if a signal killed it).
The token comes from --token-file (re-read at every vend), else $TVM_TOKEN, else $TVM_TOKEN_FILE.
`;

export const EXEC_OPTIONS = (({ format: _format, ...rest }) => rest)(VEND_OPTIONS);

/** Variables CMD must not inherit: the caller's AWS credentials and where they come from, and the OIDC token. */
export const STRIPPED_ENV = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_SECURITY_TOKEN',
  'AWS_CREDENTIAL_EXPIRATION',
  'AWS_PROFILE',
  'AWS_DEFAULT_PROFILE',
  'AWS_ROLE_ARN',
  'AWS_ROLE_SESSION_NAME',
  'TVM_TOKEN',
  'TVM_TOKEN_FILE',
];
const STRIPPED_PREFIXES = ['AWS_CONTAINER_', 'AWS_WEB_IDENTITY_'];

/** CMD's environment: the caller's, without any AWS credential source, plus the loopback endpoint. */
export function childEnv(env: NodeJS.ProcessEnv, url: string, authToken: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    if (STRIPPED_ENV.includes(k) || STRIPPED_PREFIXES.some((p) => k.startsWith(p))) continue;
    out[k] = v;
  }
  out.AWS_CONTAINER_CREDENTIALS_FULL_URI = url;
  out.AWS_CONTAINER_AUTHORIZATION_TOKEN = authToken;
  // The shared credentials file holds the caller's long-lived keys, and the SDKs read it before
  // container credentials: CMD must not find them there either.
  out.AWS_SHARED_CREDENTIALS_FILE = '/dev/null';
  return out;
}

/** Splits `… -- CMD ARGS` (CMD's own flags are never parsed as tvm's). */
export function splitCommand(args: string[]): { own: string[]; command: string[] } {
  const i = args.indexOf('--');
  return i < 0 ? { own: args, command: [] } : { own: args.slice(0, i), command: args.slice(i + 1) };
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export async function run(args: string[], io: Io): Promise<number> {
  const { own, command } = splitCommand(args);
  const { values } = parse(own, EXEC_OPTIONS);
  if (values.help) return io.out(HELP), EXIT.ok;
  if (!values.grant) throw new UsageError('--grant is required');
  if (command.length === 0) throw new UsageError('usage: tvm exec --grant G [options] -- CMD [ARGS…]');
  const { durationSeconds, context } = vendInputs(values);
  const base = endpoint(values.endpoint, io.env);
  workloadToken(values['token-file'], io.env); // a missing token is a refusal before CMD runs

  const warn = (line: string) => io.err(`tvm exec: ${line}\n`);
  const cache = new LeaseCache({
    source: tvmLeaseSource({ endpoint: base, grant: values.grant, tokenFile: values['token-file'], env: io.env, durationSeconds, context, reason: 'tvm exec: the command ended' }),
    clock: { now: () => Date.now() },
    warn,
  });
  // Signals are ours from here on: one that arrives before CMD runs (during the first vend) stops
  // tvm exec after revoking what it got; later ones go to CMD.
  let child: ChildProcess | undefined;
  let early: NodeJS.Signals | undefined;
  const forward = FORWARDED.map((sig) => {
    const handler = () => {
      if (!child) early ??= sig;
      else if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    };
    process.on(sig, handler);
    return () => process.off(sig, handler);
  });
  const signalled = (sig: NodeJS.Signals) => 128 + (constants.signals[sig] ?? 0);
  try {
    // The first lease before CMD starts: a refused token or grant is an error now, not CMD's first call.
    await cache.renew();
    if (early) {
      await cache.revokeLive();
      return signalled(early);
    }
    const authToken = newAuthToken();
    const server = await startCredentialsServer({ cache, authToken });
    child = spawn(command[0], command.slice(1), { stdio: 'inherit', env: childEnv(io.env, server.url, authToken) });
    const running = child;
    const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      running.once('error', (error) => resolve({ code: null, signal: null, error }));
      running.once('exit', (code, signal) => resolve({ code, signal }));
    });
    await server.close();
    const { failed } = await cache.revokeLive();
    return outcome(ended, failed);
  } finally {
    for (const off of forward) off();
  }

  function outcome(ended: { code: number | null; signal: NodeJS.Signals | null; error?: Error }, failed: string[]): number {
    if (ended.error) {
      warn(`cannot run ${command[0]}: ${(ended.error as NodeJS.ErrnoException).code ?? ended.error.message}`);
      return (ended.error as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126;
    }
    if (failed.length) warn(`${failed.length} lease(s) could not be revoked; they expire on their own`);
    if (ended.signal) return signalled(ended.signal);
    return ended.code ?? EXIT.refused;
  }
}
