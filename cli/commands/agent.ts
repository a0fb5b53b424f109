/**
 * `tvm agent --grant G --listen 127.0.0.1:PORT [--auth-token-file F]`: the `tvm exec` credentials
 * server as a long-running sidecar (a pod, a VM). Revokes every lease still live on SIGTERM/SIGINT.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Clock } from '../../functions/core/ports.js';
import { endpoint, EXIT, parse, Refusal, UsageError, type Io } from '../lib.js';
import { type CredentialsServer, LeaseCache, newAuthToken, startCredentialsServer, tvmLeaseSource } from '../credentials-server.js';
import { EXEC_OPTIONS } from './exec.js';
import { vendInputs } from './vend.js';

const HELP = `usage: tvm agent --grant G --listen 127.0.0.1:PORT --auth-token-file F [--endpoint URL]
                 [--token-file F] [--duration S] [--task T] [--tool T] [--sensitivity S] [--environment E]

Serves AWS container credentials from tvm on 127.0.0.1:PORT until SIGTERM or SIGINT, then revokes
every lease still live. Point the workload's SDKs at it with
  AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:PORT/credentials
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=F
The auth token is read from --auth-token-file when it exists, else a fresh one is written there
(mode 0600); it is never printed (a sidecar's output is a log). The OIDC token is re-read from --token-file
at every vend (projected tokens rotate).
`;

export interface AgentOptions {
  endpoint: string;
  grant: string;
  port: number;
  authToken: string;
  tokenFile?: string;
  env: NodeJS.ProcessEnv;
  durationSeconds?: number;
  context: Record<string, string>;
  clock?: Clock;
  warn(line: string): void;
}

export interface Agent {
  server: CredentialsServer;
  cache: LeaseCache;
  /** Stops serving and revokes every lease still live. */
  stop(): Promise<{ revoked: string[]; failed: string[] }>;
}

/** The agent without its signal handling (tests run it in-process with a controllable clock). */
export async function startAgent(o: AgentOptions): Promise<Agent> {
  const cache = new LeaseCache({
    source: tvmLeaseSource({ endpoint: o.endpoint, grant: o.grant, tokenFile: o.tokenFile, env: o.env, durationSeconds: o.durationSeconds, context: o.context, reason: 'tvm agent stopped' }),
    clock: o.clock ?? { now: () => Date.now() },
    warn: o.warn,
  });
  const server = await startCredentialsServer({ cache, authToken: o.authToken, port: o.port });
  return {
    server,
    cache,
    async stop() {
      await server.close();
      return cache.revokeLive();
    },
  };
}

/** `127.0.0.1:PORT` (or `localhost:PORT`): the agent never listens beyond loopback. */
export function listenPort(listen: string): number {
  const m = /^(127\.0\.0\.1|localhost):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UsageError('--listen takes 127.0.0.1:PORT (loopback only)');
  return port;
}

/** The auth token from `file` when it exists, else a fresh one written there (mode 0600). */
export function agentAuthToken(file: string): string {
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length < 16) throw new Refusal(`the auth token in ${file} is too short (16 characters at least)`);
    return token;
  }
  const token = newAuthToken();
  // No trailing newline: the AWS CLI sends the file verbatim as the Authorization header.
  writeFileSync(file, token, { mode: 0o600, flag: 'wx' });
  return token;
}

export async function run(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { ...EXEC_OPTIONS, listen: { type: 'string' }, 'auth-token-file': { type: 'string' } });
  if (values.help) return io.out(HELP), EXIT.ok;
  if (!values.grant) throw new UsageError('--grant is required');
  if (!values.listen) throw new UsageError('--listen 127.0.0.1:PORT is required');
  // The auth token goes through a file the workload reads, never through the agent's output (a log).
  if (!values['auth-token-file']) throw new UsageError('--auth-token-file F is required (the workload reads it as AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)');
  const port = listenPort(values.listen);
  const { durationSeconds, context } = vendInputs(values);
  const authFile = values['auth-token-file']!;
  const authToken = agentAuthToken(authFile);
  const agent = await startAgent({
    endpoint: endpoint(values.endpoint, io.env),
    grant: values.grant,
    port,
    authToken,
    tokenFile: values['token-file'],
    env: io.env,
    durationSeconds,
    context,
    warn: (line) => io.err(`tvm agent: ${line}\n`),
  }).catch((e) => {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new Refusal(`${values.listen} is already in use`);
    throw e;
  });
  io.out(
    `tvm agent is serving credentials for grant ${values.grant}\n` +
      `AWS_CONTAINER_CREDENTIALS_FULL_URI=${agent.server.url}\n` +
      `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${resolve(authFile)}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  const { revoked, failed } = await agent.stop();
  io.err(`tvm agent: stopped; revoked ${revoked.length} lease(s)${failed.length ? `, ${failed.length} could not be revoked` : ''}\n`);
  return failed.length ? EXIT.refused : EXIT.ok;
}
